//! `nnu-predict` on cascades (fixtures/cascade, made by scripts/goldens/cascade_make.py; the library's
//! parity with nnU-Net 1.7.1 and nnunetv2 2.8.1 is checked by `crates/nnu-pipeline/tests/cascade_v1.rs`
//! and `cascade_v2.rs`): the one-command form (the 3d_lowres model given with `--lowres-model`, or found
//! where the references look) writes only the final segmentation (and with `--keep-lowres` the 3d_lowres
//! ones), equal to the two-step form (`--prev-stage`) on the kept 3d_lowres segmentations; a missing
//! previous-stage file fails its case naming it; the flags are refused for a model that is not a
//! cascade stage.
mod common;

use std::path::{Path, PathBuf};

use common::{fixtures, listing, run};

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

struct Layout {
    model: PathBuf,
    lowres: PathBuf,
    case: &'static str,
    extra: &'static [&'static str],
}

fn v2() -> Layout {
    let m = fixtures().join("cascade/v2/models/Dataset904_Cascade");
    Layout {
        model: m.join("nnUNetTrainer__nnUNetPlans__3d_cascade_fullres"),
        lowres: m.join("nnUNetTrainer__nnUNetPlans__3d_lowres"),
        case: "casc_a",
        extra: &["-c", "3d_cascade_fullres"],
    }
}

fn v1() -> Layout {
    let m = fixtures().join("cascade/v1/models");
    Layout {
        model: m.join(
            "3d_cascade_fullres/Task905_Cascade/nnUNetTrainerV2CascadeFullRes__nnUNetPlansv2.1",
        ),
        lowres: m.join("3d_lowres/Task905_Cascade/nnUNetTrainerV2__nnUNetPlansv2.1"),
        case: "cascv1_a",
        extra: &[],
    }
}

fn input(tmp: &Path, l: &Layout, version: &str) -> PathBuf {
    let dir = tmp.join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{}_0000.nii.gz", l.case);
    std::fs::copy(
        fixtures().join(format!("cascade/{version}/cases/{name}")),
        dir.join(&name),
    )
    .unwrap();
    dir
}

fn predict(l: &Layout, input: &Path, out: &Path, more: &[&str]) -> common::Outcome {
    let mut args: Vec<String> = vec![
        "-m".into(),
        l.model.display().to_string(),
        "-i".into(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--threads".into(),
        "2".into(),
    ];
    args.extend(l.extra.iter().map(|s| s.to_string()));
    args.extend(more.iter().map(|s| s.to_string()));
    let o = run(EXE, &args);
    o.assert_no_crash();
    o
}

fn labels(path: &Path) -> ndarray::Array3<u8> {
    nnu_volume::read_labels(path).unwrap().data
}

#[test]
fn one_command_equals_two_steps_on_the_kept_lowres_segmentations() {
    for (version, l) in [("v2", v2()), ("v1", v1())] {
        let tmp = tempfile::tempdir().unwrap();
        let input = input(tmp.path(), &l, version);
        let seg = format!("{}.nii.gz", l.case);

        let one = tmp.path().join("one");
        let lowres = l.lowres.display().to_string();
        let o = predict(
            &l,
            &input,
            &one,
            &["--lowres-model", &lowres, "--keep-lowres"],
        );
        assert_eq!(o.code, Some(0), "{version}:\n{}", o.stderr);
        assert!(o.stderr.contains("previous stage"), "{}", o.stderr);
        // An nnunetv2 model's dataset.json and plans.json go beside the predictions, as nnunetv2 does.
        let model_json: &[&str] = if version == "v2" {
            &["dataset.json", "plans.json"]
        } else {
            &[]
        };
        let with_json = |files: &[&str]| {
            let mut v: Vec<String> = files
                .iter()
                .chain(model_json)
                .map(|s| s.to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            listing(&one),
            with_json(&["3d_lowres_predictions", seg.as_str()]),
            "{version}"
        );
        // The kept lowres segmentations with the lowres model's dataset.json and plans.json (v2), as
        // the lowres stage's own run would leave them.
        let kept = one.join("3d_lowres_predictions");
        assert_eq!(listing(&kept), with_json(&[seg.as_str()]), "{version}");
        for f in model_json {
            assert_eq!(
                std::fs::read(kept.join(f)).unwrap(),
                std::fs::read(l.lowres.join(f)).unwrap(),
                "{version}: {f}"
            );
        }

        // The standard 3d_lowres folder beside the model is found without the flag.
        let found = tmp.path().join("found");
        let o = predict(&l, &input, &found, &[]);
        assert_eq!(o.code, Some(0), "{version}:\n{}", o.stderr);
        assert_eq!(listing(&found), with_json(&[seg.as_str()]), "{version}");
        assert_eq!(
            labels(&found.join(&seg)),
            labels(&one.join(&seg)),
            "{version}"
        );

        let two = tmp.path().join("two");
        let o = predict(
            &l,
            &input,
            &two,
            &["--prev-stage", &kept.display().to_string()],
        );
        assert_eq!(o.code, Some(0), "{version}:\n{}", o.stderr);
        assert_eq!(
            labels(&two.join(&seg)),
            labels(&one.join(&seg)),
            "{version}"
        );
    }
}

#[test]
fn a_missing_previous_stage_file_fails_its_case_naming_it() {
    for (version, l) in [("v2", v2()), ("v1", v1())] {
        let tmp = tempfile::tempdir().unwrap();
        let input = input(tmp.path(), &l, version);
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let out = tmp.path().join("out");
        let o = predict(
            &l,
            &input,
            &out,
            &["--prev-stage", &empty.display().to_string()],
        );
        assert_eq!(o.code, Some(1), "{version}:\n{}", o.stderr);
        let missing = empty.join(format!("{}.nii.gz", l.case));
        let line = o.error_about(&missing.display().to_string());
        assert!(line.contains("missing"), "{line}");
        assert_eq!(o.failed_cases(), [l.case]);
        assert!(!out.join(format!("{}.nii.gz", l.case)).exists());
    }
}

#[test]
fn cascade_flags_are_refused_for_other_models() {
    let tmp = tempfile::tempdir().unwrap();
    let l = v2();
    let input = input(tmp.path(), &l, "v2");
    let lowres_as_model = Layout {
        model: l.lowres.clone(),
        lowres: l.lowres.clone(),
        case: l.case,
        extra: &["-c", "3d_lowres"],
    };
    let out = tmp.path().join("out");
    let o = predict(
        &lowres_as_model,
        &input,
        &out,
        &["--prev-stage", &tmp.path().display().to_string()],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.errors()[0].contains("not a cascade stage"),
        "{}",
        o.stderr
    );
    assert!(!out.exists());

    // The lowres configuration alone predicts like any other.
    let o = predict(&lowres_as_model, &input, &out, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn keep_lowres_with_prev_stage_is_a_usage_error() {
    // --keep-lowres keeps a previous stage predicted in memory; with --prev-stage there is none to keep.
    for (version, l) in [("v2", v2()), ("v1", v1())] {
        let tmp = tempfile::tempdir().unwrap();
        let input = input(tmp.path(), &l, version);
        let prev = tmp.path().join("prev");
        std::fs::create_dir(&prev).unwrap();
        let out = tmp.path().join("out");
        let o = predict(
            &l,
            &input,
            &out,
            &["--prev-stage", &prev.display().to_string(), "--keep-lowres"],
        );
        assert_eq!(o.code, Some(2), "{version}:\n{}", o.stderr);
        let line = o.errors()[0];
        assert!(
            line.contains("--keep-lowres") && line.contains("--prev-stage"),
            "{version}: {line}"
        );
        assert!(!out.exists(), "{version}");
    }
}

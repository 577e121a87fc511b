//! `nnu-predict` on nnunetv2 model folders (fixtures/v2, made by scripts/goldens/v2_make.py): the tool
//! tells a v2 folder from a v1 one by what it holds, and its segmentation, `CASE.npz` and `CASE.pkl`
//! (`--save-probabilities`) are the library's (`predict_case_v2`, which
//! `crates/nnu-pipeline/tests/v2_predict.rs` checks against nnunetv2 2.8.1) byte for byte; a case whose
//! last write fails leaves none of them; configurations it cannot predict are refused before any case is
//! run.
mod common;

use std::path::PathBuf;

use common::{assert_error_line, assert_same_folders, fixtures, listing, run, run_cmd};
use nnu_pipeline::cases::{discover_cases, read_first_image, Case};
use nnu_pipeline::preview::{write_preview, PreviewOptions};
use nnu_pipeline::run::{BackendKind, CpuBackendOptions};
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{estimate_peak_memory_v2, load_v2_backends, predict_case_v2, V2Model};

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

fn model(name: &str) -> PathBuf {
    fixtures().join("v2/models").join(name)
}

#[test]
fn a_v2_folder_is_predicted_as_the_library_predicts_it() {
    for (dir, case, channels, folds) in [
        (
            "Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres",
            "plain_a",
            1,
            vec![0, 1],
        ),
        (
            "Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d",
            "plain_a",
            1,
            vec![0],
        ),
        (
            "Dataset902_ResEnc/nnUNetTrainer__nnUNetResEncUNetMPlans__3d_fullres",
            "resenc_a",
            2,
            vec![0],
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in");
        std::fs::create_dir(&input).unwrap();
        let files: Vec<PathBuf> = (0..channels)
            .map(|c| {
                let name = format!("{case}_{c:04}.nii.gz");
                let to = input.join(&name);
                std::fs::copy(fixtures().join("v2/cases").join(&name), &to).unwrap();
                to
            })
            .collect();
        let out = tmp.path().join("out");
        let args: Vec<String> = vec![
            "-m".into(),
            model(dir).display().to_string(),
            "-i".into(),
            input.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--backend".into(),
            "tract".into(),
            "--threads".into(),
            "2".into(),
            "--save-probabilities".into(),
            "--folds".into(),
            folds
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ];
        let o = run(EXE, &args);
        o.assert_no_crash();
        assert_eq!(o.code, Some(0), "{dir}:\n{}", o.stderr);
        assert!(o.stderr.contains("nnunetv2 model"), "{}", o.stderr);

        let m = V2Model::open(&model(dir), None, "checkpoint_final.pth").unwrap();
        let mut b =
            load_v2_backends(&m, &folds, &CpuBackendOptions::new(BackendKind::Tract, 2)).unwrap();
        let opts = PredictOptions {
            mirrors: b.default_mirrors().unwrap(),
            save_probabilities: true,
            ..PredictOptions::default()
        };
        let lib_out = tmp.path().join("lib");
        let report = predict_case_v2(
            &Case::nifti(case, files),
            &m,
            &mut b.backends,
            &lib_out,
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let mut want = vec![
            "dataset.json".to_owned(),
            "plans.json".to_owned(),
            format!("{case}.nii.gz"),
            format!("{case}.npz"),
            format!("{case}.pkl"),
        ];
        want.sort();
        assert_eq!(listing(&out), want, "{dir}");
        // As nnUNetv2_predict, the model's dataset.json and plans.json beside the predictions.
        for name in ["dataset.json", "plans.json"] {
            assert_eq!(
                std::fs::read(out.join(name)).unwrap(),
                std::fs::read(model(dir).join(name)).unwrap(),
                "{dir}: {name}"
            );
        }
        assert_eq!(
            report.output,
            lib_out.join(format!("{case}.nii.gz")),
            "{dir}"
        );
        for ext in ["nii.gz", "npz", "pkl"] {
            let name = format!("{case}.{ext}");
            let ours = std::fs::read(out.join(&name)).unwrap();
            let lib = std::fs::read(lib_out.join(&name)).unwrap();
            assert!(
                ours == lib,
                "{dir}: the tool's {name} differs from the library's"
            );
        }
    }
}

/// A failure at the segmentation (the third file write of the process: the probabilities, the
/// properties, then the segmentation) leaves nothing of the case: `CASE.npz` and `CASE.pkl`, complete as
/// temporaries, go too; a rerun then writes all three as an undisturbed run does.
#[test]
fn a_failure_at_the_segmentation_leaves_no_probabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(
        fixtures().join("v2/cases/plain_a_0000.nii.gz"),
        input.join("plain_a_0000.nii.gz"),
    )
    .unwrap();
    let m = model("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d");
    let predict = |out: &std::path::Path| {
        let mut cmd = std::process::Command::new(EXE);
        cmd.arg("-m")
            .arg(&m)
            .arg("-i")
            .arg(&input)
            .arg("-o")
            .arg(out)
            .args([
                "--backend",
                "tract",
                "--threads",
                "2",
                "--save-probabilities",
            ])
            .env_remove("NNU_FAULT_INJECT");
        cmd
    };
    let reference = tmp.path().join("reference");
    assert_eq!(run_cmd(predict(&reference)).code, Some(0));
    let out = tmp.path().join("out");
    let mut cmd = predict(&out);
    cmd.env("NNU_FAULT_INJECT", "write:3");
    let o = run_cmd(cmd);
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(
        o.error_about("plain_a.nii.gz"),
        &out.join("plain_a.nii.gz"),
        "injected fault",
    );
    assert_eq!(
        listing(&out),
        Vec::<String>::new(),
        "the case left something"
    );
    assert_eq!(run_cmd(predict(&out)).code, Some(0));
    assert_same_folders(&out, &reference);
}

#[test]
fn configurations_that_cannot_be_predicted_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(
        fixtures().join("v2/cases/plain_a_0000.nii.gz"),
        input.join("plain_a_0000.nii.gz"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    for (m, c, needle) in [
        (
            model("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres"),
            "3d_lowres",
            "3d_lowres",
        ),
        (
            model("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres"),
            "3d_cascade_fullres",
            "cascade",
        ),
    ] {
        let o = run(
            EXE,
            &[
                "-m",
                &m.display().to_string(),
                "-i",
                &input.display().to_string(),
                "-o",
                &out.display().to_string(),
                "-c",
                c,
            ],
        );
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{c}:\n{}", o.stderr);
        let errors = o.errors();
        assert_eq!(errors.len(), 1, "{}", o.stderr);
        assert!(errors[0].contains(needle), "{}", errors[0]);
        assert!(!out.join("plain_a.nii.gz").exists());
    }
}

/// A case whose estimated peak memory (`estimate_peak_memory_v2`, probabilities included) exceeds
/// `--max-memory` is refused before it is read, naming its image, and leaves nothing; with the limit at
/// the estimate it runs.
#[test]
fn a_v2_case_over_the_memory_limit_is_refused() {
    let dir = model("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let image = input.join("plain_a_0000.nii.gz");
    std::fs::copy(fixtures().join("v2/cases/plain_a_0000.nii.gz"), &image).unwrap();
    let m = V2Model::open(&dir, None, "checkpoint_final.pth").unwrap();
    let case = Case::nifti("plain_a", vec![image.clone()]);
    let opts = PredictOptions {
        save_probabilities: true,
        ..PredictOptions::default()
    };
    let need = estimate_peak_memory_v2(&case, &m, &opts).unwrap();
    // at least the logits in the image's frame and one head of the probabilities (written one at a time)
    let h = nnu_volume::read_header(&image).unwrap();
    let voxels: u64 = h.shape_zyx.iter().map(|&d| d as u64).product();
    assert!(need >= 4 * (m.heads as u64 + 1) * voxels, "{need}");
    let out = tmp.path().join("out");
    let args = |limit: u64| -> Vec<String> {
        vec![
            "-m".into(),
            dir.display().to_string(),
            "-i".into(),
            input.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--save-probabilities".into(),
            "--folds".into(),
            "0".into(),
            "--max-memory".into(),
            limit.to_string(),
        ]
    };
    let o = run(EXE, &args(need - 1));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(o.error_about("needs up to"), &image, "not started");
    assert!(
        listing(&out).iter().all(|f| !f.contains("plain_a")),
        "{:?}",
        listing(&out)
    );
    let o = run(EXE, &args(need));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(out.join("plain_a.nii.gz").is_file() && out.join("plain_a.npz").is_file());
}

/// `--preview` with an nnunetv2 model draws the first channel as it was read for the prediction
/// (NIfTI, and a DICOM series) instead of reading it a second time; the PNG is byte-identical to the
/// preview of the image read again (`read_first_image`, what the tool did before) with the written
/// segmentation, the case's name and the model's label names.
#[test]
fn a_v2_preview_is_the_image_as_read_again() {
    let dir = "Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres";
    let tmp = tempfile::tempdir().unwrap();
    let nifti = tmp.path().join("nifti");
    std::fs::create_dir(&nifti).unwrap();
    std::fs::copy(
        fixtures().join("v2/cases/plain_a_0000.nii.gz"),
        nifti.join("plain_a_0000.nii.gz"),
    )
    .unwrap();
    let dicom = tmp.path().join("dicom");
    std::fs::create_dir(&dicom).unwrap();
    for e in std::fs::read_dir(fixtures().join("dicom/axial")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dicom.join(e.file_name())).unwrap();
    }
    let m = V2Model::open(&model(dir), None, "checkpoint_final.pth").unwrap();
    let mut previews = 0;
    for input in [&nifti, &dicom] {
        let out = tmp.path().join("out").join(input.file_name().unwrap());
        let args: Vec<String> = vec![
            "-m".into(),
            model(dir).display().to_string(),
            "-i".into(),
            input.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--backend".into(),
            "tract".into(),
            "--threads".into(),
            "2".into(),
            "--folds".into(),
            "0".into(),
            "--disable-tta".into(),
            "--preview".into(),
        ];
        let o = run(EXE, &args);
        o.assert_no_crash();
        assert_eq!(o.code, Some(0), "{}:\n{}", input.display(), o.stderr);
        for case in discover_cases(input).unwrap() {
            let image = read_first_image(&case).unwrap();
            let seg = nnu_volume::read_labels(&out.join(format!("{}.nii.gz", case.name))).unwrap();
            let expected = tmp.path().join(format!("{}_expected.png", case.name));
            let opts = PreviewOptions {
                label_names: m.label_names(),
                ..PreviewOptions::default()
            };
            write_preview(
                &expected,
                image.data.view(),
                seg.data.view(),
                &image.geometry,
                &case.name,
                &opts,
            )
            .unwrap();
            let ours = std::fs::read(out.join(format!("{}.png", case.name))).unwrap();
            assert!(
                ours == std::fs::read(&expected).unwrap(),
                "{}: the preview differs from the image read again",
                case.name
            );
            previews += 1;
        }
    }
    assert_eq!(previews, 2);
}

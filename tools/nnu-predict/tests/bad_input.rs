//! What the user of `nnu-predict` sees on bad input: one `error: FILE: problem` line per problem, a non-zero
//! exit, no partial output, and in a batch the other cases still done and the failed ones listed.
//!
//! The damaged inputs are made here from small phantoms (24 x 40 x 40, the demo model's spacing); the model
//! is the demo UNet++ in `crates/nnu-demo/data`. The readers' own error cases are tested in their crates
//! (`nnu-volume/tests/bad_input.rs`, `nnu-artifacts/tests/robustness.rs`, `nnu-preprocessing/tests/errors.rs`);
//! here the point is the tool: exit code, the line printed, what is (not) left in the output folder.

mod common;
#[path = "common/limits.rs"]
mod limits;

use std::path::{Path, PathBuf};

use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

/// `nnu-predict` on `input` with the demo model, no mirroring (fast), 2 threads, plus `extra`.
fn predict(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(demo_model())
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--disable-tta", "--threads", "2"])
        .args(extra);
    cmd
}

#[test]
fn bad_images_fail_alone_and_the_batch_goes_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let bad = damaged_images(&images);
    // NaN voxels are set to 0 after cropping, as nnU-Net does: the case is predicted exactly as the same
    // image with a 0 there (the voxel is inside the body, so the crop box is the same).
    let (img, g) = phantom(2);
    let mut with_nan = img.mapv(f32::from);
    with_nan[[12, 20, 20]] = f32::NAN;
    write(&images, "nan.nii.gz", &with_nan, &g);
    with_nan[[12, 20, 20]] = 0.0;
    write(&images, "nan_as_zero.nii.gz", &with_nan, &g);

    let out = root.path().join("out");
    let o = run_cmd(predict(&images, &out, &["--save-probabilities"]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    for (name, file, problem) in &bad {
        assert_error_line(o.error_about(&format!("error: {name}: ")), file, problem);
    }
    assert_eq!(o.errors().len(), bad.len(), "{}", o.stderr);
    let mut failed = o.failed_cases();
    failed.sort();
    let mut expected: Vec<String> = bad.iter().map(|(n, _, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(failed, expected);
    assert!(o.stderr.contains("2 ok, 9 failed"), "{}", o.stderr);
    // Only the good cases' outputs, nothing of the failed ones, no temporaries.
    assert_eq!(
        listing(&out),
        [
            "nan.nii.gz",
            "nan_as_zero.nii.gz",
            "nan_as_zero_probabilities.npy",
            "nan_probabilities.npy"
        ]
    );
    for f in ["nii.gz", "probabilities.npy"] {
        let sep = if f == "nii.gz" { "." } else { "_" };
        assert!(
            std::fs::read(out.join(format!("nan{sep}{f}"))).expect("read")
                == std::fs::read(out.join(format!("nan_as_zero{sep}{f}"))).expect("read"),
            "NaN voxels are not predicted as 0 ({f})"
        );
    }
}

/// Every model problem stops the run before any case with one line naming the file, exit code 2, and no
/// output folder.
#[test]
fn model_problems_are_one_line_and_nothing_is_written() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let image = write_phantom(r, "case_0000.nii.gz", 1);
    let demo = demo_model();
    let export = fixtures().join("export");
    // A model folder: plans.pkl with `plans` bytes, fold_0 with the demo ONNX and a checkpoint file.
    let folder = |name: &str, plans: Option<&[u8]>, onnx: bool, checkpoint: bool| -> PathBuf {
        let d = r.join(name);
        std::fs::create_dir_all(d.join("fold_0")).expect("mkdir");
        if let Some(p) = plans {
            std::fs::write(d.join("plans.pkl"), p).expect("plans");
        }
        if onnx {
            std::fs::copy(demo.join("fold_0/model.onnx"), d.join("fold_0/model.onnx")).expect("cp");
        }
        if checkpoint {
            std::fs::write(d.join("fold_0/model_final_checkpoint.model"), b"").expect("ckpt");
        }
        d
    };
    let plans = std::fs::read(demo.join("plans.pkl")).expect("plans");
    let pwned = r.join("pwned");
    let hostile = format!("cos\nsystem\n(S'touch {}'\ntR.", pwned.to_string_lossy());
    let onnx_text = write_bytes(r, "text.onnx", b"not a model\n");
    let onnx_cut = {
        let b = std::fs::read(demo.join("fold_0/model.onnx")).expect("onnx");
        write_bytes(r, "cut.onnx", &b[..b.len() / 3])
    };
    // The plans of another task: 3 foreground classes (4 outputs) for the demo's 3-output network.
    let key = b"\x8c\x0bnum_classes\x94K\x02";
    let at = plans
        .windows(key.len())
        .position(|w| w == key)
        .expect("num_classes in the demo plans");
    let mut other_task = plans.clone();
    other_task[at + key.len() - 1] = 3;
    type Case = (Vec<String>, PathBuf, &'static str);
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let model = |d: &Path| vec!["--model".to_string(), s(d)];
    let with_onnx = |o: &Path| vec!["--model".into(), s(&demo), "--onnx".into(), s(o)];
    let cases: Vec<Case> = vec![
        (
            model(&r.join("nowhere")),
            r.join("nowhere"),
            "does not exist",
        ),
        (
            model(&folder("no_plans", None, true, true)),
            r.join("no_plans/plans.pkl"),
            "missing",
        ),
        (
            model(&folder(
                "cut_plans",
                Some(&plans[..plans.len() / 2]),
                true,
                true,
            )),
            r.join("cut_plans/plans.pkl"),
            "truncated",
        ),
        (
            model(&folder(
                "hostile_plans",
                Some(hostile.as_bytes()),
                true,
                true,
            )),
            r.join("hostile_plans/plans.pkl"),
            "expected a dict",
        ),
        (
            // Without model.onnx the network is built from the checkpoint in memory, which needs the
            // trainer's .pkl beside it to know the network family.
            model(&folder("no_onnx", Some(&plans), false, true)),
            r.join("no_onnx/fold_0/model_final_checkpoint.model.pkl"),
            "missing",
        ),
        (
            // A fold with only model.onnx is a valid deployment folder; one with neither is not.
            model(&folder("empty_fold", Some(&plans), false, false)),
            r.join("empty_fold/fold_0/model_final_checkpoint.model"),
            "final checkpoint or a model.onnx",
        ),
        (
            model(&folder("other_task", Some(&other_task), true, true)),
            r.join("other_task/fold_0/model.onnx"),
            // Both files are named: the ONNX (at the start) and the plans it disagrees with.
            "the network has 3 output classes, OTHER_PLANS has 4",
        ),
        (
            [model(&demo), vec!["--folds".into(), "3".into()]].concat(),
            demo.join("fold_3"),
            "fold 3",
        ),
        (
            with_onnx(&export.join("unetpp_aniso_1conv/model.onnx")),
            export.join("unetpp_aniso_1conv/model.onnx"),
            "patch size is [8, 32, 16], but [32, 32, 32]",
        ),
        (
            with_onnx(&export.join("unetpp_2d/model.onnx")),
            export.join("unetpp_2d/model.onnx"),
            "not a 3-D segmentation model",
        ),
        (
            with_onnx(&export.join("unet_aniso_3conv/model.onnx")),
            export.join("unet_aniso_3conv/model.onnx"),
            "2 input channels",
        ),
        (
            with_onnx(&onnx_text),
            onnx_text.clone(),
            "cannot load the model",
        ),
        (
            with_onnx(&onnx_cut),
            onnx_cut.clone(),
            "cannot load the model",
        ),
        (
            with_onnx(&r.join("absent.onnx")),
            r.join("absent.onnx"),
            "No such file",
        ),
    ];
    for (k, (args, file, problem)) in cases.iter().enumerate() {
        let out = r.join(format!("out_{k}"));
        let mut cmd = Command::new(EXE);
        cmd.args(args).arg("-i").arg(&image).arg("-o").arg(&out);
        let o = run_cmd(cmd);
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {}", o.stderr);
        let other_plans = r.join("other_task/plans.pkl");
        let problem = problem.replace("OTHER_PLANS", &other_plans.to_string_lossy());
        assert_error_line(o.stderr.trim_end(), file, &problem);
        assert!(!out.exists(), "{args:?}: the output folder was created");
    }
    assert!(!pwned.exists(), "the hostile pickle ran a command");
}

#[test]
fn an_unusable_output_folder_is_one_error_before_any_work() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let images = r.join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "a.nii.gz", 1);
    write_phantom(&images, "b.nii.gz", 2);
    let file = write_bytes(r, "a_file", b"x");
    for (out, problem) in [
        (file.clone(), "is a file, not a folder"),
        (file.join("sub"), "cannot create the output folder"),
    ] {
        let o = run_cmd(predict(&images, &out, &[]));
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{}", o.stderr);
        assert_eq!(o.errors().len(), 1, "{}", o.stderr);
        assert_error_line(o.errors()[0], &out, problem);
        assert!(!o.stderr.contains("tiles"), "a case was run: {}", o.stderr);
    }
    // A read-only folder: only meaningful when not running as root (root may write anywhere).
    let ro = r.join("read_only");
    std::fs::create_dir(&ro).expect("mkdir");
    let mut perm = std::fs::metadata(&ro).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o555);
    std::fs::set_permissions(&ro, perm).expect("chmod");
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        eprintln!("read-only folder not checked: this user may write into it (root)");
    } else {
        let o = run_cmd(predict(&images, &ro, &[]));
        assert_eq!(o.code, Some(2), "{}", o.stderr);
        assert_error_line(o.errors()[0], &ro, "cannot write in the output folder");
        assert!(listing(&ro).is_empty());
    }
}

/// A disk that fills up while a case is written (simulated by a file-size limit): the case fails with one
/// line naming the file, and neither that file nor its temporary is left; the segmentation, the file that
/// marks a case as done, is never written before the other outputs.
#[test]
fn a_full_disk_leaves_no_partial_output() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let images = r.join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "a.nii.gz", 1);
    // The probabilities (460 kB) do not fit in 64 kB: the case fails before its segmentation is written.
    // The segmentation (about 600 bytes) does not fit in 256 bytes.
    for (limit, extra, file) in [
        (
            64 << 10,
            &["--save-probabilities"][..],
            "a_probabilities.npy",
        ),
        (256, &[][..], "a.nii.gz"),
    ] {
        let out = r.join(format!("out_{limit}"));
        let mut cmd = predict(&images, &out, extra);
        limits::limit_file_size(&mut cmd, limit);
        let o = run_cmd(cmd);
        o.assert_no_crash();
        assert_eq!(o.code, Some(1), "{}", o.stderr);
        assert_eq!(o.errors().len(), 1, "{}", o.stderr);
        assert_error_line(o.errors()[0], &out.join(file), "File too large");
        assert_eq!(o.failed_cases(), ["a"]);
        assert_eq!(listing(&out), Vec::<String>::new(), "left behind");
    }
}

/// A `.txt` list naming an absent image: that case fails with one line, the listed good one is done.
#[test]
fn an_absent_listed_image_fails_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    write_phantom(r, "good_0000.nii.gz", 1);
    let list = write_bytes(
        r,
        "cases.txt",
        b"# two cases\ngood_0000.nii.gz\n\nabsent_0000.nii.gz\n",
    );
    let out = r.join("out");
    let o = run_cmd(predict(&list, &out, &[]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(o.errors().len(), 1, "{}", o.stderr);
    assert_error_line(
        o.error_about("error: absent: "),
        &r.join("absent_0000.nii.gz"),
        "No such file",
    );
    assert_eq!(o.failed_cases(), ["absent"]);
    assert_eq!(listing(&out), ["good.nii.gz"]);
}

//! `nnu-inspect` on the nnunetv2 model folders of fixtures/v2.

use std::path::PathBuf;
use std::process::Command;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2/models")
}

fn inspect(dir: PathBuf, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nnu-inspect"))
        .arg(&dir)
        .args(extra)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_a_plain_v2_model() {
    let t = inspect(
        models().join("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres"),
        &[],
    );
    assert!(
        t.contains("nnunetv2 (plans nnUNetPlans, dataset Dataset901_Plain)"),
        "{t}"
    );
    assert!(t.contains("trainer               nnUNetTrainer"), "{t}");
    assert!(t.contains("this model: 3d_fullres"), "{t}");
    assert!(
        t.contains("3 softmax outputs: 0 background, 1 liver, 2 tumour"),
        "{t}"
    );
    assert!(t.contains("patch size            [8, 24, 32]"), "{t}");
    assert!(t.contains("PlainConvUNet (3-D)"), "{t}");
    assert!(t.contains("CT: scheme CTNormalization"), "{t}");
    assert!(t.contains("mirroring axes        [0, 1, 2]"), "{t}");
    // Parameters without the state_dict's aliases, as sum(p.numel()) counts them (v2_make.py: 36365).
    assert!(
        t.contains("  fold_0              36365 parameters, epoch 2"),
        "{t}"
    );
    assert!(t.contains("  fold_1"), "{t}");
}

#[test]
fn lists_2d_resenc_and_region_models() {
    let t = inspect(
        models().join("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d"),
        &[],
    );
    assert!(t.contains("this model: 2d") && t.contains("(2-D)"), "{t}");
    let t = inspect(
        models().join("Dataset902_ResEnc/nnUNetTrainer__nnUNetResEncUNetMPlans__3d_fullres"),
        &[],
    );
    assert!(t.contains("ResidualEncoderUNet"), "{t}");
    assert!(t.contains("81338 parameters"), "{t}");
    assert!(t.contains("mirroring axes        [1, 2]"), "{t}");
    let t = inspect(
        models().join("Dataset903_Regions/nnUNetTrainer__nnUNetPlans__3d_fullres"),
        &["--no-weights"],
    );
    assert!(
        t.contains("2 sigmoid outputs: whole [1, 2], core [2]; regions_class_order [1, 2]"),
        "{t}"
    );
}

#[test]
fn a_broken_v2_folder_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = models().join("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres");
    std::fs::copy(src.join("plans.json"), dir.path().join("plans.json")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nnu-inspect"))
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("dataset.json"),
        "{err}"
    );
}

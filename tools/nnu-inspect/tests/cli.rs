//! Runs the binary on the reference model folders and on broken folders.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nnu-inspect"))
}

/// `fixtures/reference` (made by `scripts/goldens/reference_make.py`).
fn reference() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference")
}

#[test]
fn prints_the_reference_models() {
    let r = reference();
    for (model, trainer) in [
        ("unetpp-small", "nnUNetPlusPlusTrainerV2"),
        ("unet-small", "nnUNetTrainerV2"),
    ] {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(r.join(model).join("meta.json")).expect("meta"),
        )
        .expect("json");
        let out = bin().arg(r.join(model)).output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(trainer), "{text}");
        assert!(
            text.contains("patch size            [32, 32, 32]"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} parameters", meta["params"])),
            "{text}"
        );
        assert!(text.contains("3 outputs"), "{text}");
        assert!(text.contains("fold_0"), "{text}");
    }
}

#[test]
fn missing_plans_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin().arg(dir.path()).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("plans.pkl"),
        "{err}"
    );
}

#[test]
fn help_works() {
    let out = bin().arg("--help").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("MODEL_DIR"));
}

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn model_flag_as_in_the_other_tools() {
    let r = reference().join("unet-small");
    let o = bin().arg("-m").arg(&r).output().expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nnUNetTrainerV2"));
}

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-inspect"), "nnu-inspect");
}

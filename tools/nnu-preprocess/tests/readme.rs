//! The README's synopses of `nnu-preprocess` against its `--help`, and the help's example.

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-preprocess"), "nnu-preprocess");
}

#[test]
fn help_has_an_example_and_the_exit_codes() {
    readme::check_help(
        env!("CARGO_BIN_EXE_nnu-preprocess"),
        &["-m, --model", "-i, --input"],
    );
}

/// `--step-size` outside (0, 1] is refused by the argument parser: exit 2, no output folder.
#[test]
fn bad_step_size_is_refused_before_anything_is_created() {
    let root = tempfile::tempdir().expect("tempdir");
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/nnu-demo/data/model");
    for bad in ["0", "2", "-0.5", "NaN"] {
        let out = root.path().join("bins");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_nnu-preprocess"))
            .arg("-m")
            .arg(&model)
            .arg("-i")
            .arg(root.path())
            .arg("-o")
            .arg(&out)
            .arg(format!("--step-size={bad}"))
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("--step-size") && err.contains("(0, 1]"),
            "{bad}: {err}"
        );
        assert!(!out.exists(), "{bad}: the output folder was created");
    }
}

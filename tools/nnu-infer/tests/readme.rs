//! The README's synopses of `nnu-infer` against its `--help`, and the help's example.

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-infer"), "nnu-infer");
}

#[test]
fn help_has_an_example_and_the_exit_codes() {
    readme::check_help(
        env!("CARGO_BIN_EXE_nnu-infer"),
        &["-m, --model", "-i, --input"],
    );
}

/// `-m` takes a model folder with `--fold` (its `fold_K/model.onnx`) as well as a file.
#[test]
fn model_folder_and_fold() {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/nnu-demo/data/model");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nnu-infer"))
            .arg("-m")
            .arg(&model)
            .args(["--loop", "1", "--threads", "1"])
            .args(extra)
            .output()
            .expect("runs")
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["--fold", "3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("fold_3") && err.contains("model.onnx"),
        "{err}"
    );
}

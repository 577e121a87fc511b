//! The README's synopses of `nnu-postprocess` against its `--help`, and the help's example.

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-postprocess"), "nnu-postprocess");
}

#[test]
fn help_has_an_example_and_the_exit_codes() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nnu-postprocess"))
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Example:") && help.contains("Exit status"),
        "{help}"
    );
    assert!(
        help.contains("-m, --model") && help.contains("-i, --input"),
        "{help}"
    );
}

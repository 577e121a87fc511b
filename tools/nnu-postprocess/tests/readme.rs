//! The README's synopses of `nnu-postprocess` against its `--help`, and the help's example.

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-postprocess"), "nnu-postprocess");
}

#[test]
fn help_has_an_example_and_the_exit_codes() {
    readme::check_help(
        env!("CARGO_BIN_EXE_nnu-postprocess"),
        &["-m, --model", "-i, --input"],
    );
}

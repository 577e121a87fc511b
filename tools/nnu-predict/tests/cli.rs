//! The command line itself (issue 21): arguments refused before any work (exit 2, nothing created), the
//! messages a user sees for ordinary mistakes, the rerun summary, `--help`, and the README's synopsis.

mod common;
#[path = "../../readme_synopsis.rs"]
mod readme;

use std::path::Path;
use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

fn predict(model: &Path, input: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let mut cmd = Command::new(EXE);
    cmd.arg("-m")
        .arg(model)
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--disable-tta", "--threads", "2"])
        .args(extra);
    run_cmd(cmd)
}

#[test]
fn bad_step_sizes_are_refused_before_anything_is_created() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "a.nii.gz", 1);
    for bad in ["0", "2", "-0.5", "NaN", "inf", "half"] {
        let out = root.path().join(format!("out_{bad}"));
        let o = predict(
            &demo_model(),
            &images,
            &out,
            &[&format!("--step-size={bad}")],
        );
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "--step-size {bad}: {}", o.stderr);
        assert!(o.stderr.contains("--step-size"), "{bad}: {}", o.stderr);
        assert!(o.stderr.contains("(0, 1]"), "{bad}: {}", o.stderr);
        assert!(!o.stderr.contains("step_size"), "{bad}: {}", o.stderr);
        assert!(
            !out.exists(),
            "--step-size {bad}: the output folder was created"
        );
    }
}

#[test]
fn a_tiny_step_size_warns_how_much_more_work_it_makes() {
    let root = tempfile::tempdir().expect("tempdir");
    // A missing input ends the run right after the arguments: the warning comes first.
    let o = predict(
        &demo_model(),
        &root.path().join("missing"),
        &root.path().join("out"),
        &["--step-size", "0.01"],
    );
    assert!(
        o.stderr
            .contains("warning: --step-size 0.01 runs about 125000 times as many windows"),
        "{}",
        o.stderr
    );
    let o = predict(
        &demo_model(),
        &root.path().join("missing"),
        &root.path().join("out"),
        &["--step-size", "0.5"],
    );
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
}

#[test]
fn a_missing_plans_file_is_named_as_the_readme_names_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let model = root.path().join("model");
    std::fs::create_dir(&model).expect("mkdir");
    let out = root.path().join("out");
    let o = predict(&model, root.path(), &out, &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    let line = o.error_about("plans.pkl");
    assert!(line.contains("nnU-Net v1 plans"), "{line}");
    assert!(!line.contains("plans.json"), "{line}");
    assert!(!out.exists(), "the output folder was created");
}

#[test]
fn an_output_path_that_is_a_file_says_so() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "a.nii.gz", 1);
    let file = write_bytes(root.path(), "a_file", b"x");
    let o = predict(&demo_model(), &images, &file, &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    let line = o.error_about("a_file");
    assert!(line.contains("is a file, not a folder"), "{line}");
    assert!(!line.contains("exists and is not"), "{line}");
}

#[test]
fn a_rerun_says_the_cases_were_already_done() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "a.nii.gz", 1);
    write_phantom(&images, "b.nii.gz", 2);
    let out = root.path().join("out");
    let first = predict(&demo_model(), &images, &out, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first.stderr.contains(": 2 ok, 0 failed"),
        "{}",
        first.stderr
    );
    // Without a terminal every case prints its own line.
    for case in ["a:", "b:"] {
        assert!(
            first.stderr.lines().any(|l| l.starts_with(case)),
            "{}",
            first.stderr
        );
    }
    let again = predict(&demo_model(), &images, &out, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("2 already done, skipped"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("ok,"), "{}", again.stderr);
    assert!(!again.stderr.contains("0/0"), "{}", again.stderr);
}

#[test]
fn help_shows_the_required_arguments_an_example_and_the_default_output() {
    let o = run_cmd({
        let mut c = Command::new(EXE);
        c.arg("--help");
        c
    });
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout
            .contains("Usage: nnu-predict -m MODEL_DIR -i IMAGES"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("Example:"), "{}", o.stdout);
    assert!(o.stdout.contains("./nnu-predictions"), "{}", o.stdout);
    assert!(o.stdout.contains("Exit status"), "{}", o.stdout);
    // -m is --model, as in every tool
    let o = run_cmd({
        let mut c = Command::new(EXE);
        c.args(["-m", "/nonexistent/model", "-i", "/nonexistent/in"]);
        c
    });
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("/nonexistent/model"), "{}", o.stderr);
}

#[test]
fn readme_synopsis_matches_help() {
    readme::check(EXE, "nnu-predict");
}

//! Runs the `nnu-evaluate` binary on `fixtures/metrics` (goldens from `scripts/goldens/metrics_make.py`,
//! nnU-Net 1.7.1 `aggregate_scores`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/metrics")
}

/// Runs the tool inside `fixtures/metrics`, so the recorded paths are `pred/..`, `ref/..` as in the goldens.
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnu-evaluate"))
        .current_dir(fixtures())
        .args(args)
        .output()
        .unwrap()
}

/// The file without the lines that legitimately differ: `timestamp` and the `id` hashed over it.
fn without_time(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("\"timestamp\": ") && !l.contains("\"id\": "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_same_as(golden: &str, ours: &Path) {
    let want = std::fs::read_to_string(fixtures().join(golden)).unwrap();
    let got = std::fs::read_to_string(ours).unwrap();
    assert_eq!(
        without_time(&got),
        without_time(&want),
        "{} differs from {golden}",
        ours.display()
    );
    assert_eq!(got.lines().count(), want.lines().count());
}

#[test]
fn writes_nnunet_summary_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        "pred",
        "--labels",
        "0,1,2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_as("summary.json", &out);
    let table = String::from_utf8_lossy(&o.stdout);
    // Label 1 mean Dice from the golden's "mean" section, rounded to 4 decimals.
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with('1') && l.contains("0.7191")),
        "{table}"
    );
}

#[test]
fn default_labels_are_the_values_present() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        "pred",
        "--threads",
        "1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_as("summary.json", &out);
}

#[test]
fn splits_fold_evaluates_its_validation_cases() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        "pred",
        "--labels",
        "0,1,2",
        "--splits",
        "splits_final.pkl",
        "--fold",
        "1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_as("summary_fold1.json", &out);
    let bad = run(&[
        "--ref",
        "ref",
        "--pred",
        "pred",
        "--splits",
        "splits_final.pkl",
        "--fold",
        "5",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fold 5"));
}

#[test]
fn surface_metrics_are_added_for_foreground_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        "pred",
        "--labels",
        "0,1,2",
        "--surface",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = std::fs::read_to_string(&out).unwrap();
    // 9 cases + the mean, labels 1 and 2 each.
    assert_eq!(got.matches("\"Hausdorff Distance 95\"").count(), 20);
    assert_eq!(got.matches("\"Normalized Surface Dice\"").count(), 20);
    assert!(got.contains("NSD tolerance 1 mm"));
    // Every HD95 line we write (per case and mean, labels 1 and 2) appears verbatim in nnU-Net's
    // advanced=True summary (MedPy through nnU-Net's NaN rules): same value to the last digit.
    let golden = std::fs::read_to_string(fixtures().join("summary_advanced.json")).unwrap();
    let golden: std::collections::HashSet<&str> = golden.lines().collect();
    for line in got
        .lines()
        .filter(|l| l.contains("\"Hausdorff Distance 95\""))
    {
        assert!(golden.contains(line), "not in nnU-Net's summary: {line}");
    }
}

#[test]
fn missing_cases_and_bad_geometry_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pred = dir.path().join("pred");
    std::fs::create_dir(&pred).unwrap();
    std::fs::copy(
        fixtures().join("pred/case_00.nii.gz"),
        pred.join("case_00.nii.gz"),
    )
    .unwrap();
    let o = run(&["--ref", "ref", "--pred", pred.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("missing prediction") && err.contains("case_08.nii.gz"),
        "{err}"
    );
    assert!(err.contains("error: "), "{err}");

    // With --allow-missing the one matched case is evaluated.
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        pred.to_str().unwrap(),
        "--allow-missing",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(pred.join("summary.json").is_file());

    // A prediction whose spacing differs (case_01 has other spacing than case_00) is refused.
    std::fs::remove_file(pred.join("summary.json")).unwrap();
    std::fs::copy(
        fixtures().join("pred/case_01.nii.gz"),
        pred.join("case_00.nii.gz"),
    )
    .unwrap();
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        pred.to_str().unwrap(),
        "--allow-missing",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("case_00.nii.gz: spacing mismatch"), "{err}");
    assert!(!pred.join("summary.json").exists());
}

/// The workspace's exit-code convention: 2 for bad arguments or unusable inputs (nothing written), 1 when
/// some cases could not be evaluated (`missing_cases_and_bad_geometry_are_errors` and `bad_input.rs`).
#[test]
fn bad_arguments_and_inputs_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let missing = dir.path().join("no_such_folder");
    let junk_splits = dir.path().join("splits_final.pkl");
    std::fs::write(&junk_splits, b"not a pickle").unwrap();
    let o = out.to_str().unwrap();
    for (what, args, needle) in [
        (
            "unknown flag",
            vec!["--ref", "ref", "--pred", "pred", "--bogus"],
            "--bogus",
        ),
        ("no --pred", vec!["--ref", "ref", "-o", o], "--pred"),
        (
            "--labels not numbers",
            vec![
                "--ref", "ref", "--pred", "pred", "--labels", "liver", "-o", o,
            ],
            "liver",
        ),
        (
            "missing reference folder",
            vec![
                "--ref",
                missing.to_str().unwrap(),
                "--pred",
                "pred",
                "-o",
                o,
            ],
            "no_such_folder",
        ),
        (
            "unreadable splits",
            vec![
                "--ref",
                "ref",
                "--pred",
                "pred",
                "--splits",
                junk_splits.to_str().unwrap(),
                "--fold",
                "0",
                "-o",
                o,
            ],
            "splits_final.pkl",
        ),
    ] {
        let r = run(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!out.exists(), "{what}: wrote {}", out.display());
    }
}

#[path = "../../readme_synopsis.rs"]
mod readme;

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-evaluate"), "nnu-evaluate");
}

#[test]
fn label_names_from_dataset_json_head_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let v1 = dir.path().join("v1.json");
    let v2 = dir.path().join("v2.json");
    std::fs::write(
        &v1,
        r#"{"labels": {"0": "background", "1": "liver", "2": "tumour"}, "modality": {"0": "CT"}}"#,
    )
    .unwrap();
    std::fs::write(
        &v2,
        r#"{"labels": {"background": 0, "liver": 1, "tumour": 2}, "channel_names": {"0": "CT"}}"#,
    )
    .unwrap();
    for ds in [&v1, &v2] {
        let o = run(&[
            "--ref",
            "ref",
            "--pred",
            "pred",
            "--labels",
            "0,1,2",
            "--dataset-json",
            ds.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // summary.json keeps nnU-Net's keys: unchanged by the names
        assert_same_as("summary.json", &out);
        let table = String::from_utf8_lossy(&o.stdout);
        let row = |label: char| {
            table
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no row {label}:\n{table}"))
                .to_string()
        };
        assert!(table.lines().next().unwrap().contains("name"), "{table}");
        assert!(
            row('1').contains("liver") && row('1').contains("0.7191"),
            "{table}"
        );
        assert!(row('2').contains("tumour"), "{table}");
        assert!(row('0').contains("background"), "{table}");
    }
    // an explicit file that is not a dataset.json: exit 2, naming it
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"labels": {"one": "liver"}}"#).unwrap();
    let o = run(&[
        "--ref",
        "ref",
        "--pred",
        "pred",
        "--dataset-json",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.json") && err.contains("labels/one"),
        "{err}"
    );
}

//! What the user of `nnu-evaluate` sees on damaged predictions and an unusable output path: one
//! `error: FILE: problem` line per bad case and a last line saying how many could not be evaluated, exit
//! code 1, and no `summary.json` (a summary of the readable cases only would misstate the score); an
//! unusable output path is exit code 2 (the workspace's convention for unusable input or output).
//! Missing cases and a spacing mismatch of a single case are in `cli.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/metrics")
}

/// A copy of `fixtures/metrics/{ref,pred}` in `dir`.
fn copy_fixtures(dir: &Path) -> (PathBuf, PathBuf) {
    let mut out = Vec::new();
    for side in ["ref", "pred"] {
        let d = dir.join(side);
        std::fs::create_dir(&d).expect("mkdir");
        for e in std::fs::read_dir(fixtures().join(side)).expect("fixtures") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), d.join(e.file_name())).expect("copy");
        }
        out.push(d);
    }
    (out[0].clone(), out[1].clone())
}

fn evaluate(reference: &Path, pred: &Path, extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnu-evaluate"))
        .arg("--ref")
        .arg(reference)
        .arg("--pred")
        .arg(pred)
        .args(["--threads", "2"])
        .args(extra)
        .output()
        .expect("run")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn damaged_predictions_are_listed_and_no_summary_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reference, pred) = copy_fixtures(dir.path());
    let cut = pred.join("case_01.nii.gz");
    let bytes = std::fs::read(&cut).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("cut");
    let text = pred.join("case_02.nii.gz");
    std::fs::write(&text, b"not an image\n").expect("text");
    let flipped = pred.join("case_03.nii.gz");
    let mut bytes = std::fs::read(&flipped).expect("read");
    let n = bytes.len();
    bytes[n - 6] ^= 0x5a; // the gzip CRC
    std::fs::write(&flipped, &bytes).expect("flip");
    // case_04: the reference's labels at another spacing.
    let other = pred.join("case_04.nii.gz");
    let mut v = nnu_volume::read_labels(&reference.join("case_04.nii.gz")).expect("read");
    v.geometry.spacing[0] *= 2.0;
    v.write(&other, &nnu_volume::WriteOptions::default())
        .expect("write");

    let o = evaluate(&reference, &pred, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    for (file, problems) in [
        (&cut, &["truncated", "corrupt gzip"][..]),
        (&text, &["truncated"][..]),
        (&flipped, &["checksum"][..]),
        (&other, &["spacing mismatch"][..]),
    ] {
        let about: Vec<_> = lines
            .iter()
            .filter(|l| l.contains(&*file.to_string_lossy()))
            .collect();
        assert_eq!(about.len(), 1, "{err}");
        assert!(
            problems.iter().any(|p| about[0].contains(p)),
            "{}",
            about[0]
        );
    }
    assert_eq!(lines.len(), 5, "{err}");
    assert!(
        lines[4].contains("4 of 9 case(s) could not be evaluated"),
        "{err}"
    );
    assert!(!names(&pred).iter().any(|f| f.contains("summary")));
    assert_eq!(names(&pred).len(), 9);
}

#[test]
fn an_unusable_output_path_is_one_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reference, pred) = copy_fixtures(dir.path());
    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").expect("file");
    for out in [file.join("summary.json"), pred.clone()] {
        let o = evaluate(&reference, &pred, &[Path::new("-o"), &out]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: {}: ", out.display())),
            "{err}"
        );
        assert_eq!(
            names(&pred).len(),
            9,
            "something was left in {}",
            pred.display()
        );
        assert_eq!(names(dir.path()), ["a_file", "pred", "ref"]);
    }
}

/// A prediction placed elsewhere than its reference (origin 50 mm off, or a flipped direction) is not
/// scored silently: an error naming both files and no `summary.json`; `--allow-geometry-mismatch`
/// scores it with a warning.
#[test]
fn a_prediction_in_another_place_is_an_error() {
    for (what, shift) in [("origin", true), ("direction", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (reference, pred) = copy_fixtures(dir.path());
        let case = pred.join("case_00.nii.gz");
        let mut v = nnu_volume::read_labels(&case).expect("read");
        if shift {
            v.geometry.origin[0] += 50.0;
        } else {
            v.geometry.direction[0] = -v.geometry.direction[0];
        }
        v.write(&case, &nnu_volume::WriteOptions::default())
            .expect("write");
        let o = evaluate(&reference, &pred, &[]);
        assert_eq!(o.status.code(), Some(1), "{what}");
        let err = String::from_utf8_lossy(&o.stderr);
        let line = err
            .lines()
            .find(|l| l.contains("differs from the reference"))
            .unwrap_or_else(|| panic!("{what}: {err}"));
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(&*case.to_string_lossy()), "{line}");
        assert!(
            line.contains(&*reference.join("case_00.nii.gz").to_string_lossy()),
            "{line}"
        );
        assert!(line.contains(what), "{line}");
        assert!(!pred.join("summary.json").exists());
        let o = evaluate(&reference, &pred, &[Path::new("--allow-geometry-mismatch")]);
        assert_eq!(o.status.code(), Some(0), "{what}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("warning: ") && err.contains(what), "{err}");
        assert!(pred.join("summary.json").exists());
    }
}

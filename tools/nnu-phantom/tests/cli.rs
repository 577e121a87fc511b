//! Runs the `nnu-phantom` binary.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nnu-phantom"))
}

#[test]
fn writes_a_small_dataset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["--out"])
        .arg(dir.path())
        .args([
            "--cases",
            "2",
            "--shape",
            "10,24,28",
            "--spacing",
            "5,2,2",
            "--seed",
            "5",
            "--flip-x",
            "--threads",
            "1",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = nnu_volume::read_volume(&dir.path().join("imagesTr/phantom_001_0000.nii.gz"))
        .expect("image");
    assert_eq!(img.shape_zyx(), [10, 24, 28]);
    assert_eq!(img.geometry.spacing_zyx(), [5.0, 2.0, 2.0]);
    assert_eq!(img.geometry.direction[0], -1.0);
    // the tool's case 1 is the library's seed 5 + 1
    let lib = nnu_synth::generate(
        &nnu_synth::PhantomSpec::new([10, 24, 28], [5.0, 2.0, 2.0], 6).flipped(0),
    )
    .expect("gen");
    assert_eq!(img.data, lib.image.data.mapv(f32::from));
    let labels =
        nnu_volume::read_labels(&dir.path().join("labelsTr/phantom_001.nii.gz")).expect("labels");
    assert_eq!(labels.data, lib.labels.data);
    assert!(dir.path().join("dataset.json").is_file());
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .arg("--out")
        .arg(dir.path())
        .args(["--shape", "10,0,4"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("shape"), "{err}");
    let out = bin()
        .args(["--out", "x", "--spacing", "1,2"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let help = bin().arg("--help").output().expect("runs");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--spacing"));
}

#[path = "../../readme_synopsis.rs"]
mod readme;

/// `-o/--output` as in every tool; the old `--out` still works (hidden alias).
#[test]
fn output_flag_and_its_old_spelling() {
    for flag in ["-o", "--output", "--out"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("p");
        let o = bin()
            .arg(flag)
            .arg(&out)
            .args(["--shape", "6,10,12", "--threads", "1"])
            .output()
            .expect("runs");
        assert!(
            o.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.join("imagesTr/phantom_000_0000.nii.gz").is_file(),
            "{flag}"
        );
    }
    let help = bin().arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("-o, --output"), "{help}");
    assert!(help.contains("Example:"), "{help}");
    assert!(
        !help.contains("--out "),
        "the old spelling is hidden: {help}"
    );
}

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-phantom"), "nnu-phantom");
}

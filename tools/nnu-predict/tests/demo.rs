//! `--demo` is self-contained: the binary, copied away from the build tree and run from an unrelated
//! folder, unpacks its embedded model and phantoms, writes where `-o` says and prints Dice per case.

use std::process::Command;

#[test]
fn demo_runs_from_a_copied_binary_in_another_folder() {
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let exe = bin_dir.path().join("nnu-predict");
    std::fs::copy(env!("CARGO_BIN_EXE_nnu-predict"), &exe).expect("copy the binary");
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let dest = out.path().join("demo out");
    // Without mirroring, to keep the test short; the demo's defaults are exercised by the README command.
    let o = Command::new(&exe)
        .current_dir(cwd.path())
        .args(["--demo", "--disable-tta", "--threads", "2", "-o"])
        .arg(&dest)
        .output()
        .expect("run nnu-predict --demo");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    for case in ["phantom_000", "phantom_001"] {
        assert!(dest.join(format!("{case}.nii.gz")).is_file(), "{case}");
        assert!(dest.join(format!("{case}.png")).is_file(), "{case}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with(case))
            .unwrap_or_else(|| panic!("no Dice line for {case} in:\n{stdout}"));
        let dice: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().expect("a Dice value"))
            .collect();
        assert_eq!(dice.len(), 2, "{line}");
        // The shipped network's liver Dice is about 0.96 (crates/nnu-demo/data/README.md); a broken
        // unpacking (wrong model, wrong image) gives near 0.
        assert!(dice[0] > 0.5, "{line}");
    }
    // Nothing was written into the working folder.
    assert_eq!(std::fs::read_dir(cwd.path()).expect("ls").count(), 0);
}

//! Runs the `nnu-info` binary on a folder of tiles.

use std::process::Command;

#[test]
fn writes_the_list_and_four_shards() {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("input_bins");
    std::fs::create_dir(&bins).unwrap();
    for i in 0..10 {
        std::fs::write(bins.join(format!("c_0_4_0_4_{i}_{}_0.bin", i + 4)), b"").unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_nnu-info"))
        .current_dir(dir.path())
        .args(["input_bins", "out/all.info"])
        .output()
        .unwrap();
    // The output folder does not exist: a clear error naming the file, non-zero exit.
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("all.info"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_nnu-info"))
        .current_dir(dir.path())
        .args(["input_bins", "all.info"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = std::fs::read_to_string(dir.path().join("all.info")).unwrap();
    assert_eq!(all.lines().count(), 10);
    assert_eq!(
        all.lines().next().unwrap(),
        "0 input_bins/c_0_4_0_4_0_4_0.bin 128 128"
    );
    let counts: Vec<usize> = (1..=4)
        .map(|k| {
            std::fs::read_to_string(dir.path().join(format!("sth{k}.info")))
                .unwrap()
                .lines()
                .count()
        })
        .collect();
    assert_eq!(counts, [2, 2, 2, 4]);

    let out = Command::new(env!("CARGO_BIN_EXE_nnu-info"))
        .args(["/nonexistent-dir", "x.info"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: /nonexistent-dir: "));
}

#[path = "../../readme_synopsis.rs"]
mod readme;

/// `-m MODEL_DIR` sets the width and height columns from the model's patch (32 x 32 here), the 128
/// defaults otherwise; an explicit --width wins.
#[test]
fn model_sets_the_patch_columns() {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bins");
    std::fs::create_dir(&bins).unwrap();
    std::fs::write(bins.join("c_0_4_0_4_0_4_0.bin"), b"").unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/reference/unet-small");
    let run = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_nnu-info"))
            .current_dir(dir.path())
            .args(["bins", "all.info", "--shards", "0"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(dir.path().join("all.info")).unwrap()
    };
    assert!(run(&[]).trim_end().ends_with(" 128 128"));
    let m = model.to_str().unwrap();
    assert!(run(&["-m", m]).trim_end().ends_with(" 32 32"));
    assert!(run(&["-m", m, "--width", "64"])
        .trim_end()
        .ends_with(" 64 32"));
    // A folder without plans: exit 2, naming plans.pkl.
    let o = Command::new(env!("CARGO_BIN_EXE_nnu-info"))
        .current_dir(dir.path())
        .args(["bins", "all.info", "-m", "bins"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("plans.pkl"));
}

#[test]
fn readme_synopsis_matches_help() {
    readme::check(env!("CARGO_BIN_EXE_nnu-info"), "nnu-info");
}

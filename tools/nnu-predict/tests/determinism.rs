//! The same inputs give byte-identical outputs (segmentation `.nii.gz`, probabilities `.npy`, preview
//! `.png`) across runs and thread counts.
//!
//! Why this holds (see `docs/reliability.md`): tract's multithreaded matrix products split the output
//! matrix between threads, each element is reduced by one thread in a fixed order; tiles are merged in grid
//! order; the rayon loops of resampling, export and the parallel gzip writer are per-slice or per-block maps
//! whose results are combined in index order; nothing sums floating-point values across threads.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

fn predict(images: &Path, out: &Path, threads: usize, mirror_axes: Option<&str>) {
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(demo_model())
        .arg("-i")
        .arg(images)
        .arg("-o")
        .arg(out)
        .args(["--threads", &threads.to_string()])
        .args(["--save-probabilities", "--preview"]);
    if let Some(axes) = mirror_axes {
        cmd.args(["--mirror-axes", axes]);
    }
    let o = run_cmd(cmd);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

/// A phantom at another spacing than the model's, so resampling in and out (rayon loops) is exercised.
fn images(dir: &Path) -> std::path::PathBuf {
    let images = dir.join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let (a, g) = phantom_of([20, 48, 44], [3.0, 1.6, 1.8], 21);
    write(&images, "case_0000.nii.gz", &a, &g);
    images
}

#[test]
fn same_bytes_across_runs_and_thread_counts() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = images(root.path());
    let runs = [(1, "t1"), (2, "t2"), (2, "t2_again")];
    for (threads, name) in runs {
        // Mirroring along x only: tiles x 2 passes, flips and the Gaussian merge of overlapping tiles.
        predict(&images, &root.path().join(name), threads, Some("2"));
    }
    let t1 = root.path().join("t1");
    assert_eq!(
        listing(&t1),
        ["case.nii.gz", "case.png", "case_probabilities.npy"]
    );
    for (_, name) in &runs[1..] {
        assert_same_folders(&t1, &root.path().join(name));
    }
}

/// All eight mirrors with 1, 2 and 4 threads (about a minute in the dev profile on 2 cores).
#[test]
#[ignore = "slow: full test-time augmentation, three runs"]
fn same_bytes_with_all_mirrors_and_four_threads() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = images(root.path());
    for (threads, name) in [(1, "t1"), (2, "t2"), (4, "t4")] {
        predict(&images, &root.path().join(name), threads, None);
    }
    let t1 = root.path().join("t1");
    assert_same_folders(&t1, &root.path().join("t2"));
    assert_same_folders(&t1, &root.path().join("t4"));
}

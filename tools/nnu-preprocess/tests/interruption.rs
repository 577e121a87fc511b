//! `nnu-preprocess` (tile bins) killed with SIGKILL in the middle of a case, then run again: every tile
//! left by the killed run is complete (tiles are written atomically), `all_shape.txt` lists only finished
//! cases, the second run writes what is missing (and rewrites a tile of the wrong size), removes the
//! temporaries and the locks of a kill, and the folder ends byte-identical to that of an uninterrupted run
//! (no lock file left).

#[path = "../../nnu-predict/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-preprocess");
const CASES: [&str; 3] = ["case_a", "case_b", "case_c"];
/// 32 x 64 x 64 at the model's spacing: 1 x 3 x 3 tiles x 8 mirrors.
const TILES_PER_CASE: usize = 72;

fn preprocess(images: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(demo_model())
        .arg("-i")
        .arg(images)
        .arg("-o")
        .arg(out)
        .args(["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn bins_of(out: &Path, case: &str) -> usize {
    listing(out)
        .iter()
        .filter(|f| f.starts_with(&format!("{case}_")) && f.ends_with(".bin"))
        .count()
}

fn shape_cases(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("all_shape.txt"))
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split(' ').next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// After a kill: every visible file is identical to the uninterrupted run's (tiles are never partial), and
/// every case of `all_shape.txt` has all its tiles. Hidden files are temporaries or the killed run's
/// locks (`.CASE.lock`, `.all_shape.txt.lock`, holding the killed process's `PID-START`), which the next
/// run takes over or removes: the final listing after the rerun must hold neither.
fn assert_consistent(out: &Path, reference: &Path, killed: u32) {
    let reference_lines = std::fs::read_to_string(reference.join("all_shape.txt")).expect("ref");
    let is_lock = |name: &str| {
        name == ".all_shape.txt.lock" || CASES.iter().any(|c| name == format!(".{c}.lock"))
    };
    for name in listing(out) {
        if is_lock(&name) {
            let owner = std::fs::read_to_string(out.join(&name)).expect("read lock");
            assert!(
                owner.starts_with(&format!("{killed}-")),
                "{name} is not the killed run's (pid {killed}): {owner}"
            );
        } else if name.starts_with('.') {
            assert!(name.ends_with(".tmp"), "unexpected file {name}");
        } else if name == "all_shape.txt" {
            let text = std::fs::read_to_string(out.join(&name)).expect("read");
            assert!(reference_lines.starts_with(&text), "{text}");
        } else {
            assert!(
                std::fs::read(out.join(&name)).expect("read")
                    == std::fs::read(reference.join(&name)).expect("reference has it"),
                "{name} differs from the uninterrupted run's (partial tile?)"
            );
        }
    }
    for case in shape_cases(out) {
        assert_eq!(
            bins_of(out, &case),
            TILES_PER_CASE,
            "{case} is listed but incomplete"
        );
    }
}

#[test]
fn a_killed_run_resumes_to_identical_bins() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let images = r.join("images");
    std::fs::create_dir(&images).expect("mkdir");
    for (k, c) in CASES.iter().enumerate() {
        let (a, g) = phantom_of([32, 64, 64], SPACING, 40 + k as u64);
        write(&images, &format!("{c}_0000.nii.gz"), &a, &g);
    }
    let reference = r.join("reference");
    assert!(preprocess(&images, &reference)
        .status()
        .expect("run")
        .success());
    assert_eq!(shape_cases(&reference), CASES);
    for c in CASES {
        assert_eq!(bins_of(&reference, c), TILES_PER_CASE);
    }

    // 1. Killed in the middle of the second case, the first one finished.
    let out = r.join("out");
    let mut interrupted = false;
    let mut killed = 0;
    for attempt in 0..5 {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = preprocess(&images, &out).spawn().expect("spawn");
        killed = child.id();
        let mid_second = || {
            shape_cases(&out) == ["case_a"]
                && (1..TILES_PER_CASE).contains(&bins_of(&out, "case_b"))
        };
        if kill_when(&mut child, mid_second) {
            interrupted = true;
            break;
        }
        eprintln!("attempt {attempt}: the kill point was missed; again");
    }
    assert!(
        interrupted,
        "could not kill nnu-preprocess in the middle of a case"
    );
    assert_consistent(&out, &reference, killed);
    // (case_b may have finished between the check and the kill; case_c cannot have.)
    assert!(!shape_cases(&out).contains(&"case_c".to_string()));
    assert_eq!(bins_of(&out, "case_c"), 0);
    // What a kill during a write leaves (made here, as the kill rarely lands in a write), and a tile of
    // the wrong size (a copy gone wrong): the rerun removes the one and rewrites the other.
    write_bytes(
        &out,
        ".case_b_0_32_0_32_0_32_3.bin.4000000-1-7.tmp",
        b"partial",
    );
    // What a kill just after a case's last write leaves (made here, as the kill rarely lands there): the
    // lock of a finished case and that of all_shape.txt, whose process is gone.
    for lock in [".case_a.lock", ".all_shape.txt.lock"] {
        write_bytes(&out, lock, b"4000000-1");
    }
    let first = listing(&out)
        .into_iter()
        .find(|f| f.starts_with("case_a_"))
        .expect("a tile");
    std::fs::write(out.join(&first), b"short").expect("cut");
    assert!(preprocess(&images, &out).status().expect("rerun").success());
    assert_same_folders(&out, &reference);

    // 2. Killed at an arbitrary moment (reading the model, preprocessing or writing).
    let out2 = r.join("out2");
    let mut child = preprocess(&images, &out2).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    child.wait().expect("wait");
    assert_consistent(&out2, &reference, child.id());
    assert!(preprocess(&images, &out2)
        .status()
        .expect("rerun")
        .success());
    assert_same_folders(&out2, &reference);
}

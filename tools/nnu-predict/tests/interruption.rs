//! `nnu-predict` killed with SIGKILL in the middle of a batch, then run again: the second run completes
//! the batch, skips the cases that were finished, removes the temporaries and the case locks the kill
//! left, and the output folder ends byte-identical to that of an uninterrupted run (no lock file left).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");
const CASES: [&str; 3] = ["case_a", "case_b", "case_c"];

fn predict(images: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(demo_model())
        .arg("-i")
        .arg(images)
        .arg("-o")
        .arg(out)
        .args(["--disable-tta", "--threads", "1", "--save-probabilities"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// After a kill: every visible file is a complete output, identical to the reference; nothing else but
/// hidden temporaries and the killed run's case lock (`.CASE.lock` holding the killed process's
/// `PID-START`: SIGKILL leaves it, and the next run takes it over or removes it; the final listing after
/// the rerun must hold neither).
fn assert_only_complete_outputs(out: &Path, reference: &Path, killed: u32) {
    for name in listing(out) {
        if name.starts_with('.') {
            if CASES.iter().any(|c| name == format!(".{c}.lock")) {
                let owner = std::fs::read_to_string(out.join(&name)).expect("read lock");
                assert!(
                    owner.starts_with(&format!("{killed}-")),
                    "{name} is not the killed run's (pid {killed}): {owner}"
                );
            } else {
                assert!(name.ends_with(".tmp"), "unexpected file {name}");
            }
            continue;
        }
        assert!(
            std::fs::read(out.join(&name)).expect("read")
                == std::fs::read(reference.join(&name)).expect("reference has it"),
            "{name} differs from the uninterrupted run's (partial file?)"
        );
    }
}

#[test]
fn a_killed_run_resumes_to_identical_outputs() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let images = r.join("images");
    std::fs::create_dir(&images).expect("mkdir");
    for (k, c) in CASES.iter().enumerate() {
        write_phantom(&images, &format!("{c}_0000.nii.gz"), 10 + k as u64);
    }
    let reference = r.join("reference");
    let status = predict(&images, &reference).status().expect("run");
    assert!(status.success());
    assert_eq!(listing(&reference).len(), 2 * CASES.len());

    // 1. Killed between cases: the first case is done, the second is not.
    let out = r.join("out");
    let seg = |c: &str| out.join(format!("{c}.nii.gz"));
    let mut interrupted = false;
    let mut killed = 0;
    for attempt in 0..3 {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = predict(&images, &out).spawn().expect("spawn");
        killed = child.id();
        if kill_when(&mut child, || {
            seg("case_a").exists() && !seg("case_b").exists()
        }) {
            interrupted = true;
            break;
        }
        eprintln!("attempt {attempt}: the run ended before the kill; again");
    }
    assert!(interrupted, "could not kill nnu-predict between two cases");
    assert!(!seg("case_c").exists());
    assert_only_complete_outputs(&out, &reference, killed);
    let finished = std::fs::metadata(seg("case_a"))
        .and_then(|m| m.modified())
        .expect("mtime");
    // What a kill during a write leaves: temporaries (made here, as the kill rarely lands in a write).
    let pid = 4_000_000;
    for t in ["case_b.nii.gz", "case_b_probabilities.npy"] {
        write_bytes(&out, &format!(".{t}.{pid}-1-0.tmp"), b"partial");
    }
    // What a kill between a case's last rename and its unlock leaves: the lock of a finished case, which
    // the rerun skips without locking it (made here, as the kill rarely lands there).
    write_bytes(&out, ".case_a.lock", format!("{pid}-1").as_bytes());
    let status = predict(&images, &out).status().expect("rerun");
    assert!(status.success());
    assert_same_folders(&out, &reference);
    let after = std::fs::metadata(seg("case_a"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(finished, after, "the finished case was recomputed");

    // 2. Killed at an arbitrary moment of the first case (reading, model, inference or writing).
    let out2 = r.join("out2");
    let mut child = predict(&images, &out2).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    let _ = child.kill();
    child.wait().expect("wait");
    assert_only_complete_outputs(&out2, &reference, child.id());
    assert!(predict(&images, &out2).status().expect("rerun").success());
    assert_same_folders(&out2, &reference);
}

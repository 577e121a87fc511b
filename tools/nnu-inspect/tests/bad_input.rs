//! `nnu-inspect` on damaged and hostile model folders: each is exactly one `error: FILE: problem` line on
//! stderr, nothing on stdout, a non-zero exit, and a hostile pickle runs nothing. (The demo model in
//! `crates/nnu-demo/data/model` is the intact folder the damaged ones are made from.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/nnu-demo/data/model")
}

/// A model folder in `root/name`: `plans.pkl` with `plans` (if any), `fold_0/` with `checkpoint` (if any)
/// as its final checkpoint and `trainer_pkl` (if any) as the trainer's `.pkl`.
fn folder(
    root: &Path,
    name: &str,
    plans: Option<&[u8]>,
    checkpoint: Option<&[u8]>,
    trainer_pkl: Option<&[u8]>,
) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(d.join("fold_0")).expect("mkdir");
    let files = [
        ("plans.pkl", plans),
        ("fold_0/model_final_checkpoint.model", checkpoint),
        ("fold_0/model_final_checkpoint.model.pkl", trainer_pkl),
    ];
    for (f, bytes) in files {
        if let Some(b) = bytes {
            std::fs::write(d.join(f), b).expect("write");
        }
    }
    d
}

#[test]
fn each_damaged_folder_is_one_line_naming_the_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let read = |f: &str| std::fs::read(demo().join(f)).expect("demo model");
    let plans = read("plans.pkl");
    let ckpt = read("fold_0/model_final_checkpoint.model");
    let trainer = read("fold_0/model_final_checkpoint.model.pkl");
    let legacy = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/artifacts/checkpoints/legacy.model"),
    )
    .expect("legacy fixture");
    let pwned = r.join("pwned");
    let hostile = format!("cos\nsystem\n(S'touch {}'\ntR.", pwned.to_string_lossy());
    let hostile = hostile.as_bytes();
    let noise: Vec<u8> = (0..1500u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    // A pickle that claims a 1 TiB bytes object.
    let mut bomb = vec![0x80, 4, 0x8e];
    bomb.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bomb.extend_from_slice(b"abc");
    let mut flipped = ckpt.clone();
    let mid = flipped.len() / 2;
    flipped[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0xa5);
    let cases: Vec<(PathBuf, PathBuf, &str)> = vec![
        (r.join("nowhere"), r.join("nowhere"), "does not exist"),
        {
            let d = folder(r, "no_plans", None, Some(&ckpt), None);
            (d.clone(), d.join("plans.pkl"), "missing")
        },
        {
            let d = folder(r, "no_checkpoint", Some(&plans), None, None);
            (
                d.clone(),
                d.join("fold_0/model_final_checkpoint.model"),
                "final checkpoint",
            )
        },
        {
            let d = folder(
                r,
                "cut_plans",
                Some(&plans[..plans.len() / 2]),
                Some(&ckpt),
                None,
            );
            (d.clone(), d.join("plans.pkl"), "truncated")
        },
        {
            let d = folder(r, "noise_plans", Some(&noise), Some(&ckpt), None);
            (d.clone(), d.join("plans.pkl"), "pickle")
        },
        {
            let d = folder(r, "hostile_plans", Some(hostile), Some(&ckpt), None);
            (d.clone(), d.join("plans.pkl"), "os.system")
        },
        {
            let d = folder(r, "bomb_plans", Some(&bomb), Some(&ckpt), None);
            (d.clone(), d.join("plans.pkl"), "truncated")
        },
        {
            let d = folder(
                r,
                "hostile_trainer",
                Some(&plans),
                Some(&ckpt),
                Some(hostile),
            );
            (
                d.clone(),
                d.join("fold_0/model_final_checkpoint.model.pkl"),
                "os.system",
            )
        },
        {
            let d = folder(
                r,
                "cut_checkpoint",
                Some(&plans),
                Some(&ckpt[..ckpt.len() / 2]),
                Some(&trainer),
            );
            (
                d.clone(),
                d.join("fold_0/model_final_checkpoint.model"),
                "Zip",
            )
        },
        {
            let d = folder(
                r,
                "flipped_checkpoint",
                Some(&plans),
                Some(&flipped),
                Some(&trainer),
            );
            (
                d.clone(),
                d.join("fold_0/model_final_checkpoint.model"),
                "Invalid checksum",
            )
        },
        {
            let d = folder(
                r,
                "legacy_checkpoint",
                Some(&plans),
                Some(&legacy),
                Some(&trainer),
            );
            (
                d.clone(),
                d.join("fold_0/model_final_checkpoint.model"),
                "legacy (pre-1.6) torch.save format",
            )
        },
    ];
    for (dir, file, problem) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_nnu-inspect"))
            .arg(&dir)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", dir.display());
        assert!(
            o.stdout.is_empty(),
            "{}: printed a description",
            dir.display()
        );
        assert_eq!(err.lines().count(), 1, "{}: {err}", dir.display());
        let line = err.trim_end();
        assert!(
            line.starts_with(&format!("error: {}", file.display())),
            "{}: {line}",
            dir.display()
        );
        assert!(line.contains(problem), "{}: {line}", dir.display());
    }
    assert!(!pwned.exists(), "a hostile pickle ran a command");
}

//! What the user of `nnu-postprocess` sees when the file exchange went wrong: missing, short, extra or
//! duplicated dumps, a case of `all_shape.txt` without its image, an image damaged since preprocessing,
//! a damaged `all_shape.txt`, an unusable output folder. Each bad case is one `error:` line naming the
//! file, the other cases are written, the failed ones are listed, and nothing is written for a bad case.
//!
//! The tiles are written with the library (`nnu_pipeline::bins::preprocess_to_bins`, what `nnu-preprocess`
//! runs); the dumps are made-up logits of the right shape (`(1, 3, 32, 32, 32)` per tile), which is all
//! the checks here need: the numerics of the merge are tested by the round-trip and parity tests.

#[path = "../../nnu-predict/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use nnu_pipeline::bins::{preprocess_to_bins, BinsOptions};
use nnu_pipeline::cases::discover_cases;
use nnu_pipeline::model::ModelSpec;
use nnu_tiling::MirrorSet;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-postprocess");

struct Setup {
    _root: tempfile::TempDir,
    images: PathBuf,
    shape_file: PathBuf,
    dumps: PathBuf,
    out: PathBuf,
    root: PathBuf,
}

/// Phantoms `names` preprocessed to tile bins (no mirrors) and one benchmark-style dump (`STEM_1.bin`)
/// per tile.
fn setup(names: &[&str]) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let images = root.join("images");
    let bins = root.join("bins");
    let dumps = root.join("dumps");
    for d in [&images, &bins, &dumps] {
        std::fs::create_dir(d).expect("mkdir");
    }
    for (k, n) in names.iter().enumerate() {
        write_phantom(&images, &format!("{n}.nii.gz"), 30 + k as u64);
    }
    let model = ModelSpec::open(&demo_model()).expect("model");
    let shape_file = bins.join("all_shape.txt");
    for case in discover_cases(&images).expect("cases") {
        preprocess_to_bins(
            &case,
            &model,
            &bins,
            &shape_file,
            &BinsOptions {
                mirrors: MirrorSet::identity_only(),
                ..BinsOptions::default()
            },
            &mut |_, _| {},
        )
        .expect("bins");
    }
    let n = 32 * 32 * 32;
    for f in listing(&bins) {
        let Some(stem) = f.strip_suffix(".bin") else {
            continue;
        };
        let bytes = std::fs::read(bins.join(&f)).expect("tile");
        let tile: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut logits = vec![0f32; 3 * n];
        logits[n..2 * n].copy_from_slice(&tile);
        logits[2 * n..]
            .iter_mut()
            .zip(&tile)
            .for_each(|(l, t)| *l = -t);
        nnu_bins::write_f32_file(&dumps.join(format!("{stem}_1.bin")), &logits).expect("dump");
    }
    Setup {
        images,
        shape_file,
        dumps,
        out: root.join("out"),
        root,
        _root: tmp,
    }
}

fn postprocess(s: &Setup, dumps: &[&Path], out: &Path) -> Command {
    postprocess_with(s, &s.shape_file, dumps, out)
}

fn postprocess_with(s: &Setup, shape_file: &Path, dumps: &[&Path], out: &Path) -> Command {
    let list: Vec<String> = dumps.iter().map(|d| d.to_string_lossy().into()).collect();
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(demo_model())
        .arg("-i")
        .arg(&s.images)
        .arg("--shape-file")
        .arg(shape_file)
        .arg("--dumps")
        .arg(list.join(","))
        .arg("-o")
        .arg(out)
        .args(["--disable-tta", "--threads", "2"]);
    cmd
}

/// The dumps of `case`, sorted.
fn dumps_of(s: &Setup, case: &str) -> Vec<PathBuf> {
    listing(&s.dumps)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{case}_")))
        .map(|f| s.dumps.join(f))
        .collect()
}

#[test]
fn bad_cases_fail_alone_and_the_batch_goes_on() {
    let s = setup(&["good", "missing", "short", "noimage", "damaged"]);
    // good: complete, plus an extra dump of a tile that does not exist and the same dump in a 2nd folder.
    let good = dumps_of(&s, "good");
    std::fs::copy(&good[0], s.dumps.join("good_96_128_0_32_0_32_0_1.bin")).expect("extra");
    let second = s.root.join("dumps_device1");
    std::fs::create_dir(&second).expect("mkdir");
    std::fs::copy(&good[0], second.join(good[0].file_name().expect("name"))).expect("dup");
    // missing: one dump gone; short: one dump cut.
    std::fs::remove_file(&dumps_of(&s, "missing")[1]).expect("rm");
    let short = dumps_of(&s, "short")[2].clone();
    let bytes = std::fs::read(&short).expect("read");
    std::fs::write(&short, &bytes[..bytes.len() - 4]).expect("cut");
    // noimage: preprocessed, then its image went away; damaged: its image was cut since.
    std::fs::remove_file(s.images.join("noimage.nii.gz")).expect("rm");
    let damaged = s.images.join("damaged.nii.gz");
    let img = std::fs::read(&damaged).expect("read");
    std::fs::write(&damaged, &img[..img.len() / 2]).expect("cut");

    let o = run_cmd(postprocess(&s, &[&s.dumps, &second], &s.out));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(
        o.error_about("error: missing: "),
        &s.out.join("missing.nii.gz"),
        "4 dumps expected, 1 missing (the first: the output of missing_",
    );
    assert_error_line(
        o.error_about("error: short: "),
        &short,
        "4 dumps expected, 1 with a wrong size (this one: 393212 bytes, expected 393216)",
    );
    assert_error_line(
        o.error_about("error: noimage: "),
        &s.shape_file,
        "no image under",
    );
    assert_error_line(o.error_about("error: damaged: "), &damaged, "truncated");
    assert_eq!(o.errors().len(), 4, "{}", o.stderr);
    assert!(
        o.stderr
            .lines()
            .any(|l| l.starts_with("warning: 1 dump(s) found in two folders")),
        "{}",
        o.stderr
    );
    let mut failed = o.failed_cases();
    failed.sort();
    assert_eq!(failed, ["damaged", "missing", "noimage", "short"]);
    assert_eq!(listing(&s.out), ["good.nii.gz"]);
}

#[test]
fn unreadable_inputs_and_output_stop_the_run_with_one_line() {
    let s = setup(&["a"]);
    let r = &s.root;
    let bad_shape = write_bytes(
        r,
        "bad_shape.txt",
        b"a 32 40 40-0-0,8-0,8\nthis is not a record\n",
    );
    let file = write_bytes(r, "a_file", b"x");
    let cases: Vec<(Command, PathBuf, &str)> = vec![
        (
            postprocess_with(&s, &bad_shape, &[&s.dumps], &s.out),
            bad_shape.clone(),
            "bad_shape.txt:2: expected",
        ),
        (
            postprocess(&s, &[&r.join("no_dumps")], &s.out),
            r.join("no_dumps"),
            "No such file",
        ),
        (
            postprocess(&s, &[&s.dumps], &file),
            file.clone(),
            "is a file, not a folder",
        ),
    ];
    for (cmd, file, problem) in cases {
        let o = run_cmd(cmd);
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert_error_line(o.stderr.trim_end(), &file, problem);
        assert!(!s.out.exists());
    }
}

/// NaN or infinite logits in dumps (what an fp16 overflow on an Ascend chip gives): the case is refused
/// with an error naming a dump and counting them, nothing is written for it, the other case is done.
#[test]
fn non_finite_logits_are_refused_naming_the_dumps() {
    let s = setup(&["good", "nan"]);
    let bad = dumps_of(&s, "nan");
    assert!(bad.len() >= 2);
    for (k, path) in bad.iter().take(2).enumerate() {
        let mut bytes = std::fs::read(path).expect("dump");
        let v = if k == 0 { f32::NAN } else { f32::INFINITY };
        bytes[400..404].copy_from_slice(&v.to_le_bytes());
        std::fs::write(path, bytes).expect("write");
    }
    let o = run_cmd(postprocess(&s, &[&s.dumps], &s.out));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let line = o.error_about("non-finite");
    assert_error_line(line, &bad[0], "NaN or infinite logits");
    assert!(
        line.contains(&format!("2 of {} dumps", bad.len())),
        "{line}"
    );
    assert_eq!(o.failed_cases(), ["nan"]);
    assert_eq!(listing(&s.out), ["good.nii.gz"]);
}

#[test]
fn saved_properties_are_used_checked_and_optional() {
    let s = setup(&["kept", "gone", "moved", "other"]);
    let bins = s.shape_file.parent().expect("bins").to_path_buf();
    // gone: no CASE.json (tiles of an older nnu-preprocess or the recipe's scripts): preprocessed again.
    std::fs::remove_file(bins.join("gone.json")).expect("rm");
    // moved: the image's origin is not the one it was preprocessed with; other: another target spacing.
    let edit = |name: &str, key: &str, value: serde_json::Value| {
        let path = bins.join(format!("{name}.json"));
        let mut j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        j[key] = value;
        std::fs::write(&path, serde_json::to_vec(&j).expect("ser")).expect("write");
    };
    edit("moved", "itk_origin", serde_json::json!([1.0, 2.0, 3.0]));
    edit(
        "other",
        "spacing_after_resampling",
        serde_json::json!([1.0, 1.0, 1.0]),
    );
    let o = run_cmd(postprocess(&s, &[&s.dumps], &s.out));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(
        o.error_about("error: moved: "),
        &s.images.join("moved.nii.gz"),
        "the image changed since nnu-preprocess: spacing",
    );
    assert_error_line(
        o.error_about("error: other: "),
        &bins.join("other.json"),
        "the model's target spacing is",
    );
    assert_eq!(o.errors().len(), 2, "{}", o.stderr);
    assert_eq!(listing(&s.out), ["gone.nii.gz", "kept.nii.gz"]);

    // The same segmentation with and without the saved properties.
    let again = s.root.join("again");
    let bins_only = s.root.join("shape_only");
    std::fs::create_dir(&bins_only).expect("mkdir");
    let shape_only = bins_only.join("all_shape.txt");
    std::fs::copy(&s.shape_file, &shape_only).expect("copy");
    let o = run_cmd(postprocess_with(&s, &shape_only, &[&s.dumps], &again));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for name in ["gone.nii.gz", "kept.nii.gz"] {
        let a = std::fs::read(s.out.join(name)).expect("with properties");
        let b = std::fs::read(again.join(name)).expect("preprocessed again");
        assert!(a == b, "{name} differs between the two ways");
    }
}

/// Two runs on one output folder: a case whose lock (`.CASE.lock`) another live process holds is skipped
/// with a note, its temporaries and lock are left alone, and the other cases are written; once that
/// process is gone, a rerun writes the case (the dead owner's lock is taken over and removed).
#[test]
fn a_case_held_by_another_live_run_is_skipped() {
    let s = setup(&["a", "b"]);
    std::fs::create_dir(&s.out).expect("mkdir");
    let held = HeldCase::plant(&s.out, "a", ".nii.gz");
    let o = run_cmd(postprocess(&s, &[&s.dumps], &s.out));
    held.assert_left_alone(&o, "nnu-postprocess");
    assert!(s.out.join("b.nii.gz").exists() && !s.out.join("a.nii.gz").exists());
    let (lock, temp) = held.release();
    let o = run_cmd(postprocess(&s, &[&s.dumps], &s.out));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(s.out.join("a.nii.gz").exists());
    assert!(!lock.exists(), "the dead run's lock is left");
    assert!(!temp.exists(), "the dead run's temporary is left");
}

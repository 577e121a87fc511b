//! What the user of `nnu-preprocess` sees on bad input: one `error: CASE: FILE: problem` line per bad case,
//! the other cases written (tile bins and their `all_shape.txt` line, or `.npy` + `.json`), the failed
//! cases listed, a non-zero exit, and no partial output: no tile of a failed case, no temporary.

#[path = "../../nnu-predict/tests/common/mod.rs"]
mod common;
#[path = "../../nnu-predict/tests/common/limits.rs"]
mod limits;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-preprocess");

fn preprocess(model: &Path, input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(model)
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--threads", "2"])
        .args(extra);
    cmd
}

/// The lines of `all_shape.txt` (empty when there is none).
fn shape_lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("all_shape.txt"))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn bad_images_fail_alone_and_the_batch_goes_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let bad = damaged_images(&images);
    write_phantom(&images, "good.nii.gz", 3);
    let out = root.path().join("bins");
    let o = run_cmd(preprocess(&demo_model(), &images, &out, &["--disable-tta"]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    for (name, file, problem) in &bad {
        // The lying header is caught before any work by the disk-space estimate.
        let problem = if *name == "terabytes" {
            "its header means up to"
        } else {
            problem
        };
        assert_error_line(o.error_about(&format!("error: {name}: ")), file, problem);
    }
    assert_eq!(o.errors().len(), bad.len(), "{}", o.stderr);
    assert_eq!(
        sorted(o.failed_cases()),
        sorted(bad.iter().map(|(n, _, _)| n.to_string()).collect())
    );
    // The good case: 4 tiles x 1 mirror, its all_shape.txt line and its properties; nothing else.
    let lines = shape_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("good "), "{lines:?}");
    let files = listing(&out);
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(files.iter().all(|f| f == "all_shape.txt"
        || f == "good.json"
        || (f.starts_with("good_") && f.ends_with("_0.bin"))));
}

#[test]
fn npy_mode_writes_the_good_cases_only() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let bad: Vec<_> = damaged_images(&images)
        .into_iter()
        .filter(|(n, _, _)| ["truncated", "infinite", "zeros"].contains(n))
        .collect();
    for f in listing(&images) {
        if !bad.iter().any(|(_, p, _)| p.ends_with(&f)) {
            std::fs::remove_file(images.join(f)).expect("rm");
        }
    }
    write_phantom(&images, "good.nii.gz", 3);
    let out = root.path().join("npy");
    let o = run_cmd(preprocess(&demo_model(), &images, &out, &["--npy"]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    for (name, file, problem) in &bad {
        assert_error_line(o.error_about(&format!("error: {name}: ")), file, problem);
    }
    assert_eq!(sorted(o.failed_cases()), ["infinite", "truncated", "zeros"]);
    assert_eq!(listing(&out), ["good.json", "good.npy"]);
}

/// A two-modality model (nnU-Net's own plans of `fixtures/artifacts/planner/Task502_PhantomMR`; the
/// preprocessing needs no network): the modalities of a case must share one grid, and all must be there.
#[test]
fn modalities_must_share_one_grid() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let model = r.join("model");
    std::fs::create_dir_all(model.join("fold_0")).expect("mkdir");
    std::fs::copy(
        fixtures().join("artifacts/planner/Task502_PhantomMR/nnUNetPlansv2.1_plans_3D.pkl"),
        model.join("plans.pkl"),
    )
    .expect("plans");
    std::fs::write(model.join("fold_0/model_final_checkpoint.model"), b"").expect("ckpt");
    let images = r.join("images");
    std::fs::create_dir(&images).expect("mkdir");
    let iso = [1.0, 1.0, 1.0];
    let (a, g) = phantom_of(SHAPE, iso, 1);
    let (b, g_b) = phantom_of(SHAPE, iso, 2);
    let (wide, g_wide) = phantom_of([24, 40, 44], iso, 2);
    let (_, g_thick) = phantom_of(SHAPE, [2.0, 1.0, 1.0], 2);
    write(&images, "ok_0000.nii.gz", &a, &g);
    write(&images, "ok_0001.nii.gz", &b, &g_b);
    write(&images, "spacing_0000.nii.gz", &a, &g);
    let spacing = write(&images, "spacing_0001.nii.gz", &b, &g_thick);
    write(&images, "shape_0000.nii.gz", &a, &g);
    let shape = write(&images, "shape_0001.nii.gz", &wide, &g_wide);
    let single = write(&images, "single_0000.nii.gz", &a, &g);
    let out = r.join("bins");
    let o = run_cmd(preprocess(&model, &images, &out, &["--disable-tta"]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let expect: [(&str, &PathBuf, &str); 3] = [
        ("spacing", &spacing, "modality 1 has spacing"),
        ("shape", &shape, "modality 1 has shape"),
        ("single", &single, "has 1 modalities, the model expects 2"),
    ];
    for (name, file, problem) in expect {
        assert_error_line(o.error_about(&format!("error: {name}: ")), file, problem);
    }
    assert_eq!(sorted(o.failed_cases()), ["shape", "single", "spacing"]);
    let lines = shape_lines(&out);
    assert!(lines.len() == 1 && lines[0].starts_with("ok "), "{lines:?}");
    let files = listing(&out);
    assert!(files.contains(&"ok.json".to_string()), "{files:?}");
    assert!(files
        .iter()
        .all(|f| f == "all_shape.txt" || f == "ok.json" || f.starts_with("ok_")));
}

#[test]
fn an_unusable_output_folder_is_one_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let image = write_phantom(root.path(), "a.nii.gz", 1);
    let file = write_bytes(root.path(), "a_file", b"x");
    for (out, problem) in [
        (file.clone(), "is a file, not a folder"),
        (file.join("sub"), "cannot create the output folder"),
    ] {
        let o = run_cmd(preprocess(&demo_model(), &image, &out, &[]));
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert_error_line(o.stderr.trim_end(), &out, problem);
    }
}

/// A disk that fills up at the first tile (simulated by a file-size limit below a tile's 128 kB): the case
/// fails with one line naming the tile, and nothing is left: no tile, no temporary, no `all_shape.txt`.
#[test]
fn a_full_disk_leaves_no_partial_tile() {
    let root = tempfile::tempdir().expect("tempdir");
    let image = write_phantom(root.path(), "a.nii.gz", 1);
    let out = root.path().join("bins");
    let mut cmd = preprocess(&demo_model(), &image, &out, &["--disable-tta"]);
    limits::limit_file_size(&mut cmd, 64 << 10);
    let o = run_cmd(cmd);
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(o.errors().len(), 1, "{}", o.stderr);
    let line = o.errors()[0];
    assert!(
        line.starts_with(&format!(
            "error: a: {}/a_0_32_0_32_0_32_0.bin",
            out.display()
        )),
        "{line}"
    );
    assert!(line.contains("File too large"), "{line}");
    assert_eq!(o.failed_cases(), ["a"]);
    assert_eq!(listing(&out), Vec::<String>::new());
}

/// Two runs on one output folder, tile bins and `--npy` alike: a case whose lock (`.CASE.lock`) another
/// live process holds is skipped with a note, its temporaries and lock are left alone, and the other
/// cases are written; once that process is gone, a rerun writes the case.
#[test]
fn a_case_held_by_another_live_run_is_skipped() {
    for extra in [&["--disable-tta"][..], &["--npy"][..]] {
        let root = tempfile::tempdir().expect("tempdir");
        let images = root.path().join("images");
        std::fs::create_dir(&images).expect("mkdir");
        write_phantom(&images, "a.nii.gz", 3);
        write_phantom(&images, "b.nii.gz", 4);
        let out = root.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let held = HeldCase::plant(&out, "a", ".json");
        let o = run_cmd(preprocess(&demo_model(), &images, &out, extra));
        held.assert_left_alone(&o, &format!("{extra:?}"));
        let files = listing(&out);
        assert!(
            files.contains(&"b.json".to_string()),
            "{extra:?}: {files:?}"
        );
        // Nothing of case a but the other run's lock and temporary: no output, and no temporary of this
        // run (the lock is taken before anything of the case is written).
        let of_a: Vec<&String> = files
            .iter()
            .filter(|f| ["a.", "a_", ".a.", ".a_"].iter().any(|p| f.starts_with(p)))
            .collect();
        assert_eq!(
            of_a,
            [
                &format!(".a.json.{}-0.tmp", held.token),
                &".a.lock".to_string()
            ],
            "{extra:?}: {files:?}"
        );
        let (lock, temp) = held.release();
        let o = run_cmd(preprocess(&demo_model(), &images, &out, extra));
        assert_eq!(o.code, Some(0), "{extra:?}: {}", o.stderr);
        let files = listing(&out);
        assert!(
            files.contains(&"a.json".to_string()),
            "{extra:?}: {files:?}"
        );
        assert!(!lock.exists() && !temp.exists(), "{extra:?}: {files:?}");
        assert!(
            !files.iter().any(|f| f.starts_with('.')),
            "{extra:?}: a lock or temporary is left: {files:?}"
        );
    }
}

/// A header whose spacing is absurd (1 km voxels, in a small file) would need a preprocessed volume larger
/// than a 64-bit address space at the model's spacing (before the fix: a panic in `ndarray`, exit 101, the
/// batch lost). The case fails alone, after its (sound) image is read and before it is preprocessed, with
/// an error naming the file (a fallible allocation), and the other case is written. In `--npy` mode, which has no disk estimate to catch it
/// first.
#[test]
fn a_header_asking_for_impossible_memory_fails_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "good.nii.gz", 3);
    let (img, mut g) = phantom(5);
    g.spacing = [1e6, 1e6, 1e6];
    let huge = write(&images, "huge.nii.gz", &img, &g);
    let out = root.path().join("npy");
    let o = run_cmd(preprocess(&demo_model(), &images, &out, &["--npy"]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(o.error_about("error: huge: "), &huge, "cannot be allocated");
    assert_eq!(o.failed_cases(), ["huge"]);
    assert_eq!(listing(&out), ["good.json", "good.npy"]);
}

/// Another live run holds the lock of `all_shape.txt` (`.all_shape.txt.lock`, owned by a live `sleep`)
/// for longer than this run waits for it (60 s by default; 0.3 s here through the hidden
/// `--lock-timeout`, so the test need not wait a minute): the case fails with an error naming
/// `all_shape.txt`, the owner's pid and its lock file, exit 1. Its tiles and properties stay as complete
/// files (the rerun keeps them), it has no line in `all_shape.txt`, and the other run's lock is left
/// alone. Once that run is gone, the rerun adds the case.
#[test]
fn a_shape_file_locked_too_long_fails_the_case_naming_the_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = root.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    write_phantom(&images, "a.nii.gz", 3);
    let out = root.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let owner = Sleeper::start();
    let token = owner.token();
    let pid = token.split('-').next().expect("pid");
    let lock = write_bytes(&out, ".all_shape.txt.lock", token.as_bytes());
    let extra = ["--disable-tta", "--lock-timeout", "0.3"];
    let t0 = std::time::Instant::now();
    let o = run_cmd(preprocess(&demo_model(), &images, &out, &extra));
    let waited = t0.elapsed();
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(
        o.error_about("error: a: "),
        &out.join("all_shape.txt"),
        &format!(
            "locked by another run (pid {pid}, lock file {}) for more than 0.3 s",
            lock.display()
        ),
    );
    assert_eq!(o.failed_cases(), ["a"]);
    // The wait was the one asked for, not the default minute.
    assert!(waited.as_secs() < 30, "{waited:?}");
    assert!(shape_lines(&out).is_empty(), "{:?}", shape_lines(&out));
    assert_eq!(std::fs::read_to_string(&lock).expect("lock"), token);
    let files = listing(&out);
    assert!(files.contains(&"a.json".to_string()), "{files:?}");
    assert_eq!(files.iter().filter(|f| is_tile(f)).count(), 4, "{files:?}");
    drop(owner);
    let o = run_cmd(preprocess(&demo_model(), &images, &out, &extra));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    // Its tiles are kept (none rewritten: the case counts as already done), its line added.
    assert!(o.stderr.contains("1 already done"), "{}", o.stderr);
    let lines = shape_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("a "), "{lines:?}");
    assert!(!lock.exists(), "{:?}", listing(&out));
}

fn is_tile(file_name: &str) -> bool {
    file_name.starts_with("a_") && file_name.ends_with("_0.bin")
}

/// What the file path refuses for an nnunetv2 model folder, each as one error line naming the folder,
/// exit 2, nothing written: `--npy` (v1 volumes only), and `-c` given with a v1 folder.
#[test]
fn npy_with_an_nnunetv2_folder_and_a_configuration_with_a_v1_folder_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let image = write_phantom(root.path(), "a.nii.gz", 1);
    let v2 = fixtures().join("v2/models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d");
    let v1 = demo_model();
    let out = root.path().join("out");
    for (model, extra, needle) in [
        (
            &v2,
            &["--npy"][..],
            "--npy writes nnU-Net v1's preprocessed volumes",
        ),
        (
            &v1,
            &["-c", "3d_fullres"][..],
            "-c 3d_fullres applies to nnunetv2 model folders",
        ),
    ] {
        let o = run_cmd(preprocess(model, &image, &out, extra));
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert_error_line(o.stderr.trim_end(), model, needle);
        assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    }
}

/// An nnunetv2 model folder is tiled by the tool as `nnu_pipeline::bins_v2::preprocess_to_bins_v2` tiles
/// it (checked against nnu-predict's path in `crates/nnu-pipeline/tests/bins_v2.rs`): the same bins,
/// byte for byte, the same `all_shape.txt` and `CASE.json`, with the checkpoint's mirrors by default.
#[test]
fn an_nnunetv2_folder_is_tiled_as_the_library_tiles_it() {
    use nnu_pipeline::bins::BinsOptions;
    use nnu_pipeline::bins_v2::{default_mirrors_v2, preprocess_to_bins_v2};
    use nnu_pipeline::cases::Case;
    use nnu_pipeline::v2::V2Model;
    let root = tempfile::tempdir().expect("tempdir");
    let input = root.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(
        fixtures().join("v2/cases/plain_a_0000.nii.gz"),
        input.join("plain_a_0000.nii.gz"),
    )
    .unwrap();
    for config in ["3d_fullres", "2d"] {
        let dir = fixtures().join(format!(
            "v2/models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__{config}"
        ));
        let out = root.path().join(format!("tool_{config}"));
        let o = run_cmd(preprocess(&dir, &input, &out, &[]));
        o.assert_no_crash();
        assert_eq!(o.code, Some(0), "{config}: {}", o.stderr);

        let model = V2Model::open(&dir, None, "checkpoint_final.pth").unwrap();
        let lib = root.path().join(format!("lib_{config}"));
        let opts = BinsOptions {
            mirrors: default_mirrors_v2(&model, &[]).unwrap(),
            ..BinsOptions::default()
        };
        let case = Case::nifti(
            "plain_a".to_owned(),
            vec![input.join("plain_a_0000.nii.gz")],
        );
        let r = preprocess_to_bins_v2(
            &case,
            &model,
            &lib,
            &lib.join("all_shape.txt"),
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let files = listing(&lib);
        assert_eq!(
            files.len(),
            r.record.num_tiles() * opts.mirrors.len() + 2,
            "{config}: bins + all_shape.txt + plain_a.json"
        );
        assert_eq!(listing(&out), files, "{config}");
        for f in &files {
            assert!(
                std::fs::read(out.join(f)).unwrap() == std::fs::read(lib.join(f)).unwrap(),
                "{config}: {f} differs"
            );
        }
    }
}

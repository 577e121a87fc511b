//! Faults beyond bad input (issue 20): outputs that would overwrite inputs, folders that mix namings, a
//! disk that fills at the last write of a case, two runs on one output folder, cut outputs from an
//! earlier run, and every write, fsync and rename of a case failing in turn (`NNU_FAULT_INJECT`, see
//! `nnu_fsio::fault`). Each test runs the `nnu-predict` binary and looks at what its user sees and what is
//! left on disk; `docs/reliability.md` has the table of these classes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_nnu-predict");

/// `nnu-predict` on `input` with the demo model, no mirroring (fast), 2 threads, plus `extra`.
fn predict(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(EXE);
    cmd.arg("--model")
        .arg(demo_model())
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--disable-tta", "--threads", "2"])
        .args(extra)
        .env_remove("NNU_FAULT_INJECT");
    cmd
}

/// A folder `images` under `r` with the phantoms `names` (seeds 1, 2, ...) in MSD naming.
fn images(r: &Path, names: &[&str]) -> PathBuf {
    let dir = r.join("images");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (i, n) in names.iter().enumerate() {
        write_phantom(&dir, &format!("{n}.nii.gz"), i as u64 + 1);
    }
    dir
}

/// The bytes of every file of `dir`, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    listing(dir)
        .into_iter()
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).expect("read");
            (n, b)
        })
        .collect()
}

/// `-o` equal to the input folder in MSD naming: `CASE.nii.gz` is both the image and the segmentation.
/// The run is refused before anything is loaded or written (exit 2), with or without `--overwrite`.
#[test]
fn an_output_that_would_replace_an_input_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = images(root.path(), &["a", "b"]);
    let before = snapshot(&dir);
    for extra in [&["--overwrite"][..], &[][..]] {
        let o = run_cmd(predict(&dir, &dir, extra));
        o.assert_no_crash();
        assert_eq!(o.code, Some(2), "{}", o.stderr);
        assert_eq!(o.errors().len(), 1, "{}", o.stderr);
        assert_error_line(
            o.errors()[0],
            &dir.join("a.nii.gz"),
            "would overwrite this input",
        );
        assert_eq!(snapshot(&dir), before, "the input folder changed");
    }
    // The same through a second path to the folder (a symbolic link).
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).expect("symlink");
    let o = run_cmd(predict(&dir, &link, &["--overwrite"]));
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_eq!(snapshot(&dir), before);
}

/// A raw-naming folder with a stray `CASE.nii.gz` (a label copied in): refused with the odd file named,
/// instead of reading the whole folder as MSD naming.
#[test]
fn a_folder_that_mixes_namings_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = r.join("images");
    std::fs::create_dir(&dir).expect("mkdir");
    write_phantom(&dir, "a_0000.nii.gz", 1);
    write_phantom(&dir, "b_0000.nii.gz", 2);
    write_phantom(&dir, "a.nii.gz", 3);
    let out = r.join("out");
    let o = run_cmd(predict(&dir, &out, &[]));
    o.assert_no_crash();
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert_error_line(o.errors()[0], &dir, "mixes nnU-Net raw naming");
    assert!(o.errors()[0].contains("a.nii.gz"), "{}", o.stderr);
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));
}

/// A disk that fills at the segmentation, the last file of a case (made to fail by fault injection: the
/// third write of the process is the segmentation, after the probabilities and the preview): the case's
/// probabilities and preview, already complete as temporaries, go too; the next case is done; a rerun
/// completes the failed one.
#[test]
fn a_failure_at_the_segmentation_leaves_nothing_of_the_case() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["a", "b"]);
    let extra = ["--save-probabilities", "--preview"];
    let reference = r.join("reference");
    assert_eq!(run_cmd(predict(&dir, &reference, &extra)).code, Some(0));
    let out = r.join("out");
    let mut cmd = predict(&dir, &out, &extra);
    cmd.env("NNU_FAULT_INJECT", "write:3");
    let o = run_cmd(cmd);
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(
        o.error_about("a.nii.gz"),
        &out.join("a.nii.gz"),
        "injected fault",
    );
    assert_eq!(o.failed_cases(), ["a"]);
    assert_eq!(
        listing(&out),
        ["b.nii.gz", "b.png", "b_probabilities.npy"],
        "case a left something"
    );
    assert_eq!(run_cmd(predict(&dir, &out, &extra)).code, Some(0));
    assert_same_folders(&out, &reference);
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount a tmpfs (needs root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Free 4 KiB pages of the file system holding `dir`.
fn free_pages(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a properly sized out-parameter, read only on success.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) }, 0);
    // SAFETY: statvfs returned 0.
    let st = unsafe { st.assume_init() };
    st.f_bavail * st.f_frsize / 4096
}

/// The same on a real full file system: a 1 MiB tmpfs, filled up so that the probabilities, the preview
/// and the lock file fit and the segmentation does not (`No space left on device`).
#[test]
#[ignore = "mounts a tmpfs (needs root): cargo test -p nnu-predict --test faults -- --ignored"]
fn a_full_tmpfs_at_the_segmentation_leaves_nothing_of_the_case() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["a"]);
    let extra = ["--save-probabilities", "--preview"];
    let reference = r.join("reference");
    assert_eq!(run_cmd(predict(&dir, &reference, &extra)).code, Some(0));
    let pages = |name: &str| {
        let len = std::fs::metadata(reference.join(name)).expect("size").len();
        len.div_ceil(4096)
    };
    let free = pages("a_probabilities.npy") + pages("a.png") + 1;
    let fs = Tmpfs::mount(&r.join("tmpfs"), 1 << 20);
    let out = fs.0.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let filler = fs.0.join("filler");
    let avail = free_pages(&out);
    assert!(avail > free, "the tmpfs has {avail} pages free");
    std::fs::write(&filler, vec![1u8; ((avail - free) * 4096) as usize]).expect("fill");
    assert_eq!(free_pages(&out), free);
    let o = run_cmd(predict(&dir, &out, &extra));
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(
        o.error_about("a.nii.gz"),
        &out.join("a.nii.gz"),
        "No space left on device",
    );
    assert!(listing(&out).is_empty(), "left behind: {:?}", listing(&out));
    std::fs::remove_file(&filler).expect("free the disk");
    assert_eq!(run_cmd(predict(&dir, &out, &extra)).code, Some(0));
    assert_same_folders(&out, &reference);
}

/// Two runs on one output folder. Another live process's temporary is not deleted as stale, and a case
/// it holds the lock of is skipped with a note; once that process is gone, a rerun takes the case over
/// and removes the leftovers.
#[test]
fn a_case_held_by_another_live_run_is_skipped() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["a", "b"]);
    let reference = r.join("reference");
    assert_eq!(run_cmd(predict(&dir, &reference, &[])).code, Some(0));
    let out = r.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let held = HeldCase::plant(&out, "a", ".nii.gz");
    let o = run_cmd(predict(&dir, &out, &[]));
    held.assert_left_alone(&o, "nnu-predict");
    assert!(out.join("b.nii.gz").exists() && !out.join("a.nii.gz").exists());
    drop(held);
    let o = run_cmd(predict(&dir, &out, &[]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_same_folders(&out, &reference);
}

/// Two real runs started together on one output folder: neither fails (no temporary deleted under the
/// other), and the folder ends as one run alone leaves it.
#[test]
fn two_runs_at_once_on_one_folder() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["a", "b", "c"]);
    let reference = r.join("reference");
    assert_eq!(run_cmd(predict(&dir, &reference, &[])).code, Some(0));
    let out = r.join("out");
    let spawn = || {
        let mut c = predict(&dir, &out, &[]);
        c.stderr(std::process::Stdio::piped());
        c.spawn().expect("start")
    };
    let (x, y) = (spawn(), spawn());
    for child in [x, y] {
        let o: Outcome = child.wait_with_output().expect("wait").into();
        o.assert_no_crash();
        assert_eq!(o.code, Some(0), "{}", o.stderr);
    }
    assert_same_folders(&out, &reference);
}

/// A 0-byte or cut segmentation left in the output folder (a copy gone wrong) is not a finished case:
/// the rerun recomputes it.
#[test]
fn a_cut_output_does_not_count_as_done() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["a", "b", "c"]);
    let extra = ["--save-probabilities"];
    let reference = r.join("reference");
    assert_eq!(run_cmd(predict(&dir, &reference, &extra)).code, Some(0));
    let out = r.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let seg_b = std::fs::read(reference.join("b.nii.gz")).expect("read");
    let prob_c = std::fs::read(reference.join("c_probabilities.npy")).expect("read");
    write_bytes(&out, "a.nii.gz", b"");
    write_bytes(&out, "a_probabilities.npy", &prob_c[..0]);
    write_bytes(&out, "b.nii.gz", &seg_b[..seg_b.len() / 2]);
    std::fs::copy(
        reference.join("b_probabilities.npy"),
        out.join("b_probabilities.npy"),
    )
    .expect("copy");
    std::fs::copy(reference.join("c.nii.gz"), out.join("c.nii.gz")).expect("copy");
    write_bytes(&out, "c_probabilities.npy", &prob_c[..prob_c.len() - 4]);
    let o = run_cmd(predict(&dir, &out, &extra));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_same_folders(&out, &reference);
}

/// The walk (in the spirit of SQLite's I/O-error tests): for each kind of operation (write, fsync,
/// rename) and each N, the N-th one of a run of one case with probabilities and preview is made to fail.
/// Every such run must end in one clear error and leave no file at all in the output folder, and a rerun
/// without faults must give a folder byte-identical to a clean run's. N goes up until a run no longer
/// meets a fault (it then succeeds), so every operation of the case is walked.
#[test]
fn every_failing_write_fsync_and_rename_leaves_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["a"]);
    let extra = ["--save-probabilities", "--preview"];
    let reference = r.join("reference");
    assert_eq!(run_cmd(predict(&dir, &reference, &extra)).code, Some(0));
    let mut walked = Vec::new();
    for op in ["write", "fsync", "rename"] {
        for n in 1.. {
            let out = r.join(format!("out_{op}_{n}"));
            let mut cmd = predict(&dir, &out, &extra);
            cmd.env("NNU_FAULT_INJECT", format!("{op}:{n}"));
            let o = run_cmd(cmd);
            o.assert_no_crash();
            if o.code == Some(0) {
                assert!(!o.stderr.contains("injected fault"), "{}", o.stderr);
                assert_same_folders(&out, &reference);
                walked.push((op, n - 1));
                break;
            }
            assert_eq!(o.code, Some(1), "{op}:{n}: {}", o.stderr);
            assert_eq!(o.errors().len(), 1, "{op}:{n}: {}", o.stderr);
            assert!(
                o.errors()[0].starts_with("error: a: ") && o.errors()[0].contains("injected fault"),
                "{op}:{n}: {}",
                o.stderr
            );
            assert!(
                listing(&out).is_empty(),
                "{op}:{n} left {:?}",
                listing(&out)
            );
            let rerun = run_cmd(predict(&dir, &out, &extra));
            assert_eq!(rerun.code, Some(0), "{op}:{n} rerun: {}", rerun.stderr);
            assert_same_folders(&out, &reference);
            assert!(
                n < 100,
                "{op}: more than 100 operations for one small case?"
            );
        }
    }
    // One case writes three files: at least one write each, an fsync each and of the folder, 3 renames.
    let count = |op: &str| walked.iter().find(|(o, _)| *o == op).map(|w| w.1);
    assert!(count("write") >= Some(3), "{walked:?}");
    assert_eq!(count("fsync"), Some(4), "{walked:?}");
    assert_eq!(count("rename"), Some(3), "{walked:?}");
}

/// Runs `cmd` with its address space limited to `bytes` (`RLIMIT_AS`, in the child only).
fn limit_memory(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls the async-signal-safe
    // `setrlimit`.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A case too big for the memory the process may use (a 512^3 CT at 0.25 mm, whose export to the original
/// frame needs its segmentation, the export's running maximum and one class of the probabilities at a
/// time, 9 bytes a voxel: 1.13 GiB, under a 1 GiB address-space limit): before, the allocation aborted
/// the process (SIGABRT) and the rest of the batch was never tried. Now the case is refused before it is
/// read, naming the file and the sizes, and the next case is done. `--max-memory` sets the limit by
/// hand. (The 400^3 CT this test used while the probabilities were exported whole is estimated at
/// 0.54 GiB since they are written one class at a time.)
#[test]
fn a_case_too_big_for_memory_is_refused_and_the_batch_goes_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["b"]);
    // Mostly air with a block of soft tissue: small on disk, 134 M voxels in memory.
    let mut big = ndarray::Array3::<i16>::from_elem((512, 512, 512), -1000);
    big.slice_mut(ndarray::s![128..384, 128..384, 128..384])
        .fill(40);
    let g = nnu_volume::Geometry {
        spacing: [0.25, 0.25, 0.25],
        ..Default::default()
    };
    let big_path = write(&dir, "a.nii.gz", &big, &g);
    drop(big);
    let out = r.join("out");
    let mut cmd = predict(&dir, &out, &["--save-probabilities"]);
    cmd.env("MALLOC_ARENA_MAX", "2");
    limit_memory(&mut cmd, 1 << 30);
    let o = run_cmd(cmd);
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_error_line(o.error_about("a.nii.gz"), &big_path, "of memory");
    assert_eq!(o.failed_cases(), ["a"]);
    assert_eq!(listing(&out), ["b.nii.gz", "b_probabilities.npy"]);
    // The same refusal by an explicit limit, without any rlimit.
    let o = run_cmd(predict(&dir, &r.join("out2"), &["--max-memory", "200M"]));
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.error_about("a.nii.gz").contains("0.20 GiB are available"),
        "{}",
        o.stderr
    );
}

/// An allocation that fails inside the pipeline's crates, past the estimate (here `--max-memory` is
/// raised by hand so the estimate lets the case start, under a 1 GiB address-space limit): a 58^3 CT at 8
/// times the model's spacing is read (1 MiB) and preprocessed to 464^3 (400 MiB), then the sliding
/// window's class sums (3 classes: 1.1 GiB) cannot be allocated. Before, that aborted the process
/// (SIGABRT, exit 134: the batch lost); now it is the case's error, naming the image, the buffer and its
/// bytes, and the next case is done.
#[test]
fn an_allocation_that_fails_inside_a_case_is_that_cases_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let dir = images(r, &["b"]);
    let mut big = ndarray::Array3::<i16>::from_elem((58, 58, 58), -1000);
    big.slice_mut(ndarray::s![10..48, 10..48, 10..48]).fill(40);
    let g = nnu_volume::Geometry {
        // (x, y, z): 8 times the demo model's (2.5, 2, 2) mm (z, y, x).
        spacing: [16.0, 16.0, 20.0],
        ..Default::default()
    };
    let big_path = write(&dir, "a.nii.gz", &big, &g);
    let out = r.join("out");
    let mut cmd = predict(&dir, &out, &["--max-memory", "64G"]);
    cmd.env("MALLOC_ARENA_MAX", "2");
    limit_memory(&mut cmd, 1 << 30);
    let o = run_cmd(cmd);
    o.assert_no_crash();
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let line = o.error_about("a.nii.gz");
    assert_error_line(
        line,
        &big_path,
        "out of memory: cannot allocate 1.1 GiB (1198768128 bytes) for the class sums of the sliding window",
    );
    assert_eq!(o.failed_cases(), ["a"]);
    assert_eq!(listing(&out), ["b.nii.gz"]);
}

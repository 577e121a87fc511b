//! Helpers of the tool-level reliability tests (bad input, interruption, determinism) of `nnu-predict`,
//! `nnu-preprocess` and `nnu-postprocess`: small phantoms in the demo model's spacing, damaged copies of
//! files, and running a tool to look at what its user sees (exit code, `error:` lines, output folder).
//!
//! The other tools include this file with `#[path = "../../nnu-predict/tests/common/mod.rs"]`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use ndarray::Array3;
use nnu_synth::{generate, PhantomSpec};
use nnu_volume::{write_volume, Geometry, WriteOptions};

/// Array shape (z, y, x) of the test phantoms: 4 tiles of the demo model's 32^3 patch.
pub const SHAPE: [usize; 3] = [24, 40, 40];
/// Spacing (z, y, x) of the test phantoms: the demo model's target, so nothing is resampled.
pub const SPACING: [f64; 3] = [2.5, 2.0, 2.0];

/// The repository's `fixtures/`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The demo model folder (a small UNet++, patch 32^3, 3 classes, one CT modality, `fold_0/model.onnx`).
pub fn demo_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/nnu-demo/data/model")
}

/// A phantom CT (int16 HU) of [`SHAPE`] at [`SPACING`] and its geometry.
pub fn phantom(seed: u64) -> (Array3<i16>, Geometry) {
    phantom_of(SHAPE, SPACING, seed)
}

/// A phantom CT of any shape and spacing.
pub fn phantom_of(shape: [usize; 3], spacing: [f64; 3], seed: u64) -> (Array3<i16>, Geometry) {
    let p = generate(&PhantomSpec::new(shape, spacing, seed)).expect("phantom");
    (p.image.data, p.image.geometry)
}

/// Writes a volume (`.nii.gz` compressed by the name, else raw) and returns its path.
pub fn write<T: nnu_volume::Voxel>(
    dir: &Path,
    name: &str,
    data: &Array3<T>,
    g: &Geometry,
) -> PathBuf {
    let path = dir.join(name);
    write_volume(
        &path,
        data.view(),
        g,
        &WriteOptions::default().compression_level(1),
    )
    .expect("write volume");
    path
}

/// Writes the phantom of `seed` as `dir/name` and returns its path.
pub fn write_phantom(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let (a, g) = phantom(seed);
    write(dir, name, &a, &g)
}

/// Writes `bytes` as `dir/name` and returns its path.
pub fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write bytes");
    path
}

/// A raw `.nii` of the phantom of `seed` whose header `dim` field (dim[0], then the sizes) is replaced by
/// `dims`; the voxel data stay as they are.
pub fn nii_with_dims(dir: &Path, name: &str, seed: u64, dims: &[i16]) -> PathBuf {
    let raw = write_phantom(dir, &format!("{name}.src.nii"), seed);
    let mut bytes = std::fs::read(&raw).expect("read");
    std::fs::remove_file(&raw).expect("remove");
    for k in 0..8 {
        let v = dims.get(k).copied().unwrap_or(1);
        bytes[40 + 2 * k..42 + 2 * k].copy_from_slice(&v.to_le_bytes());
    }
    write_bytes(dir, name, &bytes)
}

/// What a tool run showed its user.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Self {
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Outcome {
    /// The `error: ...` lines.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }

    /// The one `error:` line that mentions `needle`; fails the test when there is none or several.
    pub fn error_about(&self, needle: &str) -> &str {
        let found: Vec<&str> = self
            .errors()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one error line about {needle}; stderr:\n{}",
            self.stderr
        );
        found[0]
    }

    /// The names in the final `failed cases: a, b` line (empty when there is none).
    pub fn failed_cases(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("failed cases: "))
            .flat_map(|l| l.split(", ").map(str::to_string))
            .collect()
    }

    /// Fails the test when the tool panicked or was killed by a signal.
    pub fn assert_no_crash(&self) {
        assert!(self.code.is_some(), "killed by a signal:\n{}", self.stderr);
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "the tool panicked:\n{}",
            self.stderr
        );
    }
}

/// Runs `exe` with `args` to the end.
pub fn run<S: AsRef<OsStr>>(exe: &str, args: &[S]) -> Outcome {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    run_cmd(cmd)
}

/// Runs a prepared command to the end.
pub fn run_cmd(mut cmd: Command) -> Outcome {
    cmd.output().expect("start the tool").into()
}

/// Asserts that `line` is one `error: ...` line naming `file` and containing `problem`.
pub fn assert_error_line(line: &str, file: &Path, problem: &str) {
    assert!(line.starts_with("error: "), "{line}");
    assert!(
        line.contains(&*file.to_string_lossy()),
        "the error does not name {}: {line}",
        file.display()
    );
    assert!(
        line.contains(problem),
        "the error does not say `{problem}`: {line}"
    );
    assert_needs_more_than_holds(line);
}

/// When `line` says `the header needs N bytes ..., the file holds M`, checks that M < N (an error text
/// that contradicts itself, "needs 1152352 ... holds 1152352", was a bug).
pub fn assert_needs_more_than_holds(line: &str) {
    let number_after = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    if let Some(needs) = number_after("the header needs ") {
        let holds = number_after("the file holds ")
            .unwrap_or_else(|| panic!("`needs` without `the file holds`: {line}"));
        assert!(holds < needs, "the error contradicts itself: {line}");
    }
}

/// Every entry of `dir` (hidden ones too), sorted; empty when `dir` does not exist.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The temporaries (`.NAME...tmp`) in `dir`.
pub fn temporaries(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

/// Asserts that `a` and `b` hold the same file names with the same bytes.
pub fn assert_same_folders(a: &Path, b: &Path) {
    let (la, lb) = (listing(a), listing(b));
    assert_eq!(la, lb, "{} and {} differ", a.display(), b.display());
    for name in la {
        let (x, y) = (a.join(&name), b.join(&name));
        if x.is_file() {
            assert!(
                std::fs::read(&x).expect("read") == std::fs::read(&y).expect("read"),
                "{} and {} differ in content",
                x.display(),
                y.display()
            );
        }
    }
}

/// Damaged images in MSD naming (one file per case) written into `dir`: (case name, file, what the
/// reader's error says).
pub fn damaged_images(dir: &Path) -> Vec<(&'static str, PathBuf, &'static str)> {
    let good = std::fs::read(write_phantom(dir, "source.nii.gz", 1)).expect("read");
    std::fs::remove_file(dir.join("source.nii.gz")).expect("remove");
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    let (img, g) = phantom(1);
    let mut inf = img.mapv(f32::from);
    inf[[12, 20, 20]] = f32::INFINITY;
    vec![
        (
            "truncated",
            write_bytes(dir, "truncated.nii.gz", &good[..good.len() / 2]),
            "truncated: the header needs ",
        ),
        (
            "corrupt",
            write_bytes(dir, "corrupt.nii.gz", &corrupt),
            "corrupt gzip",
        ),
        ("empty", write_bytes(dir, "empty.nii.gz", b""), "empty"),
        (
            "text",
            // Not gzip: read as a raw .nii (as SimpleITK does), far shorter than a header.
            write_bytes(dir, "text.nii.gz", b"this is not an image\n"),
            "truncated",
        ),
        (
            // 30000^3 int16 voxels after the 352-byte header: 54 TB claimed by a 77 kB file. The
            // reader's diagnosis (the file cannot hold what its header says) comes before any memory
            // check, which would blame the size instead of the file.
            "terabytes",
            nii_with_dims(dir, "terabytes.nii", 1, &[3, 30000, 30000, 30000]),
            "truncated: the header needs 54000000000352 bytes of image data, the file holds 77152",
        ),
        (
            "infinite",
            write(dir, "infinite.nii.gz", &inf, &g),
            "is inf",
        ),
        (
            "zeros",
            write(dir, "zeros.nii.gz", &img.mapv(|_| 0i16), &g),
            "all-zero",
        ),
        (
            "flat",
            nii_with_dims(dir, "flat.nii", 1, &[2, 40, 40 * 24]),
            "only 3-D volumes",
        ),
        (
            // Two channels of 12 slices for a one-modality model.
            "fourd",
            nii_with_dims(dir, "fourd.nii", 1, &[4, 40, 40, 12, 2]),
            "has 2 modalities, the model expects 1",
        ),
    ]
}

/// Kills `child` (SIGKILL) as soon as `when()` holds, polling every millisecond; returns false when the
/// child ended first. Panics after 10 minutes without either.
pub fn kill_when(child: &mut Child, when: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if when() {
            child.kill().expect("kill");
            child.wait().expect("wait");
            return true;
        }
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the run neither ended nor reached the kill point");
}

/// A process that stays alive until dropped, and its `PID-START` token as `nnu_fsio` writes it (the owner
/// of a case lock or temporary that another live run holds).
pub struct Sleeper(Child);

impl Sleeper {
    /// Starts `sleep 600`.
    pub fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("600").spawn().expect("sleep"))
    }

    /// The process's `PID-START` token (start time from `/proc/PID/stat`).
    pub fn token(&self) -> String {
        let pid = self.0.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest = &stat[stat.rfind(')').expect("comm") + 1..];
        let start = rest.split_whitespace().nth(19).expect("starttime");
        format!("{pid}-{start}")
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Case `case` of the output folder `out` held by another live run: a [`Sleeper`] owns its lock
/// `.CASE.lock` and a temporary `.CASE{ending}.TOKEN-0.tmp`, as a run writing the case would.
pub struct HeldCase {
    /// The live owner (killed when this is dropped).
    pub owner: Sleeper,
    /// The owner's `PID-START` token.
    pub token: String,
    /// The lock file.
    pub lock: PathBuf,
    /// The owner's temporary.
    pub temp: PathBuf,
    case: String,
}

impl HeldCase {
    /// Plants the lock and the temporary of `case` in `out`.
    pub fn plant(out: &Path, case: &str, ending: &str) -> HeldCase {
        let owner = Sleeper::start();
        let token = owner.token();
        let lock = write_bytes(out, &format!(".{case}.lock"), token.as_bytes());
        let temp = write_bytes(
            out,
            &format!(".{case}{ending}.{token}-0.tmp"),
            b"being written",
        );
        HeldCase {
            owner,
            token,
            lock,
            temp,
            case: case.to_string(),
        }
    }

    /// Ends the owner (waiting for it) and returns the paths of its lock and temporary.
    pub fn release(self) -> (PathBuf, PathBuf) {
        drop(self.owner);
        (self.lock, self.temp)
    }

    /// Checks that a run `o` ended with exit 0, said that it skipped the case for the owner's pid, and
    /// left the owner's lock and temporary alone. `what` prefixes the failure messages.
    pub fn assert_left_alone(&self, o: &Outcome, what: &str) {
        o.assert_no_crash();
        assert_eq!(o.code, Some(0), "{what}: {}", o.stderr);
        let pid = self.token.split('-').next().expect("pid");
        assert!(
            o.stderr.contains(&format!(
                "{}: skipped, another run (pid {pid}) is working on it",
                self.case
            )),
            "{what}: {}",
            o.stderr
        );
        assert!(
            self.temp.exists(),
            "{what}: a live run's temporary was deleted"
        );
        assert!(self.lock.exists(), "{what}: a live run's lock was deleted");
    }
}

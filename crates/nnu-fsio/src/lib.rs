//! How every file of the workspace is written: atomically, durably, and in a way a crash can be cleaned
//! up after.
//!
//! **Durability, one definition for every writer.** A file is written to a temporary sibling in the same
//! folder, flushed and `fsync`ed, renamed over the destination, and then the folder is `fsync`ed. A
//! reader (or a resumed run) therefore sees either the old file or the whole new one, never a short one,
//! whether the process is killed or the machine loses power after the call returned.
//!
//! **One temporary name.** A temporary is `.NAME.PID-START-SEQ.tmp`: hidden, ending in `.tmp`, carrying
//! the writing process's id, its start time (Linux: clock ticks since boot, from `/proc/self/stat`; 0
//! elsewhere) and a per-process sequence number. [`temp_target`] parses it, and [`remove_stale_temps`]
//! deletes only temporaries whose process is gone, so two runs sharing an output folder never delete each
//! other's files.
//!
//! **Several files committed together.** A [`Batch`] stages files as temporaries and renames them all at
//! [`Batch::commit`]; on any error, or when dropped uncommitted, it removes every temporary and every file
//! it had already renamed, so a failed case leaves nothing of its own.
//!
//! **Case locks.** [`CaseLock`] is a per-case lock file (`.NAME.lock`, holding the owner's token) that a
//! second live process sees and skips; a lock whose process is gone is taken over, or removed by
//! [`remove_stale_locks`] (a killed run's lock on a case that is complete, which nobody locks again).
//!
//! **Fault injection** (for tests): see [`fault`]. With `NNU_FAULT_INJECT=write:3` the third write call
//! of the process to a file written through this crate fails (likewise `fsync:N`, `rename:N`). Unset, the
//! check costs one atomic load per operation.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let seg = dir.path().join("case.nii.gz");
//! let png = dir.path().join("case.png");
//! nnu_fsio::write_atomic(&dir.path().join("notes.txt"), b"hello").unwrap();
//! let mut batch = nnu_fsio::Batch::new();
//! batch.stage_with(&png, |w| std::io::Write::write_all(w, b"png")).unwrap();
//! batch.stage_with(&seg, |w| std::io::Write::write_all(w, b"nii")).unwrap();
//! batch.commit().unwrap(); // renamed in staging order: the segmentation last
//! assert_eq!(std::fs::read(&seg).unwrap(), b"nii");
//! ```
//!
//! It does not lock whole folders, retry, or know which files belong to a case: callers decide that.

#![warn(missing_docs)]

pub mod fault;
mod lock;
mod token;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use lock::{remove_stale_locks, Acquired, CaseLock};
pub use token::{process_token, ProcessToken};

/// What can go wrong while writing; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum FsioError {
    /// A file system call failed (or an injected fault, see [`fault`]).
    #[error("{path}: {source}")]
    Io {
        /// The destination (or folder) concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The destination has no file name (`/`, `..`).
    #[error("{0}: not a file name to write to")]
    NoFileName(PathBuf),
}

impl FsioError {
    fn io(path: &Path, source: io::Error) -> Self {
        FsioError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The path and an `io::Error` carrying the message, for crates whose error enum has an IO variant.
    pub fn into_parts(self) -> (PathBuf, io::Error) {
        match self {
            FsioError::Io { path, source } => (path, source),
            FsioError::NoFileName(path) => (
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name to write to"),
            ),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = FsioError> = std::result::Result<T, E>;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling a write of `path` goes through: `.NAME.PID-START-SEQ.tmp`.
pub fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| FsioError::NoFileName(path.to_path_buf()))?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let t = process_token();
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}-{}-{seq}.tmp", t.pid, t.start));
    Ok(path.with_file_name(tmp))
}

/// A temporary's file name parsed: the file it stands for and the process that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempName<'a> {
    /// `NAME` of `.NAME.PID-START-SEQ.tmp`.
    pub target: &'a str,
    /// The writing process.
    pub owner: ProcessToken,
}

/// Parses a temporary's file name (see [`temp_path`]); `None` for any other name.
pub fn temp_target(file_name: &str) -> Option<TempName<'_>> {
    let s = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (target, tok) = s.rsplit_once('.')?;
    let mut parts = tok.split('-');
    let num = |p: Option<&str>| -> Option<u64> {
        let p = p?;
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let pid = num(parts.next())?;
    let start = num(parts.next())?;
    num(parts.next())?;
    if parts.next().is_some() || target.is_empty() {
        return None;
    }
    Some(TempName {
        target,
        owner: ProcessToken {
            pid: u32::try_from(pid).ok()?,
            start,
        },
    })
}

/// Deletes the temporaries in `dir` whose writing process is gone (see [`ProcessToken::is_live`]) and
/// whose target `owned` accepts; returns how many were deleted. Temporaries of live processes, this one
/// included, are never touched.
pub fn remove_stale_temps(dir: &Path, owned: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(t) = temp_target(name) else { continue };
        if owned(t.target)
            && !t.owner.is_live()
            && entry.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The file under a temporary, counting writes and fsyncs for [`fault`] injection.
#[derive(Debug)]
pub struct FaultFile {
    file: File,
}

impl Write for FaultFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fault::check(fault::Op::Write)?;
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What a write callback fills: a 1 MiB buffered writer over the temporary file.
pub type Writer = BufWriter<FaultFile>;

fn sync_file(f: &File) -> io::Result<()> {
    fault::check(fault::Op::Fsync)?;
    f.sync_all()
}

/// `fsync`s a folder so that renames in it survive a power loss (a no-op where folders cannot be opened).
pub fn sync_dir(dir: &Path) -> Result<()> {
    fault::check(fault::Op::Fsync).map_err(|e| FsioError::io(dir, e))?;
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| FsioError::io(dir, e))?;
        d.sync_all().map_err(|e| FsioError::io(dir, e))?;
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fault::check(fault::Op::Rename)?;
    std::fs::rename(from, to)
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

struct Staged {
    tmp: PathBuf,
    target: PathBuf,
}

/// Files written as temporaries and renamed into place together by [`Batch::commit`].
///
/// Dropping an uncommitted batch removes its temporaries, so an early `?` return leaves nothing.
#[derive(Default)]
pub struct Batch {
    staged: Vec<Staged>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the future content of `path` to a temporary (`fill` writes it; it is then flushed and
    /// `fsync`ed). On error that temporary is removed at once, the others at drop.
    pub fn stage_with<F>(&mut self, path: &Path, fill: F) -> Result<()>
    where
        F: FnOnce(&mut Writer) -> io::Result<()>,
    {
        let tmp = temp_path(path)?;
        let result = (|| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, FaultFile { file });
            fill(&mut w)?;
            w.flush()?;
            sync_file(&w.get_ref().file)
        })();
        match result {
            Ok(()) => {
                self.staged.push(Staged {
                    tmp,
                    target: path.to_path_buf(),
                });
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(FsioError::io(path, e))
            }
        }
    }

    /// Stages `bytes` as the content of `path` (see [`Batch::stage_with`]).
    pub fn stage(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.stage_with(path, |w| w.write_all(bytes))
    }

    /// Renames every staged file over its destination, in staging order, then `fsync`s their folders.
    /// On error, the temporaries left and the files already renamed are removed (the batch's files are
    /// all there or none is).
    pub fn commit(mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let mut done: Vec<&Path> = Vec::new();
        let mut result = Ok(());
        for s in &staged {
            if let Err(e) = rename(&s.tmp, &s.target) {
                result = Err(FsioError::io(&s.target, e));
                break;
            }
            done.push(&s.target);
        }
        if result.is_ok() {
            let mut dirs: Vec<&Path> = staged.iter().map(|s| parent_of(&s.target)).collect();
            dirs.dedup();
            result = dirs.into_iter().try_for_each(sync_dir);
        }
        if result.is_err() {
            for s in &staged {
                let _ = std::fs::remove_file(&s.tmp);
            }
            for p in done {
                let _ = std::fs::remove_file(p);
            }
        }
        result
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for s in &self.staged {
            let _ = std::fs::remove_file(&s.tmp);
        }
    }
}

/// Writes `path` atomically and durably: `fill` writes a buffered temporary in the same folder, which is
/// `fsync`ed, renamed over `path`, and the folder `fsync`ed. On error nothing is left (no temporary, and
/// not the new `path`).
pub fn write_atomic_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut Writer) -> io::Result<()>,
{
    let mut b = Batch::new();
    b.stage_with(path, fill)?;
    b.commit()
}

/// Writes `bytes` to `path` atomically and durably (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_round_trip() {
        let p = temp_path(Path::new("/x/a.nii.gz")).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        let t = temp_target(name).unwrap();
        assert_eq!(t.target, "a.nii.gz");
        assert_eq!(t.owner, process_token());
        assert!(t.owner.is_live());
        assert_eq!(temp_target(".a.nii.gz.123.tmp"), None);
        assert_eq!(temp_target(".1-2-3.tmp"), None);
        assert_eq!(temp_target("a.1-2-3.tmp"), None);
        assert_eq!(
            temp_target(".b.bin.7-0-1.tmp").map(|t| t.target),
            Some("b.bin")
        );
    }

    #[test]
    fn stale_temps_of_dead_processes_only() {
        let d = tempfile::tempdir().unwrap();
        let me = process_token();
        let live = format!(".a.nii.gz.{}-{}-0.tmp", me.pid, me.start);
        // pid 0 is never a user process; a start time that does not match is a reused pid.
        let dead = ".a.nii.gz.4000000-1-0.tmp".to_string();
        let reused = format!(".a.nii.gz.{}-{}-0.tmp", me.pid, me.start + 1);
        let other = ".b.nii.gz.4000000-1-0.tmp".to_string();
        for f in [&live, &dead, &reused, &other] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        let n = remove_stale_temps(d.path(), |t| t == "a.nii.gz");
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        if cfg!(target_os = "linux") {
            assert_eq!(n, 2);
            assert_eq!(left, [live, other]);
        } else {
            assert_eq!(n, 1);
        }
    }

    #[test]
    fn batch_commits_all_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        {
            let mut batch = Batch::new();
            batch.stage(&a, b"1").unwrap();
            batch.stage(&b, b"2").unwrap();
            // dropped uncommitted
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let mut batch = Batch::new();
        batch.stage(&a, b"1").unwrap();
        // A folder in the way makes the second rename fail after the first succeeded.
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("x"), b"").unwrap();
        batch.stage(&b, b"2").unwrap();
        assert!(batch.commit().is_err());
        assert!(!a.exists());
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the blocking folder is left");
    }

    #[test]
    fn failed_fill_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.bin");
        let e = write_atomic_with(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("out.bin: boom"), "{e}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        write_atomic(&p, b"ok").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ok");
    }
}

//! Atomic file writes: a temporary file in the destination folder, renamed over the destination.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{BinsError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling of `path`: `.NAME.PID.N.tmp` in the same folder, so that the final rename stays on
/// one file system (and is therefore atomic) and `*.tmp` left behind by a killed process are easy to spot.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| BinsError::BadShape {
        path: path.to_path_buf(),
        shape: Vec::new(),
        reason: "the destination has no file name",
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.{n}.tmp", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Writes a file atomically: `write` fills a buffered temporary file in the destination's folder, which is
/// then renamed over `path`. A reader (or a later resumed run) therefore sees either no file or the whole
/// file, never a short one, even when the process is killed half-way. On error the temporary file is
/// removed. The data are not `fsync`ed: the guarantee is against interrupted processes, not power loss.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let tmp = temp_path(path)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| BinsError::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let result = write(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| BinsError::io(path, e));
    drop(w);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        BinsError::io(path, e)
    })
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

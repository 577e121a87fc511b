//! Atomic file writes, through [`nnu_fsio`] (temporary in the same folder, fsync, rename, folder fsync).

use std::path::Path;

use crate::error::{BinsError, Result};

fn err(e: nnu_fsio::FsioError) -> BinsError {
    let (path, source) = e.into_parts();
    BinsError::io(path, source)
}

/// Writes a file atomically and durably (see [`nnu_fsio::write_atomic_with`]): `write` fills a buffered
/// temporary file in the destination's folder, which is then renamed over `path`. A reader (or a later
/// resumed run) sees either no file or the whole file. On error nothing is left.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut nnu_fsio::Writer) -> std::io::Result<()>,
{
    nnu_fsio::write_atomic_with(path, write).map_err(err)
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    nnu_fsio::write_atomic(path, bytes).map_err(err)
}

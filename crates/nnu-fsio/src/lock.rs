//! Per-case lock files, so that two runs on one output folder do not compute the same case.

use std::path::{Path, PathBuf};

use crate::{process_token, FsioError, ProcessToken, Result};

/// A held lock on one case of an output folder: the file `.NAME.lock` holding the owner's
/// `PID-START`; removed when dropped.
#[derive(Debug)]
pub struct CaseLock {
    path: PathBuf,
}

/// Whether [`CaseLock::acquire`] got the lock.
#[derive(Debug)]
pub enum Acquired {
    /// This process holds it now.
    Held(CaseLock),
    /// Another live process holds it.
    Busy(ProcessToken),
}

impl CaseLock {
    /// The lock file of case `name` in `dir`.
    pub fn path_for(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(".{name}.lock"))
    }

    /// Takes the lock of case `name` in `dir`, or reports the live process that holds it. A lock left by a
    /// process that is gone is taken over. The lock file appears with its content in one step (written
    /// to a temporary, then hard-linked), so a reader never sees an empty lock.
    pub fn acquire(dir: &Path, name: &str) -> Result<Acquired> {
        let path = Self::path_for(dir, name);
        let me = process_token();
        let tmp = crate::temp_path(&path)?;
        std::fs::write(&tmp, me.to_text()).map_err(|e| FsioError::io(&tmp, e))?;
        let result = (|| {
            for _ in 0..2 {
                match std::fs::hard_link(&tmp, &path) {
                    Ok(()) => return Ok(Acquired::Held(CaseLock { path: path.clone() })),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let owner = std::fs::read_to_string(&path)
                            .ok()
                            .and_then(|t| ProcessToken::parse(&t));
                        match owner {
                            Some(o) if o.is_live() => return Ok(Acquired::Busy(o)),
                            // Gone, or not a lock we wrote: take it over.
                            _ => {
                                let _ = std::fs::remove_file(&path);
                            }
                        }
                    }
                    Err(e) => return Err(FsioError::io(&path, e)),
                }
            }
            Err(FsioError::io(
                &path,
                std::io::Error::other("the lock file keeps reappearing"),
            ))
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

impl Drop for CaseLock {
    fn drop(&mut self) {
        // Only our own lock (a takeover by another process after a pid check is not undone here).
        let mine = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| ProcessToken::parse(&t))
            == Some(process_token());
        if mine {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_released() {
        let d = tempfile::tempdir().unwrap();
        let a = match CaseLock::acquire(d.path(), "c").unwrap() {
            Acquired::Held(l) => l,
            Acquired::Busy(_) => panic!("fresh lock busy"),
        };
        // The same process asking again sees itself as the live owner.
        assert!(matches!(
            CaseLock::acquire(d.path(), "c").unwrap(),
            Acquired::Busy(t) if t == process_token()
        ));
        drop(a);
        assert!(!CaseLock::path_for(d.path(), "c").exists());
        // A stale lock (no such process) is taken over.
        std::fs::write(CaseLock::path_for(d.path(), "c"), "4000000-1").unwrap();
        if cfg!(target_os = "linux") {
            assert!(matches!(
                CaseLock::acquire(d.path(), "c").unwrap(),
                Acquired::Held(_)
            ));
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}

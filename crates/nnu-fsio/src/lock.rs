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
                        match owner_of(&path) {
                            Some(o) if o.is_live() => return Ok(Acquired::Busy(o)),
                            // Gone, or not a lock we wrote: take it over.
                            _ => {
                                remove_if_stale(&path);
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

/// The process a lock file names; `None` when it cannot be read or is not a lock we wrote.
fn owner_of(path: &Path) -> Option<ProcessToken> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| ProcessToken::parse(&t))
}

/// Removes the lock file `path` when the process it names is gone (or it names none); returns whether
/// it was removed. The file is first renamed aside (to this process's temporary of it) and checked
/// again there, so that a lock another live run took over between the check and the removal is put
/// back rather than deleted.
fn remove_if_stale(path: &Path) -> bool {
    let stale = |p: &Path| owner_of(p).is_none_or(|o| !o.is_live());
    if !stale(path) {
        return false;
    }
    let Ok(aside) = crate::temp_path(path) else {
        return false;
    };
    // Gone already: another run removed or took it over.
    if std::fs::rename(path, &aside).is_err() {
        return false;
    }
    let removed = stale(&aside);
    if !removed {
        // A live run's lock after all: back where it was (unless yet another run holds it now).
        let _ = std::fs::hard_link(&aside, path);
    }
    let _ = std::fs::remove_file(&aside);
    removed
}

/// Deletes the lock files in `dir` (`.NAME.lock`, see [`CaseLock`]) whose process is gone and whose file
/// name `owned` accepts; returns how many were deleted. A killed run leaves its lock behind: a later run
/// takes it over when it works on that case, but a case it finds complete is never locked again, so its
/// stale lock is removed here. Locks of live processes, this one included, are never touched.
pub fn remove_stale_locks(dir: &Path, owned: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_lock =
            name.len() > ".lock".len() + 1 && name.starts_with('.') && name.ends_with(".lock");
        if is_lock
            && owned(name)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && remove_if_stale(&entry.path())
        {
            removed += 1;
        }
    }
    removed
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

    #[test]
    fn stale_locks_of_dead_processes_only() {
        let d = tempfile::tempdir().unwrap();
        let me = process_token().to_text();
        // pid 4000000 does not exist; the same pid with another start time is a reused pid.
        let reused = format!("{}-{}", process_token().pid, process_token().start + 1);
        for (f, owner) in [
            (".live.lock", me.as_str()),
            (".dead.lock", "4000000-1"),
            (".reused.lock", reused.as_str()),
            (".garbage.lock", "not a token"),
            (".other.lock", "4000000-1"),
            ("dead.lock", "4000000-1"),
        ] {
            std::fs::write(d.path().join(f), owner).unwrap();
        }
        let n = remove_stale_locks(d.path(), |f| f != ".other.lock");
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        if cfg!(target_os = "linux") {
            assert_eq!(n, 3);
            assert_eq!(left, [".live.lock", ".other.lock", "dead.lock"]);
        } else {
            // Liveness cannot be told: only the lock that names no process goes.
            assert_eq!(n, 1);
        }
        // A live lock is still this process's and still exclusive.
        assert!(matches!(
            CaseLock::acquire(d.path(), "live").unwrap(),
            Acquired::Busy(t) if t == process_token()
        ));
    }
}

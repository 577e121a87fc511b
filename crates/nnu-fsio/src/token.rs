//! Which process wrote a temporary or holds a lock, and whether it still runs.

use std::sync::OnceLock;

/// A process, told apart from a later process that reuses its id by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessToken {
    /// The process id.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22); 0 where unknown.
    pub start: u64,
}

/// Field 22 (`starttime`) of `/proc/PID/stat`; `None` when the process does not exist.
#[cfg(target_os = "linux")]
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This process's token (computed once).
pub fn process_token() -> ProcessToken {
    static TOKEN: OnceLock<ProcessToken> = OnceLock::new();
    *TOKEN.get_or_init(|| {
        let pid = std::process::id();
        #[cfg(target_os = "linux")]
        let start = start_time(pid).unwrap_or(0);
        #[cfg(not(target_os = "linux"))]
        let start = 0;
        ProcessToken { pid, start }
    })
}

impl ProcessToken {
    /// Whether the process still runs. On Linux: `/proc/PID` exists with the same start time. Elsewhere
    /// this cannot be told without more system calls, and the answer is `true` (never delete what a
    /// live process may own).
    pub fn is_live(&self) -> bool {
        if *self == process_token() {
            return true;
        }
        #[cfg(target_os = "linux")]
        {
            start_time(self.pid).is_some_and(|s| s == self.start)
        }
        #[cfg(not(target_os = "linux"))]
        {
            true
        }
    }

    /// `PID-START`, as written into temporary names and lock files.
    pub fn to_text(&self) -> String {
        format!("{}-{}", self.pid, self.start)
    }

    /// Parses [`ProcessToken::to_text`].
    pub fn parse(text: &str) -> Option<ProcessToken> {
        let (p, s) = text.trim().split_once('-')?;
        Some(ProcessToken {
            pid: p.parse().ok()?,
            start: s.parse().ok()?,
        })
    }
}

//! Fault injection for tests: make the N-th write, fsync or rename of this process fail.
//!
//! Set `NNU_FAULT_INJECT` to `write:N`, `fsync:N` or `rename:N` (N counted from 1, over the whole
//! process, across threads) before the process starts. The N-th such call made through this crate
//! (every file the tools write goes through it) fails with an `io::Error` whose text starts with
//! `injected fault`; all other calls, before and after, succeed. `write` counts the write calls to the
//! temporary files (after the 1 MiB buffer, so a small file is one write); `fsync` counts file and
//! folder syncs; `rename` counts the final renames.
//!
//! Unset (the normal case) every check is one relaxed atomic load after the first. The variable is read
//! once, at the first write of the process. An unparsable value is reported on stderr once and ignored.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// The operations that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A write call to a temporary file.
    Write = 0,
    /// `fsync` of a file or folder.
    Fsync = 1,
    /// The rename of a temporary over its destination.
    Rename = 2,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Fsync => "fsync",
            Op::Rename => "rename",
        }
    }
}

/// The environment variable read.
pub const ENV: &str = "NNU_FAULT_INJECT";

// 0: not read yet; 1: inactive; 2: active.
static STATE: AtomicU8 = AtomicU8::new(0);
static TARGET_OP: AtomicU8 = AtomicU8::new(0);
static TARGET_N: AtomicU64 = AtomicU64::new(0);
static COUNTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn parse(v: &str) -> Option<(Op, u64)> {
    let (op, n) = v.trim().split_once(':')?;
    let op = match op {
        "write" => Op::Write,
        "fsync" => Op::Fsync,
        "rename" => Op::Rename,
        _ => return None,
    };
    let n: u64 = n.parse().ok()?;
    (n >= 1).then_some((op, n))
}

#[cold]
fn init() -> u8 {
    let state = match std::env::var(ENV) {
        Ok(v) => match parse(&v) {
            Some((op, n)) => {
                TARGET_OP.store(op as u8, Ordering::Relaxed);
                TARGET_N.store(n, Ordering::Relaxed);
                2
            }
            None => {
                eprintln!("warning: {ENV}={v} ignored (expected write:N, fsync:N or rename:N)");
                1
            }
        },
        Err(_) => 1,
    };
    // Two threads may both initialise; they store the same values.
    STATE.store(state, Ordering::Release);
    state
}

/// Counts one `op` and fails it when it is the one `NNU_FAULT_INJECT` names.
#[inline]
pub fn check(op: Op) -> io::Result<()> {
    let mut s = STATE.load(Ordering::Acquire);
    if s == 0 {
        s = init();
    }
    if s == 1 {
        return Ok(());
    }
    let n = COUNTS[op as usize].fetch_add(1, Ordering::Relaxed) + 1;
    if TARGET_OP.load(Ordering::Relaxed) == op as u8 && TARGET_N.load(Ordering::Relaxed) == n {
        return Err(io::Error::other(format!(
            "injected fault: {} #{n} failed ({ENV})",
            op.name()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse("write:3"), Some((Op::Write, 3)));
        assert_eq!(parse("fsync:1"), Some((Op::Fsync, 1)));
        assert_eq!(parse("rename:12"), Some((Op::Rename, 12)));
        assert_eq!(parse("rename:0"), None);
        assert_eq!(parse("read:1"), None);
        assert_eq!(parse("write"), None);
    }
}

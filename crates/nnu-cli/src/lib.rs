//! What every tool's command line shares: the exit-code convention ([`EXIT_OK`], [`EXIT_FAILED`],
//! [`EXIT_USAGE`]), argument parsers that reject bad values before any work (clap reports them and exits
//! with [`EXIT_USAGE`]), and progress reporting that also works without a terminal (Slurm and Kubernetes
//! logs).
//!
//! The crate has no dependencies, so every tool can use the same statuses and lines, including the
//! tools that do not compose the pipeline (`nnu-inspect`, `nnu-phantom`, `nnu-preview`, ...).
//! `nnu_pipeline::cli` re-exports it.
//!
//! ```
//! use std::process::ExitCode;
//!
//! use nnu_cli::{parse_step_size, summary_line, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
//!
//! assert_eq!(parse_step_size("0.5"), Ok(0.5));
//! assert!(parse_step_size("0").is_err()); // clap prints it and exits with EXIT_USAGE (2)
//! assert_eq!(summary_line(1.3, 2, 1, 0), "done in 1.3 s: 2 ok, 1 failed");
//! let failed = 1;
//! let _status = ExitCode::from(if failed == 0 { EXIT_OK } else { EXIT_FAILED });
//! assert_eq!((EXIT_OK, EXIT_FAILED, EXIT_USAGE), (0, 1, 2));
//! ```
//!
//! Deliberately not here: argument structs (each tool has its own clap struct) and progress bars
//! (`indicatif`, in the tools).

#![warn(missing_docs)]

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Exit status when every case (or tile) was done, or already done by an earlier run.
pub const EXIT_OK: u8 = 0;
/// Exit status when some cases (or tiles) failed; the others were done and each failure was named.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for bad arguments or an unusable input, model or output folder: nothing was done. clap
/// uses the same status for its own argument errors.
pub const EXIT_USAGE: u8 = 2;

/// Parses a size in bytes with an optional binary suffix (K, M, G, T: powers of 1024): 512M, 16G, 1.5T,
/// 4096 (`--max-memory`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in '{s}' (K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 16G or 512M"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("'{s}' is not a positive size"));
    }
    Ok((v * mult as f64) as u64)
}

/// Parses a duration in seconds (fractions allowed, not negative): `60`, `0.5`.
pub fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(v).map_err(|_| format!("{s}: not a duration in seconds"))
}

/// A tool's exit status from how its run ended, the convention of every tool: `Ok(true)` every case
/// (or tile) done, [`EXIT_OK`]; `Ok(false)` some failed, each already named, [`EXIT_FAILED`]; `Err(e)`
/// nothing done, `error: e` printed on standard error, [`EXIT_USAGE`].
pub fn exit_status<E: std::fmt::Display>(outcome: Result<bool, E>) -> std::process::ExitCode {
    std::process::ExitCode::from(match outcome {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    })
}

/// nnU-Net's default sliding-window step (`step_size`, a fraction of the patch size).
pub const DEFAULT_STEP_SIZE: f64 = 0.5;

/// Parses `--step-size`: a number in (0, 1], the window step as a fraction of the patch size
/// (nnU-Net's `step_size`). For clap's `value_parser`, so that a bad value is refused before any
/// folder is created or model loaded.
pub fn parse_step_size(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| {
        format!("`{s}` is not a number (a fraction of the patch size in (0, 1], e.g. 0.5)")
    })?;
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "{s} is outside (0, 1]: the window step is a fraction of the patch size (nnU-Net's default 0.5)"
        ))
    }
}

/// How many times as many windows a 3D run with `step_size` has as one with the default 0.5, roughly
/// (windows per axis scale with 1 / step_size on volumes much larger than the patch).
pub fn window_factor(step_size: f64) -> f64 {
    (DEFAULT_STEP_SIZE / step_size).powi(3)
}

/// A warning for a step size that multiplies the work (more than 8 times the windows of the default,
/// i.e. below 0.25), or `None`.
pub fn step_size_warning(step_size: f64) -> Option<String> {
    let f = window_factor(step_size);
    (f > 8.0).then(|| {
        format!(
            "warning: --step-size {step_size} runs about {f:.0} times as many windows as the default \
             {DEFAULT_STEP_SIZE} (each window overlaps the next by {:.0} % of the patch); expect the run \
             to take that much longer",
            (1.0 - step_size) * 100.0
        )
    })
}

/// Progress of the tiles of a run, for logs without a terminal: [`LogProgress::update`] prints a line
/// (tiles done, rate, ETA) at most every `every`, and only when stderr is not a terminal (a terminal
/// has the progress bar instead).
#[derive(Debug)]
pub struct LogProgress {
    enabled: bool,
    every: Duration,
    start: Instant,
    last: Instant,
}

impl LogProgress {
    /// A reporter that prints at most every `every` (tools use 30 s), when stderr is not a terminal.
    pub fn new(every: Duration) -> Self {
        let now = Instant::now();
        LogProgress {
            enabled: !std::io::stderr().is_terminal(),
            every,
            start: now,
            last: now,
        }
    }

    /// Whether lines are printed (stderr is not a terminal).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Reports `done` of `total` tiles of `what` (a case name); prints when due.
    pub fn update(&mut self, what: &str, done: usize, total: usize) {
        if !self.enabled || done == 0 || self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        eprintln!(
            "{}",
            progress_line(what, done, total, "tiles", self.start.elapsed())
        );
    }
}

/// `what: 120/800 tiles, 3.1 tiles/s, ETA 3m39s` for `done` of `total` `unit`s after `elapsed`.
pub fn progress_line(
    what: &str,
    done: usize,
    total: usize,
    unit: &str,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = done as f64 / secs;
    let eta = if rate > 0.0 {
        let left = total.saturating_sub(done) as f64 / rate;
        format!("{}m{:02}s", (left / 60.0) as u64, (left % 60.0) as u64)
    } else {
        "unknown".into()
    };
    format!("{what}: {done}/{total} {unit}, {rate:.1} {unit}/s, ETA {eta}")
}

/// The closing line of a run over cases: `done in 3.2 s: 2 ok, 1 failed`, `2 already done, skipped`,
/// or both parts (`done in 3.2 s: 1 ok, 0 failed; 2 already done, skipped`).
pub fn summary_line(seconds: f64, ok: usize, failed: usize, skipped: usize) -> String {
    let ran = ok + failed;
    match (ran, skipped) {
        (0, 0) => "nothing to do: no case".into(),
        (0, s) => format!("{s} already done, skipped"),
        (_, 0) => format!("done in {seconds:.1} s: {ok} ok, {failed} failed"),
        (_, s) => {
            format!("done in {seconds:.1} s: {ok} ok, {failed} failed; {s} already done, skipped")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_size_range() {
        for ok in ["0.5", "1", "0.01", " 0.25"] {
            assert!(parse_step_size(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "2", "-0.5", "NaN", "inf", "abc", ""] {
            let e = parse_step_size(bad).unwrap_err();
            assert!(e.contains("(0, 1]"), "{bad}: {e}");
        }
        assert!(step_size_warning(0.5).is_none());
        assert!(step_size_warning(0.25).is_none());
        let w = step_size_warning(0.01).expect("warns");
        assert!(w.contains("125000 times"), "{w}");
    }

    #[test]
    fn lines() {
        assert_eq!(summary_line(0.0, 0, 0, 2), "2 already done, skipped");
        assert_eq!(summary_line(1.3, 2, 1, 0), "done in 1.3 s: 2 ok, 1 failed");
        assert!(summary_line(1.0, 1, 0, 2).ends_with("; 2 already done, skipped"));
        assert_eq!(
            progress_line("a", 10, 40, "tiles", Duration::from_secs(5)),
            "a: 10/40 tiles, 2.0 tiles/s, ETA 0m15s"
        );
    }
}

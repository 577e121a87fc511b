//! What every tool's command line shares: the exit-code convention, argument parsers that reject bad
//! values before any work, and progress lines that also work without a terminal; re-exported from
//! `nnu-cli`, which the tools outside the pipeline use directly.

pub use nnu_cli::*;

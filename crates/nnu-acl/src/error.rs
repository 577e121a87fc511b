//! The crate's error type.

use std::path::PathBuf;

/// Errors of the AscendCL wrapper. Each variant names the library, device, model or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// `libascendcl.so` could not be loaded from any place tried.
    #[error("cannot load AscendCL (is CANN installed and its set_env.sh sourced?); tried: {}", fmt_tried(.tried))]
    NotFound {
        /// Each path tried with the loader's message.
        tried: Vec<(PathBuf, String)>,
    },
    /// The library lacks functions this crate calls.
    #[error("{path}: not a usable AscendCL library, missing: {}", .symbols.join(", "))]
    MissingSymbols {
        /// The library loaded.
        path: PathBuf,
        /// The missing functions.
        symbols: Vec<&'static str>,
    },
    /// A process already runs AscendCL from another library file.
    #[error("AscendCL is already initialised from {running}, cannot also use {requested}")]
    OtherLibrary {
        /// The library in use.
        running: PathBuf,
        /// The library requested.
        requested: PathBuf,
    },
    /// An AscendCL call returned an error code.
    #[error("{call} failed with error {code} ({context}): {message}")]
    Call {
        /// The AscendCL function.
        call: &'static str,
        /// Its `aclError` code.
        code: i32,
        /// What it was called for (device, model file, buffer size...).
        context: String,
        /// `aclGetRecentErrMsg()`, or a note that none was available.
        message: String,
    },
    /// An AscendCL call that returns a pointer returned null.
    #[error("{call} returned null ({context}): {message}")]
    Null {
        /// The AscendCL function.
        call: &'static str,
        /// What it was called for.
        context: String,
        /// `aclGetRecentErrMsg()`, or a note that none was available.
        message: String,
    },
    /// A model whose inputs or outputs this crate cannot use.
    #[error("{path}: {reason}")]
    Model {
        /// The `.om` file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// Host data of the wrong size for a model input or output.
    #[error("{what}: {got} bytes given, the model needs {expected}")]
    Size {
        /// Which input or output.
        what: String,
        /// Bytes the model needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

fn fmt_tried(tried: &[(PathBuf, String)]) -> String {
    tried
        .iter()
        .map(|(p, e)| format!("{} ({e})", p.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shorthand for results of this crate.
pub type Result<T, E = AclError> = std::result::Result<T, E>;

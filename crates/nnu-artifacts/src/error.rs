//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading an nnU-Net model folder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A required file of a model folder is missing.
    #[error("{}: missing ({what})", path.display())]
    MissingFile {
        /// The file that should exist.
        path: PathBuf,
        /// What it is needed for.
        what: String,
    },
    /// An error inside a file: wraps any other variant with the file it came from.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong in it.
        source: Box<Error>,
    },
    /// The pickle ended before `STOP` or in the middle of an opcode's argument.
    #[error("pickle truncated at byte {offset} (opcode {opcode:#04x} needs {needed} more bytes)")]
    Truncated {
        /// Byte offset where more input was needed.
        offset: usize,
        /// The opcode being read.
        opcode: u8,
        /// How many more bytes it needed.
        needed: u64,
    },
    /// A byte that is no pickle opcode (or one this reader refuses, such as `EXT1`).
    #[error("pickle: unsupported opcode {opcode:#04x} at byte {offset}")]
    BadOpcode {
        /// Byte offset of the opcode.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// An opcode whose operands are wrong (empty stack, missing mark, unknown memo key, bad text, ...).
    #[error("pickle: opcode {opcode:#04x} at byte {offset}: {what}")]
    Malformed {
        /// Byte offset of the opcode.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
        /// What is wrong.
        what: String,
    },
    /// A configured limit was exceeded (nesting depth, stack size, memo size, ...).
    #[error("pickle: {what} exceeds the limit of {limit}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// A known Python constructor (numpy array, dtype, torch tensor, ...) got arguments it cannot take.
    #[error("pickle: bad {what}: {reason}")]
    BadObject {
        /// The constructor, e.g. `numpy.ndarray`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A key that a typed reader needs is absent.
    #[error("missing key `{key}`")]
    MissingKey {
        /// Slash-separated path of the key, e.g. `plans_per_stage/0/patch_size`.
        key: String,
    },
    /// A value has the wrong type or an impossible value.
    #[error("`{key}`: expected {expected}, found {found}")]
    BadValue {
        /// Slash-separated path of the key.
        key: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The file is neither a zip `torch.save` archive nor a legacy one, or the archive is damaged.
    #[error("checkpoint archive: {0}")]
    Archive(String),
    /// A `.npy` file that is not a little-endian f32 C-order array of the size its header says.
    #[error("{0}")]
    Npy(String),
    /// A JSON file could not be parsed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps `self` with the file it came from (unless it already names one).
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Error {
        match self {
            e @ (Error::Io { .. } | Error::InFile { .. } | Error::MissingFile { .. }) => e,
            e => Error::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's error type.

use std::path::PathBuf;

/// Errors of the Ascend file exchange. Every variant names the file or the offending value.
#[derive(Debug, thiserror::Error)]
pub enum BinsError {
    /// An operating-system error while reading, writing, listing or renaming a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file name does not follow the recipe's naming scheme.
    #[error("{name}: not a tile name: {reason}")]
    BadName {
        /// The offending file name.
        name: String,
        /// What does not fit.
        reason: String,
    },
    /// A case name cannot be written into the recipe's text formats.
    #[error("case name {case:?}: {reason}")]
    BadCaseName {
        /// The offending case name.
        case: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A mirror index outside `0..8`.
    #[error("mirror index {0} is outside 0..8")]
    BadMirror(u32),
    /// Tile bounds that are empty or inverted (`lower >= upper` on some axis), or whose upper bound
    /// overflows (shown as `usize::MAX`).
    #[error("tile bounds {lower:?}..{upper:?} are empty, inverted or overflow")]
    BadBounds {
        /// Lower bounds (inclusive), array axes (0, 1, 2).
        lower: [usize; 3],
        /// Upper bounds (exclusive), array axes (0, 1, 2).
        upper: [usize; 3],
    },
    /// A line of a text file (`all_shape.txt`, `.info`) cannot be parsed.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The text file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A shape record whose steps do not fit its padded shape and the patch size.
    #[error("case {case}: {reason}")]
    BadShapeRecord {
        /// The case of the record.
        case: String,
        /// What does not fit.
        reason: String,
    },
    /// A binary file whose size is not the size its shape needs.
    #[error("{path}: {found} bytes, expected {expected} bytes")]
    WrongSize {
        /// The binary file.
        path: PathBuf,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes on disk.
        found: u64,
    },
    /// An array handed to a reader or writer has a shape the operation cannot use.
    #[error("{path}: shape {shape:?}: {reason}")]
    BadShape {
        /// The file being read or written.
        path: PathBuf,
        /// The offending shape.
        shape: Vec<usize>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path that cannot be written into a space-separated `.info` line.
    #[error("{path}: cannot be written into a .info line: {reason}")]
    BadInfoPath {
        /// The offending path.
        path: PathBuf,
        /// Why (not UTF-8, contains whitespace).
        reason: &'static str,
    },
    /// A shard count of zero.
    #[error("the number of shards must be at least 1, got {0}")]
    BadShardCount(usize),
}

impl BinsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BinsError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = BinsError> = std::result::Result<T, E>;

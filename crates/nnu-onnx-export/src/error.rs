//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building or writing an ONNX model.
///
/// Variants carry the offending state_dict key, value or path so that a tool can print
/// `error: FILE: what is wrong` without further context.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The network description itself is inconsistent (kernel list lengths, dimensionality, ...).
    #[error("invalid network description: {0}")]
    InvalidSpec(String),

    /// The patch size cannot pass through the network: an axis is not divisible by the product of
    /// the pooling strides along it, so skip connections and upsampled maps would disagree.
    #[error("patch size {patch:?} is not divisible by the pooling strides {divisor:?}")]
    PatchNotDivisible {
        /// The patch size (spatial axes).
        patch: Vec<usize>,
        /// The product of the pool kernel sizes per axis.
        divisor: Vec<usize>,
    },

    /// The requested opset is outside the supported range.
    #[error("unsupported ONNX opset {0} (supported: 9 to 21)")]
    UnsupportedOpset(i64),

    /// A tensor the network needs is not in the state_dict.
    #[error("state_dict has no key `{key}`")]
    MissingKey {
        /// The state_dict key the module would register.
        key: String,
    },

    /// The state_dict holds a tensor the network does not use.
    #[error("state_dict key `{key}` is not part of the network ({count} unused key(s) in total)")]
    UnexpectedKey {
        /// The first unused key (in state_dict order).
        key: String,
        /// How many keys were left unused.
        count: usize,
    },

    /// A state_dict key occurs twice.
    #[error("state_dict key `{key}` occurs twice")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },

    /// A tensor's shape does not fit the network at that position.
    #[error("state_dict key `{key}` has shape {found:?}, expected {expected}")]
    ShapeMismatch {
        /// The state_dict key.
        key: String,
        /// The expected shape, `?` where any extent is accepted.
        expected: String,
        /// The shape found in the state_dict.
        found: Vec<usize>,
    },

    /// A tensor's element count does not match its shape.
    #[error("state_dict key `{key}` has {len} values for shape {shape:?}")]
    DataLength {
        /// The state_dict key.
        key: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// The number of values supplied.
        len: usize,
    },

    /// Reading the plans, trainer pickle or checkpoint failed (the error names the file).
    #[error(transparent)]
    Artifacts(#[from] nnu_artifacts::Error),

    /// Writing the model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ExportError> = std::result::Result<T, E>;

//! The crate's error type.

/// Everything that can go wrong in preprocessing and export; each variant carries the offending value.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// No channel was given.
    #[error("no image channels given")]
    NoChannels,
    /// Every voxel of every channel is zero: nnU-Net's crop has no bounding box then.
    #[error(
        "all-zero image of shape {shape:?}: nothing to crop to (nnU-Net needs a nonzero voxel)"
    )]
    AllZero {
        /// Shape (z, y, x) of the image.
        shape: [usize; 3],
    },
    /// An array does not have the shape it must have.
    #[error("{what} has shape {shape:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Which array.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// The shape it must have.
        expected: Vec<usize>,
    },
    /// A spacing is zero, negative or not finite.
    #[error("invalid spacing {0:?}: every spacing must be finite and > 0")]
    InvalidSpacing([f64; 3]),
    /// Resampling would give (or got) an axis with no voxels.
    #[error("resampling shape {shape:?} gives {new_shape:?}: every axis needs at least one voxel")]
    EmptyShape {
        /// Input shape.
        shape: [usize; 3],
        /// Output shape.
        new_shape: [usize; 3],
    },
    /// A voxel is +-infinity (NaN is set to 0 as nnU-Net does; infinity would spread through resampling).
    #[error(
        "channel {channel}: voxel {index:?} is {value}; infinite intensities are not supported"
    )]
    NonFinite {
        /// Channel index.
        channel: usize,
        /// Voxel index (z, y, x) in the channel.
        index: [usize; 3],
        /// The value.
        value: f32,
    },
    /// An interpolation order other than 0, 1 or 3.
    #[error("unsupported interpolation order {0} (supported: 0, 1, 3)")]
    UnsupportedOrder(u32),
    /// An axis index outside 0..3.
    #[error("axis {0} out of range for a 3-D volume")]
    InvalidAxis(usize),
    /// `transpose_forward` / `transpose_backward` is not a permutation of (0, 1, 2).
    #[error("transpose {0:?} is not a permutation of [0, 1, 2]")]
    InvalidTranspose(Vec<usize>),
    /// The number of per-channel settings does not match the number of channels.
    #[error("{what}: {found} entries for {expected} channels")]
    ChannelCount {
        /// Which setting.
        what: &'static str,
        /// Entries given.
        found: usize,
        /// Channels present.
        expected: usize,
    },
    /// A crop bounding box that does not fit the original shape.
    #[error("crop_bbox {bbox:?} does not fit the original shape {shape:?}")]
    InvalidBbox {
        /// The box, `[start, end)` per axis.
        bbox: [[usize; 2]; 3],
        /// Original shape.
        shape: [usize; 3],
    },
    /// More classes than a u8 label map can hold.
    #[error("{0} classes do not fit a u8 label map (at most 256)")]
    TooManyClasses(usize),
    /// A normalisation statistic that cannot be used (e.g. `sd` of zero).
    #[error("channel {channel}: invalid normalisation parameter {name} = {value}")]
    InvalidNormalization {
        /// Channel index.
        channel: usize,
        /// Parameter name as nnU-Net spells it.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// An nnunetv2 plans setting this crate does not implement (a normalisation scheme, a resampling
    /// function or order), named with its value.
    #[error("unsupported nnunetv2 setting {what}")]
    Unsupported {
        /// The setting and its value, e.g. `normalization_schemes[0] = "MyNorm"`.
        what: String,
    },
    /// A volume-sized buffer that could not be allocated (the process's address-space limit, or more
    /// than the machine has): the case fails with this instead of aborting the process.
    #[error("out of memory: cannot allocate {} ({bytes} bytes) for {what}", nnu_alloc::human_bytes(*bytes))]
    OutOfMemory {
        /// The buffer, e.g. `the preprocessed volume`.
        what: &'static str,
        /// Its size in bytes (saturating at `u64::MAX`).
        bytes: u64,
    },
    /// `postprocessing.json` content that cannot be understood.
    #[error("postprocessing.json: {0}")]
    Postprocessing(String),
}

impl From<nnu_alloc::AllocError> for PreprocessError {
    fn from(e: nnu_alloc::AllocError) -> Self {
        PreprocessError::OutOfMemory {
            what: e.what,
            bytes: e.bytes,
        }
    }
}

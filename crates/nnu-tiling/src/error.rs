//! The crate's error type.

/// Everything that can go wrong while tiling, mirroring or merging.
///
/// Every variant carries the offending value so that a tool can print it as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TilingError {
    /// A patch size with a zero-length axis.
    #[error("patch size {patch:?} has an axis of length 0")]
    EmptyPatch {
        /// The patch size (z, y, x).
        patch: [usize; 3],
    },
    /// An image with a zero-length axis.
    #[error("image shape {shape:?} has an axis of length 0")]
    EmptyImage {
        /// The image shape (z, y, x).
        shape: [usize; 3],
    },
    /// `step_size` outside nnU-Net's accepted range (0, 1].
    #[error(
        "step size {step_size} is outside (0, 1] (the window step as a fraction of the patch size)"
    )]
    InvalidStepSize {
        /// The value given.
        step_size: f64,
    },
    /// The (padded) image is smaller than the patch along some axis.
    #[error("image shape {image:?} is smaller than the patch size {patch:?}")]
    ImageSmallerThanPatch {
        /// The image shape (z, y, x).
        image: [usize; 3],
        /// The patch size (z, y, x).
        patch: [usize; 3],
    },
    /// Explicit sliding-window starts that do not fit the padded image.
    #[error(
        "tile starts {steps:?} along axis {axis} do not fit padded size {size} with patch {patch}"
    )]
    InvalidSteps {
        /// The spatial axis (0 = z, 1 = y, 2 = x).
        axis: usize,
        /// The starts given for that axis.
        steps: Vec<usize>,
        /// The padded size along that axis.
        size: usize,
        /// The patch size along that axis.
        patch: usize,
    },
    /// A mirror index outside m0..m7.
    #[error("mirror index {index} is not in 0..=7")]
    InvalidMirror {
        /// The index given.
        index: usize,
    },
    /// A mirror axis that is not a spatial axis.
    #[error("mirror axis {axis} is not a spatial axis (0, 1 or 2)")]
    InvalidMirrorAxis {
        /// The axis given.
        axis: usize,
    },
    /// A tile index outside the grid.
    #[error("tile index {index} is out of range: the grid has {count} tiles")]
    TileOutOfRange {
        /// The index given.
        index: usize,
        /// The number of tiles in the grid.
        count: usize,
    },
    /// A mirror that the aggregator's mirror set does not use.
    #[error("mirror m{mirror} is not in the mirror set {set}")]
    MirrorNotInSet {
        /// The mirror index.
        mirror: usize,
        /// The aggregator's set, e.g. `{m0,m1}`.
        set: String,
    },
    /// The same tile and mirror arrived twice.
    #[error("tile {tile} mirror m{mirror} was already added")]
    Duplicate {
        /// The tile index.
        tile: usize,
        /// The mirror index.
        mirror: usize,
    },
    /// An array or buffer of the wrong shape or length.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// What the array is (for example `logits`).
        what: &'static str,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// `num_classes` or the channel count is zero.
    #[error("{what} must be at least 1")]
    ZeroCount {
        /// Which count.
        what: &'static str,
    },
    /// A volume-sized array that could not be allocated (the process's address-space limit, or more than
    /// the machine has): the case fails with this instead of aborting the process.
    #[error(
        "out of memory: cannot allocate {} ({bytes} bytes) for {what}",
        nnu_alloc::human_bytes(*bytes)
    )]
    OutOfMemory {
        /// The array, e.g. `the class sums of the sliding window`.
        what: &'static str,
        /// Its size in bytes (saturating at `u64::MAX`).
        bytes: u64,
    },
    /// `finish` was called before every tile and mirror had arrived.
    #[error(
        "{count} tile results are incomplete; first: tile {tile} is missing mirrors {mirrors}"
    )]
    Incomplete {
        /// Number of incomplete tiles.
        count: usize,
        /// Index of the first incomplete tile.
        tile: usize,
        /// The mirrors that tile is missing.
        mirrors: String,
    },
}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, TilingError>;

impl From<nnu_alloc::AllocError> for TilingError {
    fn from(e: nnu_alloc::AllocError) -> Self {
        TilingError::OutOfMemory {
            what: e.what,
            bytes: e.bytes,
        }
    }
}

//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a NIfTI volume.
///
/// Every variant names the file it is about, so a tool can print `error: FILE: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The operating system refused to open, read, write or rename the file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is shorter than its header says (truncated download, partial copy).
    #[error("{}: truncated: the header needs {needed} bytes of image data, the file holds {available}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header requires (offset plus voxel data).
        needed: u64,
        /// Bytes actually present (after decompression).
        available: u64,
    },
    /// The gzip stream is damaged (bad CRC, invalid deflate data, garbage inside the stream).
    #[error("{}: corrupt gzip stream: {reason}", path.display())]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },
    /// The header is neither NIfTI-1 (`n+1`) nor NIfTI-2 (`n+2`) single-file data.
    #[error("{}: not a single-file NIfTI volume (magic {magic:?}, sizeof_hdr {sizeof_hdr})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four (NIfTI-1) or eight (NIfTI-2) magic bytes found.
        magic: Vec<u8>,
        /// The `sizeof_hdr` field as read in little-endian order.
        sizeof_hdr: i32,
    },
    /// The header claims more voxel data than the file could possibly contain; refusing to allocate.
    #[error(
        "{}: header claims {claimed} bytes of image data but a {file_len}-byte file can hold at most {max} (lying header?)",
        path.display()
    )]
    ImplausibleSize {
        /// The file.
        path: PathBuf,
        /// Bytes the header dimensions require.
        claimed: u64,
        /// Size of the file on disk.
        file_len: u64,
        /// The most the file can decompress to (deflate's ratio bound) or hold.
        max: u64,
    },
    /// Dimensions this crate does not handle: `dim[0]` not 3 or 4 (after dropping trailing axes of size 1),
    /// a non-positive size, or more than one channel where one volume was asked for.
    #[error("{}: unsupported dimensions {dims:?}: {reason}", path.display())]
    UnsupportedDims {
        /// The file.
        path: PathBuf,
        /// `dim[0..=7]` as stored.
        dims: Vec<i64>,
        /// Why they are rejected.
        reason: &'static str,
    },
    /// A NIfTI datatype code this crate does not decode (complex, RGB, float128, ...).
    #[error("{}: unsupported NIfTI datatype code {code}", path.display())]
    UnsupportedDatatype {
        /// The file.
        path: PathBuf,
        /// The `datatype` header field.
        code: i16,
    },
    /// Neither the sform nor the qform gives an orthonormal direction (ITK refuses such files too).
    #[error("{}: {reason}", path.display())]
    BadGeometry {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header's transforms.
        reason: String,
    },
    /// A voxel value cannot be represented exactly in the requested integer type (e.g. a label of 300
    /// read as `u8`, or a fractional label).
    #[error("{}: voxel value {value} does not fit the requested {target} voxel type", path.display())]
    ValueOutOfRange {
        /// The file.
        path: PathBuf,
        /// The first offending value (after `scl_slope`/`scl_inter`).
        value: f64,
        /// The requested type.
        target: &'static str,
    },
    /// The volume or geometry handed to a writer cannot be stored (size over NIfTI-1's 32767 limit,
    /// non-positive spacing, a singular direction matrix, a bad file name).
    #[error("{}: cannot write: {reason}", path.display())]
    InvalidWrite {
        /// The destination file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Memory for the decoded volume could not be reserved.
    #[error("{}: cannot allocate {bytes} bytes for the volume", path.display())]
    OutOfMemory {
        /// The file.
        path: PathBuf,
        /// The requested size.
        bytes: u64,
    },
}

impl VolumeError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        VolumeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            VolumeError::Io { path, .. }
            | VolumeError::Truncated { path, .. }
            | VolumeError::CorruptGzip { path, .. }
            | VolumeError::BadMagic { path, .. }
            | VolumeError::ImplausibleSize { path, .. }
            | VolumeError::UnsupportedDims { path, .. }
            | VolumeError::UnsupportedDatatype { path, .. }
            | VolumeError::BadGeometry { path, .. }
            | VolumeError::ValueOutOfRange { path, .. }
            | VolumeError::InvalidWrite { path, .. }
            | VolumeError::OutOfMemory { path, .. } => path,
        }
    }
}

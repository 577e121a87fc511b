//! NIfTI volume IO with SimpleITK's geometry: arrays in (z, y, x) order, spacing/origin/direction in
//! ITK's (x, y, z) LPS convention.
//!
//! This is the `SimpleITK.ReadImage` / `WriteImage` step of nnU-Net v1 (`nnunet` 1.7.1 reads every case
//! with `sitk.ReadImage` and `sitk.GetArrayFromImage`, and writes segmentations with `sitk.WriteImage`).
//!
//! - [`read_volume`] / [`read_volume_channels`] / [`read_volume_as`] / [`read_labels`] read `.nii` and
//!   `.nii.gz` (NIfTI-1, and NIfTI-2 which SimpleITK cannot read), datatypes u8, i8, i16, u16, i32, u32,
//!   i64, u64, f32, f64, either byte order, applying `scl_slope`/`scl_inter` as ITK does (a slope of 0 counts
//!   as 1 and the intercept still applies).
//! - The [`Geometry`] is what SimpleITK 2.5 (ITK 5.4) reports, including its choice between qform and sform;
//!   the rules are written out in [`geometry`] and checked against SimpleITK goldens.
//! - [`write_volume`] writes u8/i8/i16/u16/i32/u32/f32/f64 volumes atomically with both qform and sform set
//!   (code 1), as ITK's writer does, so SimpleITK and nibabel read the geometry back.
//! - Speed: the file is memory-mapped and inflated with zlib-rs a few hundred KiB at a time, each piece
//!   converted at once into the output array (no intermediate copy of the raw voxels). Writing compresses
//!   4 MiB gzip members in parallel, each tagged with its sizes, so files written that way are inflated in
//!   parallel when read back; other gzip files are inflated on one thread while a second converts. On a
//!   512x512x480 int16 CT that is 2-6 times faster than SimpleITK 2.5 (numbers in
//!   `benches/benches/nifti.rs`). Output is identical whatever the thread count.
//! - Bad input gives a [`VolumeError`] naming the file; sizes claimed by a header are checked against the
//!   file's length before anything is allocated. The `*_from_bytes` readers take a file already in memory
//!   (they are also the fuzzing entry points, see `docs/fuzzing.md`).
//!
//! ```
//! use ndarray::Array3;
//! use nnu_volume::{read_volume, write_volume, Geometry, WriteOptions};
//!
//! # fn main() -> Result<(), nnu_volume::VolumeError> {
//! let dir = std::env::temp_dir().join(format!("nnu-volume-doctest-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("case.nii.gz");
//! let geometry = Geometry { spacing: [0.8, 0.8, 5.0], origin: [10.0, -20.0, 30.0], ..Geometry::default() };
//! let ct = Array3::<i16>::from_shape_fn((4, 5, 6), |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 1000);
//! write_volume(&path, ct.view(), &geometry, &WriteOptions::default())?;
//!
//! let back = read_volume(&path)?;                      // f32, (z, y, x)
//! assert_eq!(back.data.dim(), (4, 5, 6));
//! assert_eq!(back.data[[3, 4, 5]], -655.0);
//! assert_eq!(back.geometry.spacing_zyx(), [5.0, 0.800000011920929, 0.800000011920929]); // f32 header fields
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! Deliberately not here: Analyze `.hdr/.img` pairs, NIfTI extensions (skipped on read, none written),
//! complex/RGB datatypes, 2-D and 5-D+ images, resampling or reorientation (the arrays stay in file
//! order, exactly as SimpleITK returns them), and writing NIfTI-2.

#![warn(missing_docs)]

mod decode;
mod error;
pub mod geometry;
mod gz;
mod header;
mod read;
mod voxel;
mod write;

pub use error::VolumeError;
pub use geometry::{Geometry, XformSource};
pub use header::DataType;
pub use read::{
    read_header, read_header_from_bytes, read_labels, read_volume, read_volume_as,
    read_volume_as_from_bytes, read_volume_channels, read_volume_channels_from_bytes,
    read_volume_from_bytes, HeaderInfo,
};
pub use voxel::Voxel;
pub use write::{stage_volume, write_volume, WriteOptions};

/// A 3-D volume and its geometry.
///
/// `data` is indexed `[z, y, x]` (SimpleITK's numpy order: slice, row, column), C-contiguous when it comes
/// from a reader; `geometry` is in ITK's (x, y, z) order, so `geometry.spacing_zyx()` matches `data`'s axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume<T> {
    /// Voxels, shape (z, y, x).
    pub data: ndarray::Array3<T>,
    /// Spacing, origin, direction as SimpleITK reports them.
    pub geometry: Geometry,
}

impl<T> Volume<T> {
    /// Array shape (z, y, x).
    pub fn shape_zyx(&self) -> [usize; 3] {
        let (z, y, x) = self.data.dim();
        [z, y, x]
    }
}

impl<T: Voxel> Volume<T> {
    /// Writes the volume with its own geometry; see [`write_volume`].
    pub fn write(&self, path: &std::path::Path, opts: &WriteOptions) -> Result<(), VolumeError> {
        write_volume(path, self.data.view(), &self.geometry, opts)
    }
}

//! Writing volumes.

// Matrix code reads best in index notation.
#![allow(clippy::needless_range_loop)]

use std::io::Write;
use std::path::Path;

use ndarray::ArrayView3;
use rayon::prelude::*;

use crate::error::VolumeError;
use crate::geometry::{rotation_to_quatern, Geometry};
use crate::gz;
use crate::header::{nifti1_header_bytes, WriteHeader};
use crate::voxel::Voxel;

/// Options for [`write_volume`]. `WriteOptions::default()` is gzip level 1 when the name ends in `.gz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// zlib compression level 0..=9 for `.nii.gz` (ignored for `.nii`). Default 1: CT volumes and label
    /// maps compress almost as well as at higher levels, several times faster (numbers in
    /// `benches/benches/nifti.rs`).
    pub compression_level: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression_level: 1,
        }
    }
}

impl WriteOptions {
    /// Sets the gzip level (clamped to 0..=9).
    pub fn compression_level(mut self, level: u32) -> Self {
        self.compression_level = level.min(9);
        self
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> VolumeError {
    VolumeError::InvalidWrite {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Header fields for `geometry`, as ITK's `SetNIfTIOrientationFromImageIO` fills them: the sform is the
/// direction scaled by spacing in RAS, the qform its quaternion, both with code 1.
fn header_for(
    path: &Path,
    shape_zyx: [usize; 3],
    geometry: &Geometry,
    datatype: crate::DataType,
) -> Result<WriteHeader, VolumeError> {
    for (i, &n) in shape_zyx.iter().enumerate() {
        if n == 0 || n > i16::MAX as usize {
            return Err(invalid(
                path,
                format!("axis {i} has size {n}; NIfTI-1 allows 1..=32767"),
            ));
        }
    }
    let g = geometry;
    if g.spacing.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
        return Err(invalid(
            path,
            format!("spacing {:?} must be positive and finite", g.spacing),
        ));
    }
    if g.origin
        .iter()
        .chain(g.direction.iter())
        .any(|v| !v.is_finite())
    {
        return Err(invalid(path, "origin and direction must be finite"));
    }
    // RAS direction columns, normalised.
    let mut r = [[0.0f64; 3]; 3];
    for c in 0..3 {
        let col = [-g.direction[c], -g.direction[3 + c], g.direction[6 + c]];
        let n = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        if n.is_nan() || n <= 1e-6 {
            return Err(invalid(path, format!("direction column {c} is zero")));
        }
        for row in 0..3 {
            r[row][c] = col[row] / n;
        }
    }
    let (quatern, qfac) = rotation_to_quatern(r);
    let origin_ras = [-g.origin[0], -g.origin[1], g.origin[2]];
    let mut srow = [[0.0; 4]; 3];
    for row in 0..3 {
        for c in 0..3 {
            srow[row][c] = r[row][c] * g.spacing[c];
        }
        srow[row][3] = origin_ras[row];
    }
    Ok(WriteHeader {
        dims_xyz: [shape_zyx[2], shape_zyx[1], shape_zyx[0]],
        datatype,
        pixdim: [qfac, g.spacing[0], g.spacing[1], g.spacing[2]],
        quatern,
        qoffset: origin_ras,
        srow,
        descrip: b"nnu-volume",
    })
}

/// Voxel bytes in file order (x fastest), little-endian. Borrowed when the view is C-contiguous on a
/// little-endian machine.
fn voxel_bytes<'a, T: Voxel>(data: &'a ArrayView3<'a, T>) -> std::borrow::Cow<'a, [u8]> {
    let size = T::DATATYPE.size();
    if cfg!(target_endian = "little") {
        if let Some(s) = data.as_slice() {
            // SAFETY: every `Voxel` is a primitive integer or float without padding, so its memory is
            // `size_of::<T>() * len` initialised bytes, and a `u8` view of it has no alignment needs.
            let bytes = unsafe {
                std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s))
            };
            return std::borrow::Cow::Borrowed(bytes);
        }
    }
    let std = data.as_standard_layout();
    let src = std.as_slice().unwrap_or(&[]);
    let mut out = vec![0u8; src.len() * size];
    out.par_chunks_mut(size * 4096)
        .zip(src.par_chunks(4096))
        .for_each(|(dst, s)| {
            for (d, v) in dst.chunks_exact_mut(size).zip(s) {
                v.write_le(d);
            }
        });
    std::borrow::Cow::Owned(out)
}

/// Writes `data` ((z, y, x) order) as a NIfTI-1 file with `geometry`, so that SimpleITK and nibabel read
/// back the same spacing, origin and direction (up to `f32` rounding of the header fields).
///
/// `.nii.gz` (by the file name) is gzip-compressed on the rayon pool; any other name is written
/// uncompressed. The file appears atomically and durably ([`nnu_fsio::write_atomic_with`]): the data
/// goes to a temporary file in the same folder, which is `fsync`ed and renamed over `path`.
pub fn write_volume<T: Voxel>(
    path: &Path,
    data: ArrayView3<'_, T>,
    geometry: &Geometry,
    opts: &WriteOptions,
) -> Result<(), VolumeError> {
    let mut batch = nnu_fsio::Batch::new();
    stage_volume(&mut batch, path, data, geometry, opts)?;
    batch.commit().map_err(fsio_err)
}

/// Like [`write_volume`], but stages the file in `batch`: it appears at `path` only when the batch is
/// committed, together with the batch's other files.
pub fn stage_volume<T: Voxel>(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    data: ArrayView3<'_, T>,
    geometry: &Geometry,
    opts: &WriteOptions,
) -> Result<(), VolumeError> {
    let shape = data.shape();
    let header = nifti1_header_bytes(&header_for(
        path,
        [shape[0], shape[1], shape[2]],
        geometry,
        T::DATATYPE,
    )?);
    let body = voxel_bytes(&data);
    let gzip = path.to_string_lossy().ends_with(".gz");
    batch
        .stage_with(path, |f| {
            if gzip {
                let members = gz::compress_parallel(&[&header, &body], opts.compression_level);
                for m in &members {
                    f.write_all(m)?;
                }
            } else {
                f.write_all(&header)?;
                f.write_all(&body)?;
            }
            Ok(())
        })
        .map_err(fsio_err)
}

fn fsio_err(e: nnu_fsio::FsioError) -> VolumeError {
    let (path, source) = e.into_parts();
    VolumeError::io(&path, source)
}

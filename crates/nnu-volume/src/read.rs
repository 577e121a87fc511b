//! Reading volumes.

use std::path::{Path, PathBuf};

use ndarray::Array3;
use rayon::prelude::*;

use crate::error::VolumeError;
use crate::geometry::{itk_geometry, Geometry, XformSource};
use crate::gz;
use crate::header::{parse_header, DataType, RawHeader, MAX_HEADER_BYTES};
use crate::voxel::{with_source_type, Source, Voxel};
use crate::Volume;

/// What [`read_header`] finds in a file without decoding its voxels.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderInfo {
    /// The file.
    pub path: PathBuf,
    /// 1 (NIfTI-1) or 2 (NIfTI-2).
    pub version: u8,
    /// Array shape in (z, y, x) order.
    pub shape_zyx: [usize; 3],
    /// Number of channels (the 4th NIfTI axis; 1 for 3-D files).
    pub channels: usize,
    /// On-disk voxel type.
    pub datatype: DataType,
    /// Whether `scl_slope`/`scl_inter` change the values (ITK's `MustRescale`).
    pub scaled: bool,
    /// `scl_slope` as ITK uses it (0 replaced by 1).
    pub scl_slope: f64,
    /// `scl_inter`.
    pub scl_inter: f64,
    /// Geometry as SimpleITK reports it.
    pub geometry: Geometry,
    /// Which header transform the geometry came from.
    pub xform: XformSource,
    /// Whether the file is gzip-compressed.
    pub gzipped: bool,
}

impl HeaderInfo {
    /// Voxels per channel.
    pub fn voxels(&self) -> usize {
        self.shape_zyx.iter().product()
    }
}

/// A parsed header plus what the decoder needs.
struct Parsed {
    info: HeaderInfo,
    big_endian: bool,
    offset: usize,
    data_bytes: usize,
}

fn analyse(path: &Path, raw: &RawHeader, gzipped: bool) -> Result<Parsed, VolumeError> {
    let dims_err = |reason: &'static str| VolumeError::UnsupportedDims {
        path: path.to_path_buf(),
        dims: raw.dim.to_vec(),
        reason,
    };
    let ndim = raw.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(dims_err("dim[0] must be between 1 and 7"));
    }
    let ndim = ndim as usize;
    if raw.dim[1..=ndim].iter().any(|&d| d <= 0) {
        return Err(dims_err("every size up to dim[0] must be positive"));
    }
    // ITK drops trailing axes of size 1 above the third (`realdim`).
    let mut real = ndim;
    while real > 3 && raw.dim[real] == 1 {
        real -= 1;
    }
    if real < 3 {
        return Err(dims_err(
            "only 3-D volumes (dim[0] = 3, or 4 with channels) are supported",
        ));
    }
    if real > 4 {
        return Err(dims_err("5-D and higher volumes are not supported"));
    }
    let channels = if real == 4 { raw.dim[4] as usize } else { 1 };
    let datatype = DataType::from_code(raw.datatype).ok_or(VolumeError::UnsupportedDatatype {
        path: path.to_path_buf(),
        code: raw.datatype,
    })?;
    let too_big = || dims_err("the volume size overflows");
    let nx = usize::try_from(raw.dim[1]).map_err(|_| too_big())?;
    let ny = usize::try_from(raw.dim[2]).map_err(|_| too_big())?;
    let nz = usize::try_from(raw.dim[3]).map_err(|_| too_big())?;
    let data_bytes = nx
        .checked_mul(ny)
        .and_then(|v| v.checked_mul(nz))
        .and_then(|v| v.checked_mul(channels))
        .and_then(|v| v.checked_mul(datatype.size()))
        .filter(|&v| v < (1usize << 48))
        .ok_or_else(too_big)?;
    let offset = raw.data_offset().ok_or_else(|| VolumeError::BadGeometry {
        path: path.to_path_buf(),
        reason: format!("invalid vox_offset {}", raw.vox_offset),
    })?;
    let (geometry, xform) = itk_geometry(raw).map_err(|reason| VolumeError::BadGeometry {
        path: path.to_path_buf(),
        reason,
    })?;
    // ITK: a slope of (almost) 0 means 1; rescale when slope != 1 or inter != 0.
    let mut slope = if raw.scl_slope.is_finite() {
        raw.scl_slope
    } else {
        0.0
    };
    if slope.abs() < f64::EPSILON {
        slope = 1.0;
    }
    let inter = if raw.scl_inter.is_finite() {
        raw.scl_inter
    } else {
        0.0
    };
    let scaled = (slope - 1.0).abs() > f64::EPSILON || inter.abs() > f64::EPSILON;
    Ok(Parsed {
        info: HeaderInfo {
            path: path.to_path_buf(),
            version: raw.version,
            shape_zyx: [nz, ny, nx],
            channels,
            datatype,
            scaled,
            scl_slope: slope,
            scl_inter: inter,
            geometry,
            xform,
            gzipped,
        },
        big_endian: raw.big_endian,
        offset,
        data_bytes,
    })
}

/// Reads and checks the header only (for `.nii.gz` only the first bytes are inflated).
///
/// Errors as [`read_volume`] would for the header: bad magic, unsupported dims or datatype, geometry ITK
/// rejects. The voxel data is not checked.
pub fn read_header(path: &Path) -> Result<HeaderInfo, VolumeError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let mut head = Vec::with_capacity(1 << 16);
    (&mut f)
        .take(1 << 16)
        .read_to_end(&mut head)
        .map_err(|e| VolumeError::io(path, e))?;
    let gzipped = gz::is_gzip(&head);
    let bytes = if gzipped {
        // A header is well inside the first 64 KiB of compressed data unless the header itself is
        // pathological; inflate the prefix from the whole file if needed.
        match gz::inflate_prefix(path, &head, MAX_HEADER_BYTES) {
            Ok(b) if b.len() >= MAX_HEADER_BYTES => b,
            _ => {
                let all = std::fs::read(path).map_err(|e| VolumeError::io(path, e))?;
                gz::inflate_prefix(path, &all, MAX_HEADER_BYTES)?
            }
        }
    } else {
        head
    };
    let raw = parse_header(path, &bytes)?;
    Ok(analyse(path, &raw, gzipped)?.info)
}

/// The whole file, inflated if gzip, plus its parsed header. Sizes are checked against the file length
/// before anything proportional to the header's dimensions is allocated.
fn load(path: &Path) -> Result<(Parsed, Vec<u8>), VolumeError> {
    let file = std::fs::read(path).map_err(|e| VolumeError::io(path, e))?;
    load_bytes(path, file)
}

/// [`load`] for a file already in memory.
fn load_bytes(path: &Path, file: Vec<u8>) -> Result<(Parsed, Vec<u8>), VolumeError> {
    let file_len = file.len() as u64;
    if gz::is_gzip(&file) {
        let head = gz::inflate_prefix(path, &file, MAX_HEADER_BYTES)?;
        let raw = parse_header(path, &head)?;
        let parsed = analyse(path, &raw, true)?;
        let needed = parsed.offset as u64 + parsed.data_bytes as u64;
        let max = gz::max_inflated(file_len);
        if needed > max {
            return Err(VolumeError::ImplausibleSize {
                path: path.to_path_buf(),
                claimed: parsed.data_bytes as u64,
                file_len,
                max,
            });
        }
        let bytes = gz::inflate_all(path, &file, needed as usize)?;
        if (bytes.len() as u64) < needed {
            return Err(VolumeError::Truncated {
                path: path.to_path_buf(),
                needed,
                available: bytes.len() as u64,
            });
        }
        Ok((parsed, bytes))
    } else {
        let raw = parse_header(path, &file)?;
        let parsed = analyse(path, &raw, false)?;
        let needed = parsed.offset as u64 + parsed.data_bytes as u64;
        if needed > file_len {
            return Err(VolumeError::Truncated {
                path: path.to_path_buf(),
                needed,
                available: file_len,
            });
        }
        Ok((parsed, file))
    }
}

/// Decodes `n` voxels of type `S` starting at `bytes[0]` into `out` with `f`, in parallel.
fn decode<S: Source, T: Send>(
    bytes: &[u8],
    big_endian: bool,
    out: &mut [T],
    f: impl Fn(S) -> T + Sync,
) {
    const CHUNK: usize = 1 << 16;
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
        let src = &bytes[i * CHUNK * S::SIZE..];
        for (k, d) in dst.iter_mut().enumerate() {
            *d = f(S::read(&src[k * S::SIZE..], big_endian));
        }
    });
}

fn alloc<T: Clone + Default>(path: &Path, n: usize) -> Result<Vec<T>, VolumeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| VolumeError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: (n * std::mem::size_of::<T>()) as u64,
        })?;
    v.resize(n, T::default());
    Ok(v)
}

/// Channel `c` as `f32`, with ITK's rescaling: `(double)v * slope + inter`, then cast to `float`.
fn channel_f32(path: &Path, p: &Parsed, bytes: &[u8], c: usize) -> Result<Vec<f32>, VolumeError> {
    let n = p.info.voxels();
    let start = p.offset + c * n * p.info.datatype.size();
    let mut out = alloc::<f32>(path, n)?;
    let (slope, inter, be) = (p.info.scl_slope, p.info.scl_inter, p.big_endian);
    let src = &bytes[start..];
    with_source_type!(p.info.datatype, S, {
        if p.info.scaled {
            decode::<S, f32>(src, be, &mut out, |v| {
                (Source::to_f64(v) * slope + inter) as f32
            });
        } else {
            decode::<S, f32>(src, be, &mut out, Source::to_f32);
        }
    });
    Ok(out)
}

fn channel_exact<T: Voxel>(
    path: &Path,
    p: &Parsed,
    bytes: &[u8],
    c: usize,
) -> Result<Vec<T>, VolumeError> {
    let n = p.info.voxels();
    let start = p.offset + c * n * p.info.datatype.size();
    let src = &bytes[start..];
    let (slope, inter, be) = (p.info.scl_slope, p.info.scl_inter, p.big_endian);
    // Fast path: same type, no scaling: a straight (byte-order aware) copy.
    if T::DATATYPE == p.info.datatype && !p.info.scaled {
        let mut v = alloc::<T>(path, n)?;
        decode::<T, T>(src, be, &mut v, |x| x);
        return Ok(v);
    }
    let mut out = alloc::<Option<T>>(path, n)?;
    with_source_type!(p.info.datatype, S, {
        decode::<S, Option<T>>(src, be, &mut out, |v| {
            T::from_f64_exact(Source::to_f64(v) * slope + inter)
        });
    });
    if let Some(i) = out.iter().position(|v| v.is_none()) {
        let value = with_source_type!(p.info.datatype, S, {
            Source::to_f64(<S as Source>::read(&src[i * <S as Source>::SIZE..], be)) * slope + inter
        });
        return Err(VolumeError::ValueOutOfRange {
            path: path.to_path_buf(),
            value,
            target: T::NAME,
        });
    }
    Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
}

fn to_volume<T>(path: &Path, p: &Parsed, data: Vec<T>) -> Result<Volume<T>, VolumeError> {
    let shape = p.info.shape_zyx;
    let data = Array3::from_shape_vec((shape[0], shape[1], shape[2]), data).map_err(|_| {
        VolumeError::UnsupportedDims {
            path: path.to_path_buf(),
            dims: vec![shape[2] as i64, shape[1] as i64, shape[0] as i64],
            reason: "shape does not match the decoded data",
        }
    })?;
    Ok(Volume {
        data,
        geometry: p.info.geometry,
    })
}

fn single_channel(path: &Path, p: &Parsed) -> Result<(), VolumeError> {
    if p.info.channels != 1 {
        return Err(VolumeError::UnsupportedDims {
            path: path.to_path_buf(),
            dims: vec![
                4,
                p.info.shape_zyx[2] as i64,
                p.info.shape_zyx[1] as i64,
                p.info.shape_zyx[0] as i64,
                p.info.channels as i64,
            ],
            reason: "a 4-D file with several channels: use read_volume_channels",
        });
    }
    Ok(())
}

/// Reads a 3-D `.nii` / `.nii.gz` volume as `f32`, like `sitk.GetArrayFromImage(sitk.ReadImage(path))
/// .astype(np.float32)`: (z, y, x) order, `scl_slope`/`scl_inter` applied as ITK does, SimpleITK's geometry.
///
/// gzip is recognised by content, not by the file name. A 4-D file whose 4th axis has size 1 is read as
/// 3-D; with more channels use [`read_volume_channels`].
pub fn read_volume(path: &Path) -> Result<Volume<f32>, VolumeError> {
    let (p, bytes) = load(path)?;
    single_channel(path, &p)?;
    let data = channel_f32(path, &p, &bytes, 0)?;
    drop(bytes);
    to_volume(path, &p, data)
}

/// Reads a 3-D or 4-D volume as one `f32` volume per channel (the 4th NIfTI axis, as in the Medical
/// Segmentation Decathlon's multi-modal files). Every channel gets the file's 3-D geometry, which is what
/// SimpleITK reports for `image[:, :, :, c]`.
pub fn read_volume_channels(path: &Path) -> Result<Vec<Volume<f32>>, VolumeError> {
    let (p, bytes) = load(path)?;
    (0..p.info.channels)
        .map(|c| to_volume(path, &p, channel_f32(path, &p, &bytes, c)?))
        .collect()
}

/// Reads a 3-D volume into the voxel type `T`, failing with [`VolumeError::ValueOutOfRange`] when a value
/// (after scaling) is not exactly representable: for label maps, where a silent cast would corrupt labels.
pub fn read_volume_as<T: Voxel>(path: &Path) -> Result<Volume<T>, VolumeError> {
    let (p, bytes) = load(path)?;
    single_channel(path, &p)?;
    let data = channel_exact::<T>(path, &p, &bytes, 0)?;
    drop(bytes);
    to_volume(path, &p, data)
}

/// Reads an integer label map (any on-disk datatype whose values are integers in 0..=255) as `u8`.
/// Shorthand for [`read_volume_as::<u8>`](read_volume_as).
pub fn read_labels(path: &Path) -> Result<Volume<u8>, VolumeError> {
    read_volume_as::<u8>(path)
}

/// [`read_header`] for a file already in memory: `bytes` is the whole file or at least its start (plain, or
/// gzip recognised by content); `path` only names the data in errors.
///
/// Fuzzing entry point for the header parser and the geometry rules: any input returns `Ok` or `Err`.
pub fn read_header_from_bytes(path: &Path, bytes: &[u8]) -> Result<HeaderInfo, VolumeError> {
    let gzipped = gz::is_gzip(bytes);
    let raw = if gzipped {
        parse_header(path, &gz::inflate_prefix(path, bytes, MAX_HEADER_BYTES)?)?
    } else {
        parse_header(path, bytes)?
    };
    Ok(analyse(path, &raw, gzipped)?.info)
}

/// [`read_volume`] for a whole file already in memory (plain, or gzip recognised by content); `path` only
/// names the data in errors. The header's sizes are checked against `bytes` as for a file.
pub fn read_volume_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Volume<f32>, VolumeError> {
    let (p, bytes) = load_bytes(path, bytes)?;
    single_channel(path, &p)?;
    let data = channel_f32(path, &p, &bytes, 0)?;
    drop(bytes);
    to_volume(path, &p, data)
}

/// [`read_volume_channels`] for a whole file already in memory; see [`read_volume_from_bytes`].
pub fn read_volume_channels_from_bytes(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Vec<Volume<f32>>, VolumeError> {
    let (p, bytes) = load_bytes(path, bytes)?;
    (0..p.info.channels)
        .map(|c| to_volume(path, &p, channel_f32(path, &p, &bytes, c)?))
        .collect()
}

/// [`read_volume_as`] for a whole file already in memory; see [`read_volume_from_bytes`].
pub fn read_volume_as_from_bytes<T: Voxel>(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Volume<T>, VolumeError> {
    let (p, bytes) = load_bytes(path, bytes)?;
    single_channel(path, &p)?;
    let data = channel_exact::<T>(path, &p, &bytes, 0)?;
    drop(bytes);
    to_volume(path, &p, data)
}

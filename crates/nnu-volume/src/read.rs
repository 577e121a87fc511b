//! Reading volumes.

use std::path::{Path, PathBuf};

use ndarray::Array3;

use crate::decode::{decode_members, decode_plain, decode_stream, Conv, Convert, Span};
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

/// Parses the header of a whole file held in memory and checks the sizes it claims against the file's
/// length, before anything proportional to the header's dimensions is allocated.
fn prepare(path: &Path, file: &[u8]) -> Result<Parsed, VolumeError> {
    let file_len = file.len() as u64;
    let gzipped = gz::is_gzip(file);
    let parsed = if gzipped {
        let head = gz::inflate_prefix(path, file, MAX_HEADER_BYTES)?;
        analyse(path, &parse_header(path, &head)?, true)?
    } else {
        analyse(path, &parse_header(path, file)?, false)?
    };
    let needed = parsed.offset as u64 + parsed.data_bytes as u64;
    if gzipped {
        let max = gz::max_inflated(file_len);
        if needed > max {
            return Err(VolumeError::ImplausibleSize {
                path: path.to_path_buf(),
                claimed: parsed.data_bytes as u64,
                file_len,
                max,
            });
        }
    } else if needed > file_len {
        return Err(VolumeError::Truncated {
            path: path.to_path_buf(),
            needed,
            available: file_len,
        });
    }
    Ok(parsed)
}

/// Decodes the first `voxels` voxels of the file's data with `conv`: our own multi-member gzip files in
/// parallel, other gzip streams sequentially, uncompressed data in parallel chunks.
fn decode_file<C: Convert>(
    path: &Path,
    file: &[u8],
    p: &Parsed,
    voxels: usize,
    conv: &C,
    target: &'static str,
) -> Result<Vec<C::Out>, VolumeError> {
    let span = Span {
        start: p.offset as u64,
        voxels: voxels as u64,
    };
    if !p.info.gzipped {
        return decode_plain(path, file, span, conv, target);
    }
    let needed = span.start + span.voxels * conv.size() as u64;
    match gz::index_members(file) {
        Some(members) if gz::members_len(&members) >= needed => {
            match decode_members(path, file, &members, span, conv, target) {
                // The size fields are only a hint: when the members do not match them, the stream as
                // gzip defines it decides (and names the real damage, if any).
                Err(VolumeError::CorruptGzip { .. } | VolumeError::Truncated { .. }) => {
                    decode_stream(path, file, span, conv, target)
                }
                done => done,
            }
        }
        _ => decode_stream(path, file, span, conv, target),
    }
}

/// The first `voxels` voxels as `f32`, with ITK's rescaling: `(double)v * slope + inter`, then cast to
/// `float`.
fn decode_f32(
    path: &Path,
    file: &[u8],
    p: &Parsed,
    voxels: usize,
) -> Result<Vec<f32>, VolumeError> {
    let (slope, inter, be) = (p.info.scl_slope, p.info.scl_inter, p.big_endian);
    with_source_type!(p.info.datatype, S, {
        if p.info.scaled {
            let conv = Conv::new(be, |v: S| {
                Ok::<f32, f64>((Source::to_f64(v) * slope + inter) as f32)
            });
            decode_file(path, file, p, voxels, &conv, "f32")
        } else {
            let conv = Conv::new(be, |v: S| Ok::<f32, f64>(Source::to_f32(v)));
            decode_file(path, file, p, voxels, &conv, "f32")
        }
    })
}

/// Channel 0 as `T`, failing on the first value (after scaling) `T` cannot hold exactly.
fn decode_exact<T: Voxel>(path: &Path, file: &[u8], p: &Parsed) -> Result<Vec<T>, VolumeError> {
    let n = p.info.voxels();
    let (slope, inter, be) = (p.info.scl_slope, p.info.scl_inter, p.big_endian);
    if T::DATATYPE == p.info.datatype && !p.info.scaled {
        // Same type, no scaling: a (byte-order aware) copy.
        let conv = Conv::new(be, |v: T| Ok::<T, f64>(v));
        return decode_file(path, file, p, n, &conv, T::NAME);
    }
    with_source_type!(p.info.datatype, S, {
        let conv = Conv::new(be, |v: S| {
            let x = Source::to_f64(v) * slope + inter;
            T::from_f64_exact(x).ok_or(x)
        });
        decode_file(path, file, p, n, &conv, T::NAME)
    })
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
/// 3-D; with more channels use [`read_volume_channels`]. Files written by [`write_volume`](crate::write_volume)
/// are inflated in parallel; the voxels are converted as they are inflated, without an intermediate copy of
/// the raw data.
pub fn read_volume(path: &Path) -> Result<Volume<f32>, VolumeError> {
    read_f32(path, &map_file(path)?)
}

/// Reads a 3-D or 4-D volume as one `f32` volume per channel (the 4th NIfTI axis, as in the Medical
/// Segmentation Decathlon's multi-modal files). Every channel gets the file's 3-D geometry, which is what
/// SimpleITK reports for `image[:, :, :, c]`.
pub fn read_volume_channels(path: &Path) -> Result<Vec<Volume<f32>>, VolumeError> {
    read_channels(path, &map_file(path)?)
}

/// Reads a 3-D volume into the voxel type `T`, failing with [`VolumeError::ValueOutOfRange`] when a value
/// (after scaling) is not exactly representable: for label maps, where a silent cast would corrupt labels.
/// The error reports the first such value in file order.
pub fn read_volume_as<T: Voxel>(path: &Path) -> Result<Volume<T>, VolumeError> {
    read_as(path, &map_file(path)?)
}

/// A whole file in memory: mapped when the OS allows it, read otherwise.
enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }
}

/// Maps `path` read-only (an ordinary read for empty or unmappable files). Mapping a file that is in the
/// page cache costs almost nothing, where reading it costs a copy and a page fault per 4 KiB of a fresh
/// buffer (about 0.15 s for an 80 MB `.nii.gz` on the 2-core development VM, 0.5 s for 250 MB).
fn map_file(path: &Path) -> Result<FileBytes, VolumeError> {
    let f = std::fs::File::open(path).map_err(|e| VolumeError::io(path, e))?;
    let len = f.metadata().map_err(|e| VolumeError::io(path, e))?.len();
    if len > 0 && f.metadata().is_ok_and(|m| m.is_file()) {
        // SAFETY: the map is only read, through `&[u8]`. Like every reader that maps its input, this
        // relies on the file not being truncated or rewritten while it is read (another process doing so
        // could make the read see changing bytes or fail with SIGBUS); volumes are not written in place
        // while a pipeline reads them, and `write_volume` replaces files by renaming a new one over them,
        // which leaves an open map of the old file intact.
        if let Ok(m) = unsafe { memmap2::Mmap::map(&f) } {
            return Ok(FileBytes::Mapped(m));
        }
    }
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut &f, &mut v).map_err(|e| VolumeError::io(path, e))?;
    Ok(FileBytes::Read(v))
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
    read_f32(path, &bytes)
}

/// [`read_volume_channels`] for a whole file already in memory; see [`read_volume_from_bytes`].
pub fn read_volume_channels_from_bytes(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Vec<Volume<f32>>, VolumeError> {
    read_channels(path, &bytes)
}

/// [`read_volume_as`] for a whole file already in memory; see [`read_volume_from_bytes`].
pub fn read_volume_as_from_bytes<T: Voxel>(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Volume<T>, VolumeError> {
    read_as(path, &bytes)
}

fn read_f32(path: &Path, file: &[u8]) -> Result<Volume<f32>, VolumeError> {
    let p = prepare(path, file)?;
    single_channel(path, &p)?;
    let data = decode_f32(path, file, &p, p.info.voxels())?;
    to_volume(path, &p, data)
}

fn read_channels(path: &Path, file: &[u8]) -> Result<Vec<Volume<f32>>, VolumeError> {
    let p = prepare(path, file)?;
    let n = p.info.voxels();
    // `analyse` checked that voxels * channels * datatype size fits.
    let mut all = decode_f32(path, file, &p, n * p.info.channels)?;
    let mut rest = Vec::with_capacity(p.info.channels);
    for c in 1..p.info.channels {
        rest.push(to_volume(path, &p, all[c * n..(c + 1) * n].to_vec())?);
    }
    all.truncate(n);
    all.shrink_to_fit();
    let mut out = vec![to_volume(path, &p, all)?];
    out.extend(rest);
    Ok(out)
}

fn read_as<T: Voxel>(path: &Path, file: &[u8]) -> Result<Volume<T>, VolumeError> {
    let p = prepare(path, file)?;
    single_channel(path, &p)?;
    let data = decode_exact::<T>(path, file, &p)?;
    to_volume(path, &p, data)
}

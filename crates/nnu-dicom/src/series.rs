//! One series: its slices' headers checked and ordered into a geometry, then its pixels read.

use std::path::{Path, PathBuf};

use dicom_core::PrimitiveValue;
use dicom_object::DefaultDicomObject;
use dicom_object::Tag;
use ndarray::Array3;
use nnu_volume::{Geometry, Volume};

use crate::header::{
    check_transfer_syntax, is_big_endian, number, numbers, open_full, open_header, tag,
};
use crate::{DicomError, DicomSeries};

/// Largest relative deviation of one slice step from the mean step along the slice normal before a
/// series is refused as unevenly spaced (a missing slice is a deviation of 100 %).
pub const SPACING_TOLERANCE: f64 = 0.01;

/// Largest angle (radians) between the slice normal and the line through the first and last slice
/// positions before a series is refused as tilted (gantry tilt, or a sheared stack). 1e-3 rad is 0.06
/// degrees, far below clinical tilts (degrees) and far above the rounding of positions written with a
/// few decimals.
pub const TILT_TOLERANCE: f64 = 1e-3;

/// Largest difference of orientation cosines or pixel spacings between slices of one series.
const SAME_TOLERANCE: f64 = 1e-4;

/// What one slice's header says.
#[derive(Clone, Debug)]
struct Slice {
    path: PathBuf,
    rows: usize,
    columns: usize,
    /// PixelSpacing as stored: (row spacing = between rows = y, column spacing = between columns = x).
    pixel_spacing: [f64; 2],
    orientation: [f64; 6],
    position: [f64; 3],
    spacing_between_slices: Option<f64>,
}

/// A series' slices in order, with the geometry SimpleITK's `ImageSeriesReader` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesHeader {
    /// Array shape (z = slices, y = rows, x = columns).
    pub shape_zyx: [usize; 3],
    /// Spacing, origin, direction in ITK's (x, y, z) LPS convention (see [`nnu_volume::Geometry`]).
    pub geometry: Geometry,
    /// The files in slice order: file `k` is array slice `k`.
    pub files: Vec<PathBuf>,
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn refuse_file(series: &DicomSeries, path: &Path, reason: impl std::fmt::Display) -> DicomError {
    series.refuse(format!("file {}: {reason}", name(path)))
}

fn required(
    series: &DicomSeries,
    obj: &DefaultDicomObject,
    path: &Path,
    t: Tag,
    what: &str,
    count: usize,
) -> Result<Vec<f64>, DicomError> {
    match numbers(obj, t).map_err(|e| refuse_file(series, path, e))? {
        Some(v) if v.len() >= count && v.iter().all(|x| x.is_finite()) => Ok(v),
        Some(v) => Err(refuse_file(
            series,
            path,
            format!(
                "{what} ({:04X},{:04X}) has {} value(s) {v:?}, {count} finite ones needed",
                t.0,
                t.1,
                v.len()
            ),
        )),
        None => Err(refuse_file(
            series,
            path,
            format!(
                "no {what} ({:04X},{:04X}): its place in the volume is unknown",
                t.0, t.1
            ),
        )),
    }
}

fn slice_header(
    series: &DicomSeries,
    obj: &DefaultDicomObject,
    path: &Path,
) -> Result<Slice, DicomError> {
    check_transfer_syntax(obj).map_err(|e| refuse_file(series, path, e))?;
    let frames = number(obj, tag::NUMBER_OF_FRAMES).map_err(|e| refuse_file(series, path, e))?;
    if frames.is_some_and(|n| n > 1.0) {
        let per_frame = obj
            .element_opt(tag::PER_FRAME_FUNCTIONAL_GROUPS)
            .ok()
            .flatten()
            .is_some();
        return Err(refuse_file(
            series,
            path,
            if per_frame {
                format!(
                    "a multi-frame object ({} frames, enhanced, geometry in per-frame functional \
                     groups): not read yet; export the series as one file per slice",
                    frames.unwrap_or(0.0)
                )
            } else {
                format!(
                    "a multi-frame object ({} frames) without per-frame geometry: the position of \
                     each frame is unknown",
                    frames.unwrap_or(0.0)
                )
            },
        ));
    }
    let samples = number(obj, tag::SAMPLES_PER_PIXEL).map_err(|e| refuse_file(series, path, e))?;
    if samples.is_some_and(|s| s != 1.0) {
        return Err(refuse_file(
            series,
            path,
            format!(
                "{} samples per pixel (colour): only greyscale images are read",
                samples.unwrap_or(0.0)
            ),
        ));
    }
    let rows = required(series, obj, path, tag::ROWS, "Rows", 1)?[0];
    let columns = required(series, obj, path, tag::COLUMNS, "Columns", 1)?[0];
    if rows < 1.0 || columns < 1.0 {
        return Err(refuse_file(
            series,
            path,
            format!("{rows} rows x {columns} columns"),
        ));
    }
    let ps = required(series, obj, path, tag::PIXEL_SPACING, "PixelSpacing", 2)?;
    if ps[0] <= 0.0 || ps[1] <= 0.0 {
        return Err(refuse_file(
            series,
            path,
            format!("PixelSpacing {ps:?} is not positive"),
        ));
    }
    let o = required(
        series,
        obj,
        path,
        tag::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
        6,
    )?;
    let p = required(
        series,
        obj,
        path,
        tag::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
        3,
    )?;
    let sbs = number(obj, tag::SPACING_BETWEEN_SLICES).map_err(|e| refuse_file(series, path, e))?;
    Ok(Slice {
        path: path.to_path_buf(),
        rows: rows as usize,
        columns: columns as usize,
        pixel_spacing: [ps[0], ps[1]],
        orientation: [o[0], o[1], o[2], o[3], o[4], o[5]],
        position: [p[0], p[1], p[2]],
        spacing_between_slices: sbs,
    })
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn unit(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Reads every slice's header and checks that they form one regular volume; the slices are ordered as
/// SimpleITK orders them (`ImageSeriesReader` with the files of `GetGDCMSeriesFileNames`):
///
/// - slice order: ImagePositionPatient projected on the slice normal (the cross product of the
///   ImageOrientationPatient row and column cosines), ascending;
/// - spacing: x = PixelSpacing\[1\] (the spacing between columns), y = PixelSpacing\[0\] (between rows),
///   z = the distance between the first and last positions / (slices - 1), as ITK's `ImageSeriesReader`
///   computes it (SliceThickness is never used); a single slice takes SpacingBetweenSlices, else 1, as
///   GDCM does;
/// - origin: ImagePositionPatient of the first slice in that order;
/// - direction: the columns are the row cosine, the column cosine and their normalised cross product
///   (DICOM's patient coordinates are LPS, ITK's world, so no sign changes).
///
/// Refused ([`DicomError::Refused`], naming the folder, the series and the file where one is the cause):
/// compressed transfer syntaxes, multi-frame objects, colour images, missing or malformed Rows, Columns,
/// PixelSpacing, ImageOrientationPatient or ImagePositionPatient, slices of different sizes, orientations
/// or pixel spacings, two slices at one position, gantry tilt ([`TILT_TOLERANCE`]) and uneven slice
/// steps ([`SPACING_TOLERANCE`]).
pub fn read_series_header(series: &DicomSeries) -> Result<SeriesHeader, DicomError> {
    let mut slices = Vec::with_capacity(series.files.len());
    for f in &series.files {
        let obj = open_header(f)?;
        slices.push(slice_header(series, &obj, f)?);
    }
    header_of(series, slices)
}

fn header_of(series: &DicomSeries, mut slices: Vec<Slice>) -> Result<SeriesHeader, DicomError> {
    let Some(first) = slices.first().cloned() else {
        return Err(series.refuse("no files"));
    };
    for s in &slices[1..] {
        if (s.rows, s.columns) != (first.rows, first.columns) {
            return Err(series.refuse(format!(
                "mixed image sizes: {} is {} rows x {} columns, {} is {} x {}",
                name(&first.path),
                first.rows,
                first.columns,
                name(&s.path),
                s.rows,
                s.columns
            )));
        }
        if (0..6).any(|i| (s.orientation[i] - first.orientation[i]).abs() > SAME_TOLERANCE) {
            return Err(series.refuse(format!(
                "mixed orientations: {} has ImageOrientationPatient {:?}, {} has {:?}",
                name(&first.path),
                first.orientation,
                name(&s.path),
                s.orientation
            )));
        }
        if (0..2).any(|i| (s.pixel_spacing[i] - first.pixel_spacing[i]).abs() > SAME_TOLERANCE) {
            return Err(series.refuse(format!(
                "mixed pixel spacings: {} has PixelSpacing {:?}, {} has {:?}",
                name(&first.path),
                first.pixel_spacing,
                name(&s.path),
                s.pixel_spacing
            )));
        }
    }
    let o = first.orientation;
    let (row, col) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let normal = cross(row, col);
    if norm(row) < 0.5 || norm(col) < 0.5 || norm(normal) < 0.5 {
        return Err(series.refuse(format!(
            "ImageOrientationPatient {o:?} of {} is not two orthogonal unit vectors",
            name(&first.path)
        )));
    }
    let (row, col, normal) = (unit(row), unit(col), unit(normal));
    let along = |s: &Slice| dot(normal, s.position);
    slices.sort_by(|a, b| along(a).total_cmp(&along(b)));
    for w in slices.windows(2) {
        if along(&w[1]) - along(&w[0]) < 1e-6 {
            return Err(series.refuse(format!(
                "{} and {} are at the same position along the slice normal ({:.4} mm): two \
                 acquisitions, echoes or copies in one series",
                name(&w[0].path),
                name(&w[1].path),
                along(&w[0])
            )));
        }
    }
    let n = slices.len();
    let z_spacing = if n == 1 {
        first
            .spacing_between_slices
            .filter(|s| *s > 0.0)
            .unwrap_or(1.0)
    } else {
        let (p0, p1) = (slices[0].position, slices[n - 1].position);
        let span = [p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]];
        let length = norm(span);
        let cos = (dot(span, normal) / length).clamp(-1.0, 1.0);
        let angle = cos.acos();
        if angle > TILT_TOLERANCE {
            return Err(series.refuse(format!(
                "gantry tilt: the slice positions step {:.3} degrees off the slice normal (tolerance \
                 {:.3}); resample the series to an untilted grid first",
                angle.to_degrees(),
                TILT_TOLERANCE.to_degrees()
            )));
        }
        let mean = (along(&slices[n - 1]) - along(&slices[0])) / (n - 1) as f64;
        // The step farthest from the mean names the gap (or the overlap) in the message.
        let worst = slices
            .windows(2)
            .map(|w| (along(&w[1]) - along(&w[0]), w))
            .max_by(|a, b| (a.0 - mean).abs().total_cmp(&(b.0 - mean).abs()));
        if let Some((step, w)) = worst {
            if (step - mean).abs() > SPACING_TOLERANCE * mean {
                return Err(series.refuse(format!(
                    "uneven slice spacing: {} to {} is {step:.4} mm, the mean step is {mean:.4} mm \
                     (tolerance {} %): a missing slice, or a series of several stacks",
                    name(&w[0].path),
                    name(&w[1].path),
                    SPACING_TOLERANCE * 100.0
                )));
            }
        }
        length / (n - 1) as f64
    };
    let mut direction = [0.0; 9];
    for r in 0..3 {
        // `+ 0.0` turns the cross product's -0.0 into 0.0, as SimpleITK prints it.
        direction[3 * r] = row[r] + 0.0;
        direction[3 * r + 1] = col[r] + 0.0;
        direction[3 * r + 2] = normal[r] + 0.0;
    }
    let geometry = Geometry {
        spacing: [first.pixel_spacing[1], first.pixel_spacing[0], z_spacing],
        origin: slices[0].position,
        direction,
    };
    Ok(SeriesHeader {
        shape_zyx: [n, first.rows, first.columns],
        geometry,
        files: slices.into_iter().map(|s| s.path).collect(),
    })
}

/// Reads a series into a float volume: the geometry of [`read_series_header`], every slice's stored
/// values (BitsStored bits of BitsAllocated 8, 16 or 32, signed when PixelRepresentation is 1) times its
/// own RescaleSlope plus its RescaleIntercept (1 and 0 when absent), computed in `f64` and stored as
/// `f32`: what SimpleITK reads (`sitk.GetArrayFromImage(reader.Execute())`, int or float64) cast to
/// float32, as nnU-Net does.
pub fn read_series(series: &DicomSeries) -> Result<Volume<f32>, DicomError> {
    let header = read_series_header(series)?;
    let [nz, ny, nx] = header.shape_zyx;
    let mut data = Array3::<f32>::zeros((nz, ny, nx));
    for (z, f) in header.files.iter().enumerate() {
        let obj = open_full(f)?;
        let values = slice_values(series, &obj, f, ny * nx)?;
        for (dst, v) in data
            .slice_mut(ndarray::s![z, .., ..])
            .iter_mut()
            .zip(values)
        {
            *dst = v as f32;
        }
    }
    Ok(Volume {
        data,
        geometry: header.geometry,
    })
}

/// The rescaled values of one slice, row by row.
fn slice_values(
    series: &DicomSeries,
    obj: &DefaultDicomObject,
    path: &Path,
    count: usize,
) -> Result<Vec<f64>, DicomError> {
    let bad = |msg: String| refuse_file(series, path, msg);
    check_transfer_syntax(obj).map_err(bad)?;
    let get = |t: Tag| number(obj, t).map_err(bad);
    let allocated = get(tag::BITS_ALLOCATED)?.unwrap_or(16.0) as u32;
    let stored = get(tag::BITS_STORED)?.unwrap_or(allocated as f64) as u32;
    let signed = get(tag::PIXEL_REPRESENTATION)?.unwrap_or(0.0) == 1.0;
    let slope = get(tag::RESCALE_SLOPE)?.unwrap_or(1.0);
    let intercept = get(tag::RESCALE_INTERCEPT)?.unwrap_or(0.0);
    if !matches!(allocated, 8 | 16 | 32) || stored == 0 || stored > allocated {
        return Err(bad(format!(
            "BitsAllocated {allocated} / BitsStored {stored}: only 8, 16 or 32 bits are read"
        )));
    }
    let pixel = obj
        .element(tag::PIXEL_DATA)
        .map_err(|_| bad("no PixelData".into()))?;
    let prim = pixel
        .value()
        .primitive()
        .ok_or_else(|| bad("encapsulated (compressed) PixelData".into()))?;
    let raw = raw_words(prim, allocated, is_big_endian(obj));
    if raw.len() < count {
        return Err(bad(format!(
            "PixelData holds {} pixels, Rows x Columns is {count}",
            raw.len()
        )));
    }
    let mask = if stored == 32 {
        u32::MAX
    } else {
        (1u32 << stored) - 1
    };
    Ok(raw[..count]
        .iter()
        .map(|&r| {
            let v = r & mask;
            let value = if signed && stored < 32 && v & (1 << (stored - 1)) != 0 {
                i64::from(v) - (1i64 << stored)
            } else if signed && stored == 32 {
                i64::from(v as i32)
            } else {
                i64::from(v)
            };
            value as f64 * slope + intercept
        })
        .collect())
}

/// The pixel words of `prim` as unsigned integers of `allocated` bits, whichever way the parser held
/// them: bytes (OB, or OW left as bytes, in the file's byte order) or 16-/32-bit words (OW/OL, already in
/// host order).
fn raw_words(prim: &PrimitiveValue, allocated: u32, big_endian: bool) -> Vec<u32> {
    let width = (allocated / 8) as usize;
    let from_bytes = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(width)
            .map(|c| {
                c.iter().enumerate().fold(0u32, |v, (i, &byte)| {
                    let shift = if big_endian {
                        8 * (width - 1 - i)
                    } else {
                        8 * i
                    };
                    v | (u32::from(byte) << shift)
                })
            })
            .collect()
    };
    let words16 = |w: &mut dyn Iterator<Item = u16>| -> Vec<u32> {
        match allocated {
            16 => w.map(u32::from).collect(),
            // 8-bit pixels parsed as OW words (Implicit VR): two pixels per word, the first in the low
            // byte, as they lie in the little-endian file.
            8 => w
                .flat_map(|v| [u32::from(v & 0xFF), u32::from(v >> 8)])
                .collect(),
            _ => {
                let v: Vec<u16> = w.collect();
                v.chunks_exact(2)
                    .map(|c| u32::from(c[0]) | (u32::from(c[1]) << 16))
                    .collect()
            }
        }
    };
    match prim {
        PrimitiveValue::U16(w) => words16(&mut w.iter().copied()),
        PrimitiveValue::I16(w) => words16(&mut w.iter().map(|&v| v as u16)),
        PrimitiveValue::U32(w) if allocated == 32 => w.to_vec(),
        PrimitiveValue::I32(w) if allocated == 32 => w.iter().map(|&v| v as u32).collect(),
        other => from_bytes(&other.to_bytes()),
    }
}

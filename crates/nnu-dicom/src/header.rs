//! Opening files with dicom-rs and reading the attributes the series reader needs.

use std::path::Path;

use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};

use crate::DicomError;

/// The attributes used here, by their DICOM tags.
pub(crate) mod tag {
    use dicom_object::Tag;
    pub const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
    pub const SPACING_BETWEEN_SLICES: Tag = Tag(0x0018, 0x0088);
    pub const SERIES_INSTANCE_UID: Tag = Tag(0x0020, 0x000E);
    pub const SERIES_NUMBER: Tag = Tag(0x0020, 0x0011);
    pub const IMAGE_POSITION_PATIENT: Tag = Tag(0x0020, 0x0032);
    pub const IMAGE_ORIENTATION_PATIENT: Tag = Tag(0x0020, 0x0037);
    pub const SAMPLES_PER_PIXEL: Tag = Tag(0x0028, 0x0002);
    pub const NUMBER_OF_FRAMES: Tag = Tag(0x0028, 0x0008);
    pub const ROWS: Tag = Tag(0x0028, 0x0010);
    pub const COLUMNS: Tag = Tag(0x0028, 0x0011);
    pub const PIXEL_SPACING: Tag = Tag(0x0028, 0x0030);
    pub const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
    pub const BITS_STORED: Tag = Tag(0x0028, 0x0101);
    pub const PIXEL_REPRESENTATION: Tag = Tag(0x0028, 0x0103);
    pub const RESCALE_INTERCEPT: Tag = Tag(0x0028, 0x1052);
    pub const RESCALE_SLOPE: Tag = Tag(0x0028, 0x1053);
    pub const PER_FRAME_FUNCTIONAL_GROUPS: Tag = Tag(0x5200, 0x9230);
    pub const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
}

/// The uncompressed transfer syntaxes read here: Implicit VR Little Endian, Explicit VR Little Endian,
/// Explicit VR Big Endian (retired, still met in old archives).
pub const UNCOMPRESSED_TRANSFER_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// Common names of the compressed transfer syntaxes met in practice, for the refusal message.
fn transfer_syntax_name(uid: &str) -> &'static str {
    match uid {
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless (Process 14)",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless (Process 14, SV1)",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 (Lossless Only)",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "High-Throughput JPEG 2000"
        }
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        _ => "not an uncompressed syntax",
    }
}

/// Opens `path` up to (not including) its pixel data: the header attributes only.
pub(crate) fn open_header(path: &Path) -> Result<DefaultDicomObject, DicomError> {
    OpenFileOptions::new()
        .read_until(tag::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| DicomError::Parse {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
}

/// Opens all of `path`, pixel data included.
pub(crate) fn open_full(path: &Path) -> Result<DefaultDicomObject, DicomError> {
    dicom_object::open_file(path).map_err(|e| DicomError::Parse {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// `Err(reason)` when the file's transfer syntax is not one of [`UNCOMPRESSED_TRANSFER_SYNTAXES`].
pub(crate) fn check_transfer_syntax(obj: &DefaultDicomObject) -> Result<(), String> {
    let uid = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    if UNCOMPRESSED_TRANSFER_SYNTAXES.contains(&uid) {
        Ok(())
    } else {
        Err(format!(
            "transfer syntax {uid} ({}) is not decoded here, only uncompressed ones (Implicit/Explicit VR \
             Little Endian, Explicit VR Big Endian); convert the series first (e.g. `gdcmconv --raw` or \
             dcmtk's `dcmdjpeg`)",
            transfer_syntax_name(uid)
        ))
    }
}

/// True when the file's transfer syntax is Explicit VR Big Endian.
pub(crate) fn is_big_endian(obj: &DefaultDicomObject) -> bool {
    obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']) == "1.2.840.10008.1.2.2"
}

/// The attribute as trimmed text; `None` when absent or empty.
pub(crate) fn text(obj: &DefaultDicomObject, t: Tag) -> Option<String> {
    let e = obj.element_opt(t).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// The attribute's numbers (DS, IS, US, ...): `Ok(None)` when absent or empty, `Err` when not numbers.
pub(crate) fn numbers(obj: &DefaultDicomObject, t: Tag) -> Result<Option<Vec<f64>>, String> {
    let Some(e) = obj.element_opt(t).ok().flatten() else {
        return Ok(None);
    };
    if e.value()
        .primitive()
        .is_some_and(|p| matches!(p, dicom_core::PrimitiveValue::Empty))
    {
        return Ok(None);
    }
    e.to_multi_float64()
        .map(Some)
        .map_err(|err| format!("({:04X},{:04X}) is not numeric: {err}", t.0, t.1))
}

/// One number: `Ok(None)` when absent, `Err` when not a number.
pub(crate) fn number(obj: &DefaultDicomObject, t: Tag) -> Result<Option<f64>, String> {
    Ok(numbers(obj, t)?.and_then(|v| v.first().copied()))
}

//! Finding DICOM files in a folder tree and grouping them by series.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::header::{open_header, tag, text};
use crate::DicomError;

/// True when `path` is a file that starts with the DICOM Part 10 preamble: 128 bytes, then `DICM`. The
/// extension does not matter (`.dcm`, none, anything).
pub fn is_dicom_file(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 132];
    f.read_exact(&mut head).is_ok() && &head[128..] == b"DICM"
}

/// The files of one series found in a folder tree, before any geometry is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DicomSeries {
    /// The folder that was searched (named in every error about the series).
    pub folder: PathBuf,
    /// SeriesInstanceUID (0020,000E).
    pub series_uid: String,
    /// PatientID (0010,0020) of the first file, when present and not empty.
    pub patient_id: Option<String>,
    /// SeriesNumber (0020,0011) of the first file, when present.
    pub series_number: Option<String>,
    /// The series' files, sorted by path (the slice order comes from [`crate::read_series_header`]).
    pub files: Vec<PathBuf>,
}

impl DicomSeries {
    /// A file-name-safe case name: `PATIENTID_sNUMBER_UID` (parts that are absent left out), every byte
    /// other than ASCII letters, digits, `.` and `-` replaced by `_`, the patient ID cut to 32 characters.
    /// The UID keeps its dots, so the name says which series it is.
    pub fn case_name(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.patient_id {
            parts.push(sanitize(p).chars().take(32).collect::<String>());
        }
        if let Some(n) = &self.series_number {
            parts.push(format!("s{}", sanitize(n)));
        }
        parts.push(sanitize(&self.series_uid));
        parts.join("_")
    }

    /// An error about this series.
    pub(crate) fn refuse(&self, reason: impl Into<String>) -> DicomError {
        DicomError::Refused {
            folder: self.folder.clone(),
            series_uid: self.series_uid.clone(),
            reason: reason.into(),
        }
    }
}

fn sanitize(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Every file under `dir` (recursively, not following links to folders), sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DicomError> {
    let io = |e| DicomError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let ty = entry.file_type().map_err(io)?;
        let path = entry.path();
        if ty.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// True when some file directly in `dir` or below it is a DICOM file ([`is_dicom_file`]); stops at the
/// first one.
pub fn contains_dicom(dir: &Path) -> Result<bool, DicomError> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    Ok(files.iter().any(|f| is_dicom_file(f)))
}

/// Finds the DICOM image series under `dir` (the folder and all its subfolders; links to folders are not
/// followed): every file with the `DICM` preamble is parsed up to its pixel data and grouped by
/// SeriesInstanceUID. Objects that are not images (no Rows (0028,0010): DICOMDIR, structured reports,
/// presentation states) are skipped. Series come back sorted by UID; files within one by path.
///
/// Errors: a folder that cannot be listed, a `DICM` file that cannot be parsed, an image without a
/// SeriesInstanceUID, or no DICOM image at all ([`DicomError::NoSeries`]).
pub fn find_series(dir: &Path) -> Result<Vec<DicomSeries>, DicomError> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut by_uid: BTreeMap<String, DicomSeries> = BTreeMap::new();
    for f in files.into_iter().filter(|f| is_dicom_file(f)) {
        let obj = open_header(&f)?;
        if obj.element_opt(tag::ROWS).ok().flatten().is_none() {
            continue;
        }
        let uid = text(&obj, tag::SERIES_INSTANCE_UID).ok_or_else(|| DicomError::Parse {
            path: f.clone(),
            msg: "no SeriesInstanceUID (0020,000E)".into(),
        })?;
        let series = by_uid.entry(uid.clone()).or_insert_with(|| DicomSeries {
            folder: dir.to_path_buf(),
            series_uid: uid,
            patient_id: text(&obj, tag::PATIENT_ID),
            series_number: text(&obj, tag::SERIES_NUMBER),
            files: Vec::new(),
        });
        series.files.push(f);
    }
    if by_uid.is_empty() {
        return Err(DicomError::NoSeries {
            path: dir.to_path_buf(),
        });
    }
    Ok(by_uid.into_values().collect())
}

/// The one series a folder stands for where a single image is wanted (a preview, a conversion): the only
/// series under `dir` ([`find_series`]), or, when there are several, the one whose
/// [`DicomSeries::case_name`] is `case_name` (the name `nnu-predict` gave its outputs, e.g. the stem of
/// `PATIENT_s3_1.2.840....nii.gz`).
///
/// Errors: those of [`find_series`], and [`DicomError::SeveralSeries`] (naming the folder and listing the
/// series) when several series are found and none has that name.
pub fn find_one_series(dir: &Path, case_name: Option<&str>) -> Result<DicomSeries, DicomError> {
    let mut series = find_series(dir)?;
    if series.len() == 1 {
        return Ok(series.remove(0));
    }
    if let Some(i) = case_name.and_then(|n| series.iter().position(|s| s.case_name() == n)) {
        return Ok(series.swap_remove(i));
    }
    let mut names: Vec<String> = series.iter().map(DicomSeries::case_name).collect();
    names.sort();
    Err(DicomError::SeveralSeries {
        path: dir.to_path_buf(),
        names,
    })
}

use std::path::PathBuf;

/// Everything that can go wrong while finding or reading a DICOM series; every variant names the file or
/// the series' folder and UID.
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    /// Listing a folder or reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file with the `DICM` preamble that dicom-rs cannot parse (truncated, damaged, not DICOM after all).
    #[error("{path}: not a readable DICOM file: {msg}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        msg: String,
    },
    /// A folder (tree) without any DICOM image file.
    #[error("{path}: no DICOM image files (files starting with the 128-byte preamble and `DICM`)")]
    NoSeries {
        /// The folder.
        path: PathBuf,
    },
    /// A folder that was to stand for one image holds several series and none was chosen
    /// ([`crate::find_one_series`]).
    #[error(
        "{path}: {} DICOM series ({}{}), one image is needed: give the folder of one series",
        names.len(),
        names.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        if names.len() > 5 { ", ..." } else { "" }
    )]
    SeveralSeries {
        /// The folder.
        path: PathBuf,
        /// The case names of its series ([`crate::DicomSeries::case_name`]), sorted.
        names: Vec<String>,
    },
    /// A series this crate does not read (compressed, tilted, unevenly spaced, multi-frame, mixed,
    /// missing geometry): `reason` says which and why, naming the file where one file is the cause.
    #[error("{folder}: series {series_uid}: {reason}")]
    Refused {
        /// The folder the series was found in.
        folder: PathBuf,
        /// Its SeriesInstanceUID.
        series_uid: String,
        /// What is not supported.
        reason: String,
    },
}

//! DICOM CT series input: a folder tree of DICOM files read into the same [`nnu_volume::Volume`] a NIfTI
//! file gives, with the geometry SimpleITK's `ImageSeriesReader` reports.
//!
//! nnU-Net users convert DICOM to NIfTI with SimpleITK (`ImageSeriesReader` over
//! `GetGDCMSeriesFileNames`) before predicting; this crate is that step, so that a series folder can be
//! predicted directly and its segmentation written as NIfTI in the series' geometry.
//!
//! - [`find_series`] walks a folder tree, keeps the files that start with the DICOM preamble (`DICM` after
//!   128 bytes; any extension or none) and groups them by SeriesInstanceUID; [`DicomSeries::case_name`]
//!   turns a series into a file-name-safe case name that carries the UID; [`find_one_series`] picks the
//!   series a folder stands for where one image is wanted (the only one, or the one of a given case name).
//! - [`read_series_header`] checks and orders the slices and gives the geometry without reading pixels;
//!   [`read_series`] reads the voxels too, RescaleSlope/RescaleIntercept applied, as `f32` in (z, y, x)
//!   order. The rules (slice order along the normal, spacing from the positions, never SliceThickness)
//!   are written out on [`read_series_header`] and checked against SimpleITK 2.5.7 by the goldens in
//!   `fixtures/dicom/`.
//! - What is not read is refused with a [`DicomError`] naming the folder, the series and the reason:
//!   compressed transfer syntaxes (the transfer syntax named), gantry tilt, uneven slice spacing,
//!   multi-frame objects, mixed sizes or orientations, missing position or orientation.
//!
//! ```
//! use std::path::Path;
//!
//! # fn main() -> Result<(), nnu_dicom::DicomError> {
//! let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dicom/axial");
//! let series = nnu_dicom::find_series(&folder)?;
//! assert_eq!(series.len(), 1);
//! assert_eq!(series[0].case_name(), "PHANTOM-A_s3_1.2.826.0.1.3680043.8.498.4242.3");
//!
//! let volume = nnu_dicom::read_series(&series[0])?;
//! assert_eq!(volume.data.dim(), (8, 20, 24)); // slices, rows, columns
//! assert_eq!(volume.geometry.spacing, [0.7, 0.9, 2.5]); // x, y, z in mm
//! assert_eq!(volume.geometry.origin, [-12.5, 30.25, -100.0]); // LPS, as SimpleITK reports it
//! # Ok(())
//! # }
//! ```
//!
//! Deliberately not here: decompression (JPEG, JPEG-LS, JPEG 2000, RLE, deflate: the dicom-rs codecs are
//! left out to keep the build small), enhanced multi-frame objects, colour images, DICOMDIR navigation,
//! writing DICOM (outputs stay NIfTI), and any de-identification or network (DIMSE, DICOMweb) access.

#![warn(missing_docs)]

mod error;
mod header;
mod scan;
mod series;

pub use error::DicomError;
pub use header::UNCOMPRESSED_TRANSFER_SYNTAXES;
pub use scan::{contains_dicom, find_one_series, find_series, is_dicom_file, DicomSeries};
pub use series::{
    read_series, read_series_header, SeriesHeader, SPACING_TOLERANCE, TILT_TOLERANCE,
};

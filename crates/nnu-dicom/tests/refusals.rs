//! Every series the reader refuses, each made from the `axial` phantom of `fixtures/dicom/` by editing its
//! files (dicom-rs writes them back), plus pydicom's real RLE-compressed file: the error must be
//! `Refused`, name the folder and the series, and say why.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::{open_file, DefaultDicomObject};
use nnu_dicom::{find_series, read_series, DicomError};

const IPP: Tag = Tag(0x0020, 0x0032);
const IOP: Tag = Tag(0x0020, 0x0037);
const ROWS: Tag = Tag(0x0028, 0x0010);
const FRAMES: Tag = Tag(0x0028, 0x0008);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dicom")
}

/// A copy of the axial phantom in a temporary folder, its files in SimpleITK's slice order.
fn axial_copy() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("axial");
    let series = find_series(&src).unwrap();
    let order = nnu_dicom::read_series_header(&series[0]).unwrap().files;
    let mut files = Vec::new();
    for f in order {
        let dst = dir.path().join(f.file_name().unwrap());
        std::fs::copy(&f, &dst).unwrap();
        files.push(dst);
    }
    (dir, files)
}

fn edit(path: &Path, f: impl FnOnce(&mut DefaultDicomObject)) {
    let mut obj = open_file(path).unwrap();
    f(&mut obj);
    obj.write_to_file(path).unwrap();
}

fn set_ds(obj: &mut DefaultDicomObject, tag: Tag, values: &[f64]) {
    let text = values
        .iter()
        .map(|v| format!("{v}"))
        .collect::<Vec<_>>()
        .join("\\");
    obj.put(DataElement::new(tag, VR::DS, PrimitiveValue::from(text)));
}

fn position(obj: &DefaultDicomObject) -> Vec<f64> {
    obj.element(IPP).unwrap().to_multi_float64().unwrap()
}

/// Reads the only series under `dir`; the refusal's reason, after checking that the message names the
/// folder and the series.
fn refusal(dir: &Path) -> String {
    let series = find_series(dir).unwrap();
    assert_eq!(series.len(), 1);
    let err = read_series(&series[0]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains(&series[0].series_uid), "{text}");
    match err {
        DicomError::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_unedited_copy_reads() {
    let (dir, _) = axial_copy();
    let series = find_series(dir.path()).unwrap();
    assert_eq!(read_series(&series[0]).unwrap().data.dim(), (8, 20, 24));
}

#[test]
fn compressed_transfer_syntax_is_named() {
    let reason = refusal(&fixtures().join("MR_small_RLE"));
    assert!(
        reason.contains("MR_small_RLE.dcm")
            && reason.contains("1.2.840.10008.1.2.5")
            && reason.contains("RLE Lossless"),
        "{reason}"
    );
}

#[test]
fn gantry_tilt() {
    let (dir, files) = axial_copy();
    for (k, f) in files.iter().enumerate() {
        // 0.5 mm along y per 2.5 mm step: an 11 degree tilt.
        edit(f, |o| {
            let p = position(o);
            set_ds(o, IPP, &[p[0], p[1] + 0.5 * k as f64, p[2]]);
        });
    }
    let reason = refusal(dir.path());
    assert!(
        reason.contains("gantry tilt") && reason.contains("11.3"),
        "{reason}"
    );
}

#[test]
fn a_missing_slice_is_uneven_spacing() {
    let (dir, files) = axial_copy();
    std::fs::remove_file(&files[3]).unwrap();
    let reason = refusal(dir.path());
    assert!(reason.contains("uneven slice spacing"), "{reason}");
    assert!(reason.contains("5.0000 mm"), "{reason}");
}

#[test]
fn slightly_uneven_spacing_within_tolerance_reads() {
    let (dir, files) = axial_copy();
    // One slice moved by 0.01 mm (0.4 % of 2.5 mm): read, spacing from the end positions as ITK.
    edit(&files[4], |o| {
        let p = position(o);
        set_ds(o, IPP, &[p[0], p[1], p[2] + 0.01]);
    });
    let series = find_series(dir.path()).unwrap();
    let v = read_series(&series[0]).unwrap();
    assert_eq!(v.geometry.spacing[2], 2.5);
}

#[test]
fn multi_frame_without_per_frame_geometry() {
    let (dir, files) = axial_copy();
    edit(&files[2], |o| {
        o.put(DataElement::new(FRAMES, VR::IS, PrimitiveValue::from("2")));
    });
    let reason = refusal(dir.path());
    assert!(
        reason.contains("multi-frame") && reason.contains("without per-frame geometry"),
        "{reason}"
    );
    assert!(
        reason.contains(files[2].file_name().unwrap().to_str().unwrap()),
        "{reason}"
    );
}

#[test]
fn mixed_sizes() {
    let (dir, files) = axial_copy();
    edit(&files[5], |o| {
        o.put(DataElement::new(ROWS, VR::US, PrimitiveValue::from(10u16)));
    });
    let reason = refusal(dir.path());
    assert!(
        reason.contains("mixed image sizes") && reason.contains("10 x 24"),
        "{reason}"
    );
}

#[test]
fn mixed_orientations() {
    let (dir, files) = axial_copy();
    edit(&files[6], |o| {
        set_ds(o, IOP, &[1.0, 0.0, 0.0, 0.0, 0.8, 0.6]);
    });
    let reason = refusal(dir.path());
    assert!(reason.contains("mixed orientations"), "{reason}");
}

#[test]
fn missing_position() {
    let (dir, files) = axial_copy();
    edit(&files[1], |o| {
        o.remove_element(IPP);
    });
    let reason = refusal(dir.path());
    assert!(
        reason.contains("no ImagePositionPatient (0020,0032)")
            && reason.contains(files[1].file_name().unwrap().to_str().unwrap()),
        "{reason}"
    );
}

#[test]
fn missing_orientation() {
    let (dir, files) = axial_copy();
    edit(&files[0], |o| {
        o.remove_element(IOP);
    });
    let reason = refusal(dir.path());
    assert!(
        reason.contains("no ImageOrientationPatient (0020,0037)"),
        "{reason}"
    );
}

#[test]
fn two_slices_at_one_position() {
    let (dir, files) = axial_copy();
    std::fs::copy(&files[2], dir.path().join("copy_of_slice_2")).unwrap();
    let reason = refusal(dir.path());
    assert!(reason.contains("same position"), "{reason}");
}

#[test]
fn a_folder_without_dicom_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not DICOM").unwrap();
    let err = find_series(dir.path()).unwrap_err();
    assert!(matches!(err, DicomError::NoSeries { .. }), "{err}");
}

#[test]
fn a_damaged_file_is_named() {
    let (dir, files) = axial_copy();
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..200]).unwrap();
    let err = find_series(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DicomError::Parse { path, .. } if path == &files[0]),
        "{err}"
    );
}

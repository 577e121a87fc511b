//! Parity with SimpleITK 2.5.7's `ImageSeriesReader` on the series of `fixtures/dicom/` (made by
//! `scripts/goldens/dicom_make.py`): the same file order, the voxels equal bit for bit (SimpleITK's int or
//! float64 values cast to float32, our f64 rescale cast to f32), the geometry within 1e-6.

use std::path::{Path, PathBuf};

use nnu_dicom::{find_one_series, find_series, read_series, read_series_header, DicomError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dicom")
}

/// A little-endian float32 C-order `.npy` file: (shape, values).
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    nnu_artifacts::numpy::read_npy_f32(path).unwrap_or_else(|e| panic!("{e}"))
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn series_read_as_simpleitk_reads_them() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let map = expected.as_object().unwrap();
    assert_eq!(map.len(), 5, "axial, flipped, oblique, coronal, CT_small");
    let mut worst_geometry = 0.0f64;
    for (name, e) in map {
        let folder = fixtures().join(e["folder"].as_str().unwrap());
        let series = find_series(&folder).unwrap();
        assert_eq!(series.len(), 1, "{name}");
        let s = &series[0];
        assert_eq!(s.series_uid, e["series_uid"].as_str().unwrap(), "{name}");

        let header = read_series_header(s).unwrap();
        let order: Vec<String> = header
            .files
            .iter()
            .map(|f| {
                f.strip_prefix(&folder)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let sitk_order: Vec<String> = e["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        assert_eq!(order, sitk_order, "{name}: slice order");

        let v = read_series(s).unwrap();
        assert_eq!(v.geometry, header.geometry, "{name}");
        let size = f64s(&e["size"]);
        assert_eq!(
            [v.data.dim().2, v.data.dim().1, v.data.dim().0].map(|d| d as f64),
            [size[0], size[1], size[2]],
            "{name}: size (x, y, z)"
        );
        let g = &v.geometry;
        for (what, ours, theirs) in [
            ("spacing", g.spacing.to_vec(), f64s(&e["spacing"])),
            ("origin", g.origin.to_vec(), f64s(&e["origin"])),
            ("direction", g.direction.to_vec(), f64s(&e["direction"])),
        ] {
            assert_eq!(ours.len(), theirs.len());
            for (a, b) in ours.iter().zip(&theirs) {
                let d = (a - b).abs();
                worst_geometry = worst_geometry.max(d);
                assert!(d <= 1e-6, "{name}: {what} {ours:?} vs SimpleITK {theirs:?}");
            }
        }

        let (shape, golden) = read_npy_f32(&fixtures().join(format!("{name}.npy")));
        assert_eq!(
            shape,
            [v.data.dim().0, v.data.dim().1, v.data.dim().2],
            "{name}"
        );
        let ours: Vec<f32> = v.data.iter().copied().collect();
        let differing = ours
            .iter()
            .zip(&golden)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "{name}: voxels differing from SimpleITK's");
        // The rescale applied: what SimpleITK read differs from the stored values of the first slice.
        let stored = f64s(&e["stored_first_slice_min_max"]);
        let read = f64s(&e["read_first_slice_min_max"]);
        let first = v.data.slice(ndarray::s![0, .., ..]);
        let min = first.iter().copied().fold(f32::INFINITY, f32::min);
        let max = first.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!([min as f64, max as f64], [read[0], read[1]], "{name}");
        if name != "flipped" {
            assert_ne!(
                stored, read,
                "{name}: the fixture should exercise the rescale"
            );
        }
    }
    println!("largest geometry difference from SimpleITK: {worst_geometry:e}");
}

#[test]
fn several_series_in_one_tree_are_found_apart() {
    let series = find_series(&fixtures()).unwrap();
    let uids: Vec<&str> = series.iter().map(|s| s.series_uid.as_str()).collect();
    // The four phantoms, pydicom's CT and its RLE MR (found; reading it is refused, see refusals.rs).
    assert_eq!(series.len(), 6, "{uids:?}");
    let flipped = series
        .iter()
        .find(|s| s.series_uid.ends_with("4242.4"))
        .unwrap();
    assert_eq!(flipped.files.len(), 8);
    assert!(flipped.files.iter().all(|f| f.extension().is_none()));
    assert_eq!(
        flipped.case_name(),
        "PHANTOM-B_s4_1.2.826.0.1.3680043.8.498.4242.4"
    );
    let ct = series
        .iter()
        .find(|s| s.patient_id.as_deref() == Some("1CT1"))
        .unwrap();
    assert_eq!(
        ct.case_name(),
        "1CT1_s1_1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
    );
}

#[test]
fn one_series_is_chosen_by_folder_or_case_name() {
    // A folder of one series: that series, whatever the name asked for.
    let axial = find_one_series(&fixtures().join("axial"), Some("other")).unwrap();
    assert_eq!(axial.series_uid, "1.2.826.0.1.3680043.8.498.4242.3");
    // A tree of six: the one named, or an error naming the folder and listing the series.
    let flipped = find_one_series(
        &fixtures(),
        Some("PHANTOM-B_s4_1.2.826.0.1.3680043.8.498.4242.4"),
    )
    .unwrap();
    assert_eq!(flipped.series_uid, "1.2.826.0.1.3680043.8.498.4242.4");
    for name in [None, Some("PHANTOM-B")] {
        let err = find_one_series(&fixtures(), name).unwrap_err();
        let DicomError::SeveralSeries { path, names } = &err else {
            panic!("{err}");
        };
        assert_eq!(path, &fixtures());
        assert_eq!(names.len(), 6);
        let text = err.to_string();
        assert!(
            text.contains("6 DICOM series")
                && text.contains("1CT1_s1_1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322")
                && text.contains("give the folder of one series"),
            "{text}"
        );
    }
}

//! Compares the reader with what SimpleITK 2.5.7 and nibabel 5.4.2 read from the files in
//! `fixtures/nifti/` (made by `scripts/goldens/nifti_make.py`; see `fixtures/nifti/README.md`).
//!
//! Tolerances: voxel values must be equal after both sides are rounded to `f32` (the reader's output type);
//! spacing, origin and direction within 1e-12 of SimpleITK's (the header's `f32` arithmetic is reproduced,
//! so differences are at `f64` rounding level); nibabel's affine within 1e-5 (it is computed in `f64`
//! from the same `f32` fields).

use std::path::{Path, PathBuf};

use nnu_volume::{read_header, read_volume, read_volume_channels, VolumeError, XformSource};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nifti")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json"))
        .expect("fixtures/nifti/expected.json");
    serde_json::from_str(&text).expect("valid json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn every_golden_matches_simpleitk() {
    let exp = expected();
    let files = exp["files"].as_object().expect("files");
    assert!(files.len() >= 10);
    let mut checked = 0;
    for (name, e) in files {
        let path = fixtures().join(name);
        let s = &e["sitk"];
        if let Some(msg) = s.get("error") {
            // SimpleITK refuses these; we must either refuse for the same reason or (NIfTI-2) read them.
            let got = read_volume(&path);
            if name.contains("nifti2") {
                assert!(got.is_ok(), "{name}: {got:?}");
            } else {
                match got {
                    Err(VolumeError::BadGeometry { .. }) => {}
                    other => panic!("{name}: SimpleITK says {msg}, we got {other:?}"),
                }
            }
            continue;
        }
        let size = floats(&s["size"]);
        let vols = read_volume_channels(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let channels = if size.len() == 4 { size[3] as usize } else { 1 };
        assert_eq!(vols.len(), channels, "{name}");
        let want_values = floats(&s["values"]);
        let mut got_values = Vec::new();
        for v in &vols {
            assert_eq!(
                v.shape_zyx(),
                [size[2] as usize, size[1] as usize, size[0] as usize],
                "{name}"
            );
            got_values.extend(v.data.iter().map(|&x| f64::from(x)));
        }
        let want_f32: Vec<f64> = want_values.iter().map(|&x| f64::from(x as f32)).collect();
        assert_eq!(got_values, want_f32, "{name}: voxel values");

        let g = vols[0].geometry;
        let spacing = floats(&s["spacing"]);
        let origin = floats(&s["origin"]);
        let dir = floats(&s["direction"]);
        let n = spacing.len();
        // 4-D files: compare the 3-D part of SimpleITK's 4-D geometry.
        let dir3: Vec<f64> = (0..3)
            .flat_map(|r| (0..3).map(move |c| (r, c)))
            .map(|(r, c)| dir[r * n + c])
            .collect();
        assert!(
            close(&g.spacing, &spacing[..3], 1e-12),
            "{name}: spacing {:?} vs {:?}",
            g.spacing,
            spacing
        );
        assert!(
            close(&g.origin, &origin[..3], 1e-12),
            "{name}: origin {:?} vs {:?}",
            g.origin,
            origin
        );
        assert!(
            close(&g.direction, &dir3, 1e-12),
            "{name}: direction {:?} vs {:?}",
            g.direction,
            dir3
        );

        let h = read_header(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.geometry, g, "{name}: read_header geometry");
        assert_eq!(h.channels, channels, "{name}");
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} files compared");
}

#[test]
fn qform_sform_choice_follows_itk() {
    let choice = |name: &str| read_header(&fixtures().join(name)).map(|h| h.xform);
    assert_eq!(
        choice("i16_qform_only_qfac.nii.gz").unwrap(),
        XformSource::Qform
    );
    assert_eq!(
        choice("u8_sform_only_flipped.nii").unwrap(),
        XformSource::Sform
    );
    assert_eq!(
        choice("f32_both_scanner_oblique.nii.gz").unwrap(),
        XformSource::Sform
    );
    // sform code 2 describing another space than the qform: ITK keeps the qform (nibabel the sform)
    assert_eq!(
        choice("i16_both_disagree.nii.gz").unwrap(),
        XformSource::Qform
    );
    // sheared sform: ITK falls back to the qform, or refuses when there is none
    assert_eq!(
        choice("f64_bigendian_shear_sform.nii").unwrap(),
        XformSource::Qform
    );
    assert!(matches!(
        choice("f32_shear_sform_only.nii"),
        Err(VolumeError::BadGeometry { .. })
    ));
    assert_eq!(
        choice("i16_no_xform_negpix.nii").unwrap(),
        XformSource::None
    );
}

#[test]
fn nibabel_agrees_where_it_uses_the_same_transform() {
    let exp = expected();
    for (name, e) in exp["files"].as_object().expect("files") {
        let nb = &e["nibabel"];
        let path = fixtures().join(name);
        let Ok(h) = read_header(&path) else { continue };
        // nibabel prefers the sform whenever its code is set; ITK only in the cases above. Compare
        // affines only where both use the same transform and no metre scaling or negative pixdim applies.
        if h.xform != XformSource::Sform || name.contains("metres") {
            continue;
        }
        let want: Vec<f64> = nb["affine"]
            .as_array()
            .expect("affine")
            .iter()
            .flat_map(floats)
            .collect();
        let a = h.geometry.ras_affine();
        let got: Vec<f64> = a.iter().flatten().copied().collect();
        assert!(close(&got, &want, 1e-5), "{name}: {got:?} vs {want:?}");
        // nibabel's values agree with ours except for ITK's slope-0 intercept rule
        if !name.contains("slope0") {
            let vols = read_volume_channels(&path).expect("readable");
            let got: Vec<f64> = vols
                .iter()
                .flat_map(|v| v.data.iter().map(|&x| f64::from(x)))
                .collect();
            let want: Vec<f64> = floats(&nb["values"])
                .iter()
                .map(|&x| f64::from(x as f32))
                .collect();
            assert_eq!(got, want, "{name}: nibabel values");
        }
    }
}

#[test]
fn nifti2_matches_nibabel() {
    let exp = expected();
    let nb = &exp["files"]["i16_nifti2.nii"]["nibabel"];
    let v = read_volume(&fixtures().join("i16_nifti2.nii")).expect("NIfTI-2 readable");
    let got: Vec<f64> = v.data.iter().map(|&x| f64::from(x)).collect();
    assert_eq!(got, floats(&nb["values"]));
    let want: Vec<f64> = nb["affine"]
        .as_array()
        .expect("affine")
        .iter()
        .flat_map(floats)
        .collect();
    let got: Vec<f64> = v.geometry.ras_affine().iter().flatten().copied().collect();
    assert!(close(&got, &want, 1e-12), "{got:?} vs {want:?}");
}

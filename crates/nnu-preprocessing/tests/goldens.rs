//! Goldens from nnU-Net 1.7.1 (`scripts/goldens/preprocessing_make.py`, see `fixtures/preprocessing/README.md`):
//! `GenericPreprocessor.preprocess_test_case` and `save_segmentation_nifti_from_softmax` on phantoms.
//!
//! Tolerances: preprocessed (normalised) data max abs difference <= 1e-4; shapes, crop boxes and spacings
//! identical; exported label maps identical; exported (resampled) probabilities max abs difference <= 1e-6.

mod common;

use ndarray::{Array3, Array4, Ix3, Ix4};
use nnu_preprocessing::{
    export_probabilities, export_segmentation, preprocess_case, CaseProperties, ExportOptions,
    IntensityProperties, ItkGeometry, Normalization, PreprocessParams,
};
use serde_json::Value;

const CASES: &[&str] = &[
    "iso_down",
    "aniso_sepz",
    "target_aniso",
    "no_resample",
    "upsample",
    "lowres_x_nonct",
    "transpose_mask",
    "mask_3d_ct2",
];

fn arr3(v: &Value) -> [f64; 3] {
    let a = v.as_array().expect("array");
    [
        a[0].as_f64().unwrap(),
        a[1].as_f64().unwrap(),
        a[2].as_f64().unwrap(),
    ]
}

fn arr3u(v: &Value) -> [usize; 3] {
    arr3(v).map(|x| x as usize)
}

fn load_params(p: &Value) -> (PreprocessParams, ItkGeometry) {
    let schemes = p["normalization_schemes"].as_array().unwrap();
    let masks = p["use_mask_for_norm"].as_array().unwrap();
    let stats = p["intensityproperties"].as_array().unwrap();
    let normalization = (0..schemes.len())
        .map(|c| {
            let s = &stats[c];
            let st = IntensityProperties {
                mean: s["mean"].as_f64().unwrap() as f32,
                sd: s["sd"].as_f64().unwrap() as f32,
                percentile_00_5: s["percentile_00_5"].as_f64().unwrap() as f32,
                percentile_99_5: s["percentile_99_5"].as_f64().unwrap() as f32,
            };
            Normalization::from_scheme(
                schemes[c].as_str().unwrap(),
                masks[c].as_bool().unwrap(),
                Some(st),
                c,
            )
            .unwrap()
        })
        .collect();
    let mut params = PreprocessParams::new(arr3(&p["target_spacing"]), normalization);
    params.transpose_forward = arr3u(&p["transpose_forward"]);
    params.transpose_backward = arr3u(&p["transpose_backward"]);
    let dir: Vec<f64> = p["itk_direction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let geometry = ItkGeometry {
        spacing: arr3(&p["itk_spacing"]),
        origin: arr3(&p["itk_origin"]),
        direction: dir.try_into().unwrap(),
    };
    (params, geometry)
}

fn run_case(name: &str) -> (PreprocessParams, CaseProperties) {
    let dir = common::fixtures().join(name);
    let p = common::read_json(&dir.join("params.json"));
    let (params, geometry) = load_params(&p);
    let channels: Vec<Array3<f32>> = (0..params.normalization.len())
        .map(|c| {
            common::read_npy_gz_f32(&dir.join(format!("input_{c}.npy.gz")))
                .into_dimensionality::<Ix3>()
                .unwrap()
        })
        .collect();
    let (data, props) = preprocess_case(channels, &geometry, &params).unwrap();

    let expected_props: CaseProperties =
        serde_json::from_value(common::read_json(&dir.join("properties.json"))).unwrap();
    assert_eq!(props, expected_props, "{name}: properties");

    let expected = common::read_npy_gz_f32(&dir.join("expected.npy.gz"))
        .into_dimensionality::<Ix4>()
        .unwrap();
    assert_eq!(data.shape(), expected.shape(), "{name}: shape");
    let mut max = 0.0f32;
    for (a, b) in data.iter().zip(expected.iter()) {
        assert!(a.is_finite(), "{name}: non-finite output");
        max = max.max((a - b).abs());
    }
    println!(
        "{name}: preprocess max abs diff {max:e} over {} voxels",
        data.len()
    );
    assert!(max <= 1e-4, "{name}: max abs diff {max} > 1e-4");
    (params, props)
}

fn check_export(name: &str, params: &PreprocessParams, props: &CaseProperties) {
    let dir = common::fixtures().join(name);
    let softmax: Array4<f32> = common::read_npy_gz_f32(&dir.join("softmax.npy.gz"))
        .into_dimensionality::<Ix4>()
        .unwrap();
    let seg =
        export_segmentation(softmax.view(), props, params, &ExportOptions::default()).unwrap();
    let expected = common::read_npy_gz_u8(&dir.join("export_seg.npy.gz"))
        .into_dimensionality::<Ix3>()
        .unwrap();
    assert_eq!(seg.shape(), expected.shape(), "{name}: export shape");
    let same = seg
        .iter()
        .zip(expected.iter())
        .filter(|(a, b)| a == b)
        .count();
    println!(
        "{name}: export argmax identical voxels {same}/{} ({:.4} %)",
        seg.len(),
        100.0 * same as f64 / seg.len() as f64
    );
    assert_eq!(same, seg.len(), "{name}: export label maps differ");

    let probs_path = dir.join("export_probs.npy.gz");
    if probs_path.exists() {
        let expected = common::read_npy_gz_f32(&probs_path)
            .into_dimensionality::<Ix4>()
            .unwrap();
        let probs =
            export_probabilities(softmax.view(), props, params, &ExportOptions::default()).unwrap();
        let bb = props.crop_bbox;
        let mut max = 0.0f32;
        for c in 0..probs.shape()[0] {
            for ((z, y, x), &e) in expected.index_axis(ndarray::Axis(0), c).indexed_iter() {
                let v = probs[[c, z + bb[0][0], y + bb[1][0], x + bb[2][0]]];
                max = max.max((v - e).abs());
            }
        }
        let total: f32 = probs.iter().sum();
        let inside: f32 = expected.iter().sum();
        assert!(
            (total - inside).abs() < 1e-2,
            "{name}: nonzero probabilities outside crop_bbox"
        );
        println!("{name}: export probabilities max abs diff {max:e}");
        assert!(
            max <= 1e-6,
            "{name}: export probabilities max abs diff {max}"
        );
    }
}

#[test]
fn preprocess_and_export_match_nnunet() {
    for name in CASES {
        let (params, props) = run_case(name);
        if common::fixtures()
            .join(name)
            .join("softmax.npy.gz")
            .exists()
        {
            check_export(name, &params, &props);
        }
    }
}

//! nnunetv2 preprocessing against `DefaultPreprocessor.run_case` (fixtures/v2/preprocess, made by
//! scripts/goldens/v2_make.py with nnunetv2 2.8.1): the phantoms of fixtures/v2/cases (flipped directions,
//! non-zero origins, a zero margin to crop) through every model's configuration, plus a configuration with
//! `RescaleTo01Normalization` / `NoNormalization`. Shapes, crop boxes and spacings exact; data within 1e-4.

use std::path::{Path, PathBuf};

use nnu_artifacts::v2::V2ModelFolder;
use nnu_pipeline::v2::{v2_params, v2_preprocess_files};

const TOL: f32 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2")
}

fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = nnu_pipeline::npy::read_npy_f32(path).unwrap_or_else(|e| panic!("{e}"));
    (a.shape().to_vec(), a.into_iter().collect())
}

#[test]
fn matches_default_preprocessor() {
    let dir = root().join("preprocess");
    let mut goldens: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    goldens.sort();
    assert_eq!(goldens.len(), 5, "golden count");
    for g in goldens {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&g).unwrap()).unwrap();
        let model = V2ModelFolder::open(root().join(meta["model"].as_str().unwrap())).unwrap();
        let cfg = model
            .plans
            .configuration(meta["configuration"].as_str().unwrap())
            .unwrap();
        let params = v2_params(&model.plans, &cfg, &model.dir.join("plans.json")).unwrap();
        let case = meta["case"].as_str().unwrap();
        let files: Vec<PathBuf> = (0..cfg.normalization_schemes.len())
            .map(|c| root().join(format!("cases/{case}_{c:04}.nii.gz")))
            .collect();
        let (data, props, _) = v2_preprocess_files(&files, &params).unwrap();
        let name = g.file_stem().unwrap().to_string_lossy().into_owned();
        let want = |k: &str| -> Vec<usize> { serde_json::from_value(meta[k].clone()).unwrap() };
        assert_eq!(data.shape(), want("shape").as_slice(), "{name}: shape");
        assert_eq!(
            props.shape_before_cropping.to_vec(),
            want("shape_before_cropping"),
            "{name}"
        );
        assert_eq!(
            props.shape_after_cropping_and_before_resampling.to_vec(),
            want("shape_after_cropping_and_before_resampling"),
            "{name}"
        );
        let bbox: Vec<Vec<usize>> =
            serde_json::from_value(meta["bbox_used_for_cropping"].clone()).unwrap();
        let ours: Vec<Vec<usize>> = props
            .bbox_used_for_cropping
            .iter()
            .map(|b| b.to_vec())
            .collect();
        assert_eq!(ours, bbox, "{name}: bbox");
        let spacing: Vec<f64> = serde_json::from_value(meta["spacing"].clone()).unwrap();
        assert_eq!(props.spacing.to_vec(), spacing, "{name}: spacing");
        let (shape, golden) = read_npy_f32(&g.with_extension("npy"));
        assert_eq!(shape, data.shape());
        let d = data
            .iter()
            .zip(&golden)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{name}: {:?}, max abs diff {d:.3e}", data.shape());
        assert!(d <= TOL, "{name}: max abs diff {d} > {TOL}");
    }
}

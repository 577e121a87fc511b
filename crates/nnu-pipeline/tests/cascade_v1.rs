//! nnU-Net v1 cascades against nnU-Net 1.7.1 (fixtures/cascade/v1, made by scripts/goldens/cascade_make.py):
//! random-weight `3d_lowres/Task905_Cascade/nnUNetTrainerV2__nnUNetPlansv2.1` (plans stage 0) and
//! `3d_cascade_fullres/Task905_Cascade/nnUNetTrainerV2CascadeFullRes__nnUNetPlansv2.1` (stage 1, 1 + 2
//! input channels) Generic_UNets, one CT phantom with a zero margin (the crop crops 12x30x26 to
//! 10x24x18, so nnU-Net's uncropped resize of the previous stage matters), flipped directions, a
//! non-zero origin and `transpose_forward` [0, 2, 1].
//!
//! For each previous-stage source (`lowres`: nnU-Net's own 3d_lowres prediction; `handmade`: a label
//! map whose organ reaches into the zero margin):
//! - the preprocessed input that `preprocess_save_to_queue` builds within 1e-4, the one-hot channels
//!   equal in every voxel;
//! - the softmax of `predict_3D` (8 mirrors, step 0.5, Gaussian) on it within 1e-4 (v1 merges
//!   probabilities, not logits);
//! - the segmentation of `predict_case_cascade` with the folder (`--prev-stage`) equal to
//!   `save_segmentation_nifti_from_softmax`'s on every voxel that is not a near-tie: a voxel inside the
//!   crop box whose top two exported probabilities are within 2e-4 (twice the tolerance, as
//!   `predict_parity.rs`).
//!
//! The one-command form (3d_lowres predicted in memory): its kept segmentation equals nnU-Net's 3d_lowres
//! export except near-ties, and its final segmentation is identical to the two-step form on it.

mod common;

use std::path::{Path, PathBuf};

use common::{compare, cpu, max_abs, read_npy};

use ndarray::{Array3, Array4, Axis};
use nnu_pipeline::cases::Case;
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::predict::{predict_case_cascade, V1PrevSource, V1Stage};
use nnu_pipeline::run::load_cpu_backends;
use nnu_pipeline::stages::{predict_folds, prepare_case, PredictOptions};
use nnu_preprocessing::{export_probabilities, ExportOptions};

const TOL: f32 = 1e-4;
const CASE: &str = "cascv1_a";
const SOURCES: [(&str, &str); 2] = [("lowres", "lowres"), ("handmade", "prev")];

fn root() -> PathBuf {
    common::cascade_fixtures("v1")
}

fn lowres_dir() -> PathBuf {
    root().join("models/3d_lowres/Task905_Cascade/nnUNetTrainerV2__nnUNetPlansv2.1")
}

fn cascade_dir() -> PathBuf {
    root().join(
        "models/3d_cascade_fullres/Task905_Cascade/nnUNetTrainerV2CascadeFullRes__nnUNetPlansv2.1",
    )
}

fn case() -> Case {
    Case::nifti(
        CASE.to_owned(),
        vec![root().join(format!("cases/{CASE}_0000.nii.gz"))],
    )
}

/// The case preprocessed for `model` with `seg` (a previous-stage file) stacked as nnU-Net does.
fn cascade_input(
    model: &ModelSpec,
    seg: &Path,
) -> (Array4<f32>, nnu_preprocessing::CaseProperties) {
    let p = prepare_case(&case(), model, false).unwrap();
    let labels = nnu_volume::read_volume(seg)
        .unwrap()
        .data
        .mapv(|v| v as i32);
    let data = nnu_preprocessing::append_prev_stage_v1(
        p.data,
        labels.view(),
        model.params.transpose_forward,
        model.cascade_classes.as_deref().unwrap(),
    )
    .unwrap();
    (data, p.props)
}

#[test]
fn the_stages_and_channels_come_from_the_trainers() {
    let low = ModelSpec::open(&lowres_dir()).unwrap();
    let casc = ModelSpec::open(&cascade_dir()).unwrap();
    assert_eq!((low.stage, casc.stage), (0, 1));
    assert_eq!(low.params.target_spacing, [4.5, 1.6, 1.8]);
    assert_eq!(casc.params.target_spacing, [2.0, 0.9, 1.0]);
    assert!(low.cascade_classes.is_none());
    assert_eq!(casc.cascade_classes.as_deref(), Some(&[1, 2][..]));
    assert_eq!((low.input_channels(), casc.input_channels()), (1, 3));
    assert_eq!(
        nnu_pipeline::model::v1_lowres_folder(&casc).unwrap(),
        lowres_dir()
    );
}

#[test]
fn preprocessing_and_probabilities_match_nnunet() {
    let m = ModelSpec::open(&cascade_dir()).unwrap();
    let mut b = load_cpu_backends(&m, &[], None, &cpu()).unwrap();
    for (source, prev) in SOURCES {
        let golden = root().join(format!("{source}_cascade"));
        let want = read_npy(&golden.join("preprocess.npy"));
        let (data, _) = cascade_input(&m, &root().join(prev).join(format!("{CASE}.nii.gz")));
        assert_eq!(data.shape(), want.shape(), "{source}");
        let image_diff = max_abs(
            &data.slice(ndarray::s![..1, .., .., ..]).to_owned(),
            &want.slice(ndarray::s![..1, .., .., ..]).to_owned(),
        );
        let onehot_differ = data
            .slice(ndarray::s![1.., .., .., ..])
            .iter()
            .zip(want.slice(ndarray::s![1.., .., .., ..]).iter())
            .filter(|(a, b)| a != b)
            .count();
        let onehot: Vec<usize> = (1..3)
            .map(|c| {
                data.index_axis(Axis(0), c)
                    .iter()
                    .filter(|&&v| v == 1.0)
                    .count()
            })
            .collect();
        eprintln!(
            "v1 {source}: preprocessed {:?}, image channel max abs diff {image_diff:.3e}, one-hot voxels \
             per class {onehot:?}, {onehot_differ} one-hot values differ",
            data.shape()
        );
        assert!(image_diff <= TOL, "{source}: {image_diff}");
        assert_eq!(onehot_differ, 0, "{source}");
        assert!(
            onehot.iter().all(|&n| n > 0),
            "{source}: a class is missing"
        );

        let opts = PredictOptions::default();
        let (probs, tiles) = predict_folds(&want, &mut b, m.patch, &opts, &mut |_, _| {}).unwrap();
        let want_probs = read_npy(&golden.join(format!("{CASE}_probabilities_pre.npy")));
        let diff = max_abs(&probs, &want_probs);
        eprintln!("v1 {source}: {tiles} tiles x 8 mirrors, probabilities max abs diff {diff:.3e}");
        assert!(diff <= TOL, "{source}: probabilities differ by {diff}");
    }
}

/// Voxels (image frame) inside the crop box whose two largest exported probabilities are within
/// `2 * TOL`. Outside the box the export writes no probabilities (all zero), so none of those voxels is
/// a near-tie: a label that differs there is a difference.
fn near_ties(
    m: &ModelSpec,
    probs: &Array4<f32>,
    props: &nnu_preprocessing::CaseProperties,
) -> Array3<bool> {
    let p =
        export_probabilities(probs.view(), props, &m.params, &ExportOptions::default()).unwrap();
    let b = props.crop_bbox;
    ndarray::Zip::indexed(p.lanes(Axis(0))).map_collect(|(z, y, x), l| {
        let inside = [z, y, x]
            .iter()
            .zip(b)
            .all(|(&i, [lo, hi])| (lo..hi).contains(&i));
        let mut v: Vec<f32> = l.to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        inside && v[0] - v[1] <= 2.0 * TOL
    })
}

#[test]
fn two_step_segmentations_match_nnunet_except_near_ties() {
    let m = ModelSpec::open(&cascade_dir()).unwrap();
    let mut b = load_cpu_backends(&m, &[], None, &cpu()).unwrap();
    let opts = PredictOptions::default();
    let tmp = tempfile::tempdir().unwrap();
    for (source, prev) in SOURCES {
        let golden = root().join(format!("{source}_cascade"));
        let mut src = V1PrevSource::Folder(root().join(prev));
        let report = predict_case_cascade(
            &case(),
            &m,
            &mut b,
            Some(&mut src),
            &tmp.path().join(source),
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let (data, props) = cascade_input(&m, &root().join(prev).join(format!("{CASE}.nii.gz")));
        let (probs, _) = predict_folds(&data, &mut b, m.patch, &opts, &mut |_, _| {}).unwrap();
        let tie = near_ties(&m, &probs, &props);
        let (differ, ties, bad) =
            compare(&report.output, &golden.join(format!("{CASE}.nii.gz")), &tie);
        eprintln!(
            "v1 {source} (two-step): {} voxels, {ties} near-ties, {differ} differ, {bad} of them not near-ties",
            tie.len()
        );
        assert_eq!(bad, 0, "{source}");
    }
}

#[test]
fn one_command_keeps_the_lowres_stage_and_equals_the_two_step_form() {
    let m = ModelSpec::open(&cascade_dir()).unwrap();
    let low = ModelSpec::open(&lowres_dir()).unwrap();
    let mut b = load_cpu_backends(&m, &[], None, &cpu()).unwrap();
    let lb = load_cpu_backends(&low, &[], None, &cpu()).unwrap();
    let opts = PredictOptions::default();
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("one/3d_lowres_predictions");
    let mut src = V1PrevSource::Predict {
        stage: Box::new(V1Stage {
            model: low.clone(),
            backends: lb,
        }),
        keep: Some(keep.clone()),
    };
    let one = predict_case_cascade(
        &case(),
        &m,
        &mut b,
        Some(&mut src),
        &tmp.path().join("one"),
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let kept = keep.join(format!("{CASE}.nii.gz"));

    let V1PrevSource::Predict { stage, .. } = &mut src else {
        unreachable!()
    };
    let p = prepare_case(&case(), &low, false).unwrap();
    let (probs, _) = predict_folds(
        &p.data,
        &mut stage.backends,
        low.patch,
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let want = read_npy(&root().join(format!("lowres/{CASE}_probabilities_pre.npy")));
    let diff = max_abs(&probs, &want);
    let tie = near_ties(&low, &probs, &p.props);
    let (differ, ties, bad) = compare(&kept, &root().join(format!("lowres/{CASE}.nii.gz")), &tie);
    eprintln!(
        "v1 3d_lowres (in memory): probabilities max abs diff {diff:.3e}, {} voxels, {ties} near-ties, \
         {differ} differ, {bad} of them not near-ties",
        tie.len()
    );
    assert!(diff <= TOL);
    assert_eq!(bad, 0);

    let mut folder = V1PrevSource::Folder(keep.clone());
    let two = predict_case_cascade(
        &case(),
        &m,
        &mut b,
        Some(&mut folder),
        &tmp.path().join("two"),
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let a = nnu_volume::read_labels(&one.output).unwrap();
    let c = nnu_volume::read_labels(&two.output).unwrap();
    assert_eq!(a.data, c.data);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("one"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["3d_lowres_predictions", "cascv1_a.nii.gz"]);
}

#[test]
fn a_cascade_model_without_its_previous_stage_is_an_error() {
    let m = ModelSpec::open(&cascade_dir()).unwrap();
    let mut b = load_cpu_backends(&m, &[], None, &cpu()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let e = predict_case_cascade(
        &case(),
        &m,
        &mut b,
        None,
        tmp.path(),
        &PredictOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("3d_lowres segmentation"), "{e}");
}

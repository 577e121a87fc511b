//! A region-based nnunetv2 cascade against nnunetv2 2.8.1 (fixtures/cascade/v2_regions, made by
//! `scripts/goldens/cascade_make.py v2r`): the plans, phantom and previous-stage sources of
//! `cascade_v2.rs`, with `dataset.json` labels as regions (`whole` = [1, 2], `core` = 2,
//! `regions_class_order` [1, 2]), so both stages have two sigmoid outputs and the cascade stage takes the
//! one-hot of the labels 1, 2 the lowres regions are written as.
//!
//! For each previous-stage source (`lowres`: nnunetv2's own region prediction; `handmade`):
//! - the preprocessed input within 1e-4, the one-hot channels equal in every voxel;
//! - the cascade network's logits on it within 1e-4 (fp32 accumulators on both sides);
//! - the segmentation of `predict_case_v2_cascade` with the folder of segmentations equal to
//!   `predict_from_files(folder_with_segs_from_prev_stage=...)` on every voxel that is not a near-tie:
//!   for sigmoid outputs, a voxel where some region's resampled logit is within nnunetv2's fp16 change of
//!   the 0.5 threshold (logit 0).
//!
//! And the one-command form (the lowres stage in memory) gives the two-step result on its own kept
//! lowres segmentation.

mod common;

use std::path::{Path, PathBuf};

use common::{
    cascade_fixtures, compare, compare_cascade_input, cpu, max_abs, meta, read_npy, v2_prev_stage,
};
use ndarray::{Array3, Array4, Axis};
use nnu_pipeline::cases::Case;
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{
    load_v2_backends, predict_case_v2_cascade, predict_logits_v2, v2_preprocess_volumes_cascade,
    V2Model, V2PrevSource, V2Stage,
};
use nnu_preprocessing::v2::{resample_logits_v2, V2CaseProperties, V2Labels};

const TOL: f32 = 1e-4;
const CASE: &str = "casc_a";
const SOURCES: [(&str, &str); 2] = [("lowres", "lowres"), ("handmade", "prev/handmade")];

fn root() -> PathBuf {
    cascade_fixtures("v2_regions")
}

fn model(configuration: &str) -> V2Model {
    let dir = root().join(format!(
        "models/Dataset906_RegionCascade/nnUNetTrainer__nnUNetPlans__{configuration}"
    ));
    V2Model::open(&dir, Some(configuration), "checkpoint_final.pth").unwrap()
}

fn image() -> PathBuf {
    root().join(format!("cases/{CASE}_0000.nii.gz"))
}

fn fp16_delta(golden: &Path) -> f32 {
    meta(&golden.join("meta.json"))["fp16_vs_fp32_logits_max_abs"]
        .as_f64()
        .unwrap() as f32
}

/// Voxels (image frame) where some region's resampled logit is within `delta` (nnunetv2's fp16 change of
/// the logits) of 0, the sigmoid's 0.5: only there can nnunetv2's label differ from ours.
fn near_ties(
    m: &V2Model,
    logits: &Array4<f32>,
    props: &V2CaseProperties,
    delta: f32,
) -> Array3<bool> {
    let r = resample_logits_v2(logits.view(), props, &m.export).unwrap();
    let ulp = 2f32.powi(-10);
    let tie_cropped = ndarray::Zip::from(r.lanes(Axis(0)))
        .map_collect(|l| l.iter().any(|&v| v.abs() <= delta + v.abs() * ulp));
    let b = props.bbox_used_for_cropping;
    let mut tie = Array3::<bool>::from_elem(props.shape_before_cropping, false);
    tie.slice_mut(ndarray::s![
        b[0][0]..b[0][1],
        b[1][0]..b[1][1],
        b[2][0]..b[2][1]
    ])
    .assign(&tie_cropped);
    tie.permuted_axes(m.export.transpose_backward).to_owned()
}

/// Foreground voxels of a label file.
fn foreground(path: &Path) -> usize {
    nnu_volume::read_labels(path)
        .unwrap()
        .data
        .iter()
        .filter(|&&v| v > 0)
        .count()
}

#[test]
fn region_cascade_stages_have_sigmoid_heads_and_take_the_foreground_labels() {
    let m = model("3d_cascade_fullres");
    let c = m.cascade.as_ref().unwrap();
    assert_eq!(c.previous_stage, "3d_lowres");
    assert_eq!(c.foreground_labels, vec![1, 2]);
    assert_eq!((m.num_channels, m.input_channels(), m.heads), (1, 3, 2));
    assert_eq!(
        m.export.labels,
        V2Labels::Regions {
            class_order: vec![1, 2]
        }
    );
    let low = model("3d_lowres");
    assert!(low.cascade.is_none());
    assert_eq!(low.heads, 2);
}

#[test]
fn region_cascade_preprocessing_logits_and_segmentations_match_nnunetv2() {
    let m = model("3d_cascade_fullres");
    let mut b = load_v2_backends(&m, &[], &cpu()).unwrap();
    let opts = PredictOptions {
        mirrors: b.default_mirrors().unwrap(),
        ..PredictOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    for (source, prev_dir) in SOURCES {
        let golden = root().join(format!("{source}_cascade"));
        let want = read_npy(&golden.join("preprocess.npy"));
        let vols = vec![nnu_volume::read_volume(&image()).unwrap()];
        let prev = v2_prev_stage(&m, &root().join(prev_dir).join(format!("{CASE}.nii.gz")));
        let (data, props, _) = v2_preprocess_volumes_cascade(vols, Some(prev), &m.params).unwrap();
        assert_eq!(data.shape(), want.shape(), "{source}");
        let (image_diff, onehot_differ) = compare_cascade_input(&data, &want, 1);
        assert!(image_diff <= TOL, "{source}: image channel {image_diff}");
        assert_eq!(onehot_differ, 0, "{source}: one-hot channels");

        let (logits, tiles) =
            predict_logits_v2(&want, &mut b.backends, m.window, &opts, &mut |_, _| {}).unwrap();
        let logit_diff = max_abs(&logits, &read_npy(&golden.join("logits.npy")));
        assert!(logit_diff <= TOL, "{source}: logits differ by {logit_diff}");

        let out = tmp.path().join(source);
        let mut prev = V2PrevSource::Folder(root().join(prev_dir));
        let report = predict_case_v2_cascade(
            &Case::nifti(CASE.to_owned(), vec![image()]),
            &m,
            &mut b.backends,
            Some(&mut prev),
            &out,
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let (ours_logits, _) =
            predict_logits_v2(&data, &mut b.backends, m.window, &opts, &mut |_, _| {}).unwrap();
        let delta = fp16_delta(&golden);
        let tie = near_ties(&m, &ours_logits, &props, delta);
        let theirs = golden.join(format!("{CASE}.nii.gz"));
        let (differ, ties, bad) = compare(&report.output, &theirs, &tie);
        let fg = foreground(&theirs);
        eprintln!(
            "{source}: input {:?}, image channel {image_diff:.2e}, one-hot equal; {tiles} tiles, logits \
             {logit_diff:.2e}; segmentation: {} voxels, {fg} foreground (nnunetv2), {ties} near-ties \
             (delta {delta:.3}), {differ} differ, {bad} of them not near-ties",
            data.shape(),
            tie.len()
        );
        assert!(fg > 0, "{source}: nnunetv2 predicts no foreground");
        assert_eq!(bad, 0, "{source}");
    }
}

#[test]
fn region_cascade_in_one_command_equals_the_two_step_form_on_its_kept_lowres() {
    let m = model("3d_cascade_fullres");
    let low = model("3d_lowres");
    let mut b = load_v2_backends(&m, &[], &cpu()).unwrap();
    let lb = load_v2_backends(&low, &[], &cpu()).unwrap();
    let opts = PredictOptions {
        mirrors: b.default_mirrors().unwrap(),
        ..PredictOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let (one, keep) = (tmp.path().join("one"), tmp.path().join("kept"));
    let mut source = V2PrevSource::Predict {
        stage: Box::new(V2Stage {
            mirrors: lb.default_mirrors().unwrap(),
            model: low,
            backends: lb.backends,
        }),
        keep: Some(keep.clone()),
    };
    let case = Case::nifti(CASE.to_owned(), vec![image()]);
    predict_case_v2_cascade(
        &case,
        &m,
        &mut b.backends,
        Some(&mut source),
        &one,
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let two = tmp.path().join("two");
    let mut folder = V2PrevSource::Folder(keep.clone());
    predict_case_v2_cascade(
        &case,
        &m,
        &mut b.backends,
        Some(&mut folder),
        &two,
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let seg = format!("{CASE}.nii.gz");
    let kept = nnu_volume::read_labels(&keep.join(&seg)).unwrap().data;
    assert!(kept.iter().any(|&v| v == 1) && kept.iter().any(|&v| v == 2));
    assert_eq!(
        nnu_volume::read_labels(&one.join(&seg)).unwrap().data,
        nnu_volume::read_labels(&two.join(&seg)).unwrap().data
    );
}

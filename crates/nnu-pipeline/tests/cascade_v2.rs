//! nnunetv2 cascades against nnunetv2 2.8.1 (fixtures/cascade/v2, made by scripts/goldens/cascade_make.py):
//! a `3d_lowres` and a `3d_cascade_fullres` random-weight model, one anisotropic phantom with a zero
//! margin (the crop crops), flipped directions and a non-zero origin, ZScore normalisation with the
//! nonzero mask (so the `seg >= 0` mask that a previous stage changes matters).
//!
//! For each previous-stage source (`lowres`: nnunetv2's own 3d_lowres prediction; `handmade`: a label
//! map whose organ reaches out of the body into the zero margin):
//! - the preprocessed input (`run_case(images, seg_file)` + one-hot over the foreground labels) within
//!   1e-4, the one-hot channels equal in every voxel;
//! - the logits of the cascade network on it within 1e-4 (fp32 accumulators on both sides);
//! - the segmentation of `predict_case_v2_cascade` with the folder of segmentations (`--prev-stage`)
//!   equal to `predict_from_files(folder_with_segs_from_prev_stage=...)` on every voxel that is not a
//!   near-tie (as in `v2_predict.rs`: where nnunetv2's fp16 accumulators could decide the label).
//!
//! The one-command form (the previous stage predicted in memory, `--lowres-model`): its kept 3d_lowres
//! segmentation equals nnunetv2's `3d_lowres` prediction except near-ties, and its final segmentation is
//! identical to the two-step form run on that kept segmentation.

mod common;

use std::path::PathBuf;

use common::{compare, compare_cascade_input, cpu, max_abs, meta, read_npy, v2_prev_stage};

use ndarray::{Array3, Array4, Axis};
use nnu_pipeline::cases::Case;
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{
    load_v2_backends, predict_case_v2_cascade, predict_logits_v2, v2_preprocess_volumes,
    v2_preprocess_volumes_cascade, V2Model, V2PrevSource, V2Stage,
};
use nnu_preprocessing::v2::{resample_logits_v2, V2CaseProperties};

const TOL: f32 = 1e-4;
const CASE: &str = "casc_a";
const SOURCES: [(&str, &str); 2] = [("lowres", "lowres"), ("handmade", "prev/handmade")];

fn root() -> PathBuf {
    common::cascade_fixtures("v2")
}

fn model(configuration: &str) -> V2Model {
    let dir = root().join(format!(
        "models/Dataset904_Cascade/nnUNetTrainer__nnUNetPlans__{configuration}"
    ));
    V2Model::open(&dir, Some(configuration), "checkpoint_final.pth").unwrap()
}

fn image() -> PathBuf {
    root().join(format!("cases/{CASE}_0000.nii.gz"))
}

fn case() -> Case {
    Case::nifti(CASE.to_owned(), vec![image()])
}

#[test]
fn the_cascade_stage_takes_the_foreground_labels_as_input_channels() {
    let m = model("3d_cascade_fullres");
    let c = m.cascade.as_ref().unwrap();
    assert_eq!(c.previous_stage, "3d_lowres");
    assert_eq!(c.foreground_labels, vec![1, 2]);
    assert_eq!((m.num_channels, m.input_channels()), (1, 3));
    assert!(model("3d_lowres").cascade.is_none());
}

#[test]
fn preprocessing_and_logits_match_nnunetv2() {
    let m = model("3d_cascade_fullres");
    let mut b = load_v2_backends(&m, &[], &cpu()).unwrap();
    for (source, prev_dir) in SOURCES {
        let golden = root().join(format!("{source}_cascade"));
        let want = read_npy(&golden.join("preprocess.npy"));
        let vols = vec![nnu_volume::read_volume(&image()).unwrap()];
        let prev = v2_prev_stage(&m, &root().join(prev_dir).join(format!("{CASE}.nii.gz")));
        let (data, props, _) = v2_preprocess_volumes_cascade(vols, Some(prev), &m.params).unwrap();
        assert_eq!(data.shape(), want.shape(), "{source}");
        let (image_diff, onehot_differ) = compare_cascade_input(&data, &want, 1);
        let onehot: Vec<usize> = (1..3)
            .map(|c| {
                data.index_axis(Axis(0), c)
                    .iter()
                    .filter(|&&v| v == 1.0)
                    .count()
            })
            .collect();
        let pj = meta(&golden.join("preprocess.json"));
        let bbox: Vec<[usize; 2]> =
            serde_json::from_value(pj["bbox_used_for_cropping"].clone()).unwrap();
        assert_eq!(props.bbox_used_for_cropping.to_vec(), bbox, "{source}");
        eprintln!(
            "{source}: preprocessed {:?}, image channel max abs diff {image_diff:.3e}, one-hot voxels per \
             label {onehot:?}, {onehot_differ} one-hot values differ",
            data.shape()
        );
        assert!(
            image_diff <= TOL,
            "{source}: image channel differs by {image_diff}"
        );
        assert_eq!(onehot_differ, 0, "{source}: one-hot channels");
        assert!(
            onehot.iter().all(|&n| n > 0),
            "{source}: a label is missing"
        );

        let opts = PredictOptions {
            mirrors: b.default_mirrors().unwrap(),
            ..PredictOptions::default()
        };
        let (logits, tiles) =
            predict_logits_v2(&want, &mut b.backends, m.window, &opts, &mut |_, _| {}).unwrap();
        let want_logits = read_npy(&golden.join("logits.npy"));
        let diff = max_abs(&logits, &want_logits);
        eprintln!(
            "{source}: {tiles} tiles x {} mirrors, logits max abs diff {diff:.3e}",
            opts.mirrors.len()
        );
        assert!(diff <= TOL, "{source}: logits differ by {diff}");
    }
}

/// Voxels (image frame) where nnunetv2's fp16 accumulators could decide the label, from our logits
/// (`v2_predict.rs`'s rule for softmax models).
fn near_ties(
    m: &V2Model,
    logits: &Array4<f32>,
    props: &V2CaseProperties,
    delta: f32,
) -> Array3<bool> {
    let r = resample_logits_v2(logits.view(), props, &m.export).unwrap();
    let ulp = 2f32.powi(-10);
    let tie_cropped = ndarray::Zip::from(r.lanes(Axis(0))).map_collect(|l| {
        let mut v: Vec<f32> = l.to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        v[0] - v[1] <= 2.0 * delta + (v[0].abs() + v[1].abs()) * ulp
    });
    let bbox = props.bbox_used_for_cropping;
    let mut tie = Array3::<bool>::from_elem(props.shape_before_cropping, false);
    tie.slice_mut(ndarray::s![
        bbox[0][0]..bbox[0][1],
        bbox[1][0]..bbox[1][1],
        bbox[2][0]..bbox[2][1]
    ])
    .assign(&tie_cropped);
    tie.permuted_axes(m.export.transpose_backward).to_owned()
}

#[test]
fn two_step_segmentations_match_predict_from_files_except_near_ties() {
    let m = model("3d_cascade_fullres");
    let mut b = load_v2_backends(&m, &[], &cpu()).unwrap();
    let opts = PredictOptions {
        mirrors: b.default_mirrors().unwrap(),
        ..PredictOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    for (source, prev_dir) in SOURCES {
        let golden = root().join(format!("{source}_cascade"));
        let out = tmp.path().join(source);
        let mut prev = V2PrevSource::Folder(root().join(prev_dir));
        let report = predict_case_v2_cascade(
            &case(),
            &m,
            &mut b.backends,
            Some(&mut prev),
            &out,
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let vols = vec![nnu_volume::read_volume(&image()).unwrap()];
        let p = v2_prev_stage(&m, &root().join(prev_dir).join(format!("{CASE}.nii.gz")));
        let (data, props, _) = v2_preprocess_volumes_cascade(vols, Some(p), &m.params).unwrap();
        let (logits, _) =
            predict_logits_v2(&data, &mut b.backends, m.window, &opts, &mut |_, _| {}).unwrap();
        let delta = meta(&golden.join("meta.json"))["fp16_vs_fp32_logits_max_abs"]
            .as_f64()
            .unwrap() as f32;
        let tie = near_ties(&m, &logits, &props, delta);
        let (differ, ties, bad) =
            compare(&report.output, &golden.join(format!("{CASE}.nii.gz")), &tie);
        eprintln!(
            "{source} (two-step): {} voxels, {ties} near-ties (delta {delta:.3}), {differ} differ, {bad} of \
             them not near-ties",
            tie.len()
        );
        assert_eq!(bad, 0, "{source}");
    }
}

#[test]
fn one_command_keeps_the_lowres_stage_and_equals_the_two_step_form() {
    let m = model("3d_cascade_fullres");
    let low = model("3d_lowres");
    let mut b = load_v2_backends(&m, &[], &cpu()).unwrap();
    let lb = load_v2_backends(&low, &[], &cpu()).unwrap();
    let low_mirrors = lb.default_mirrors().unwrap();
    let opts = PredictOptions {
        mirrors: b.default_mirrors().unwrap(),
        ..PredictOptions::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("one/3d_lowres_predictions");
    let mut prev = V2PrevSource::Predict {
        stage: Box::new(V2Stage {
            model: low.clone(),
            backends: lb.backends,
            mirrors: low_mirrors,
        }),
        keep: Some(keep.clone()),
    };
    let mut ticks = 0;
    let one = predict_case_v2_cascade(
        &case(),
        &m,
        &mut b.backends,
        Some(&mut prev),
        &tmp.path().join("one"),
        &opts,
        &mut |_, _| ticks += 1,
    )
    .unwrap();
    let kept = keep.join(format!("{CASE}.nii.gz"));
    assert!(kept.is_file());

    // The kept 3d_lowres segmentation against nnunetv2's 3d_lowres prediction.
    let V2PrevSource::Predict { stage, .. } = &mut prev else {
        unreachable!()
    };
    let vols = vec![nnu_volume::read_volume(&image()).unwrap()];
    let (data, props, _) = v2_preprocess_volumes(vols, &low.params).unwrap();
    let low_opts = PredictOptions {
        mirrors: low_mirrors,
        ..PredictOptions::default()
    };
    let (logits, _) = predict_logits_v2(
        &data,
        &mut stage.backends,
        low.window,
        &low_opts,
        &mut |_, _| {},
    )
    .unwrap();
    let golden_low = root().join("lowres");
    let want_logits = read_npy(&golden_low.join(format!("{CASE}_logits.npy")));
    let low_diff = max_abs(&logits, &want_logits);
    let delta = meta(&golden_low.join("meta.json"))["fp16_vs_fp32_logits_max_abs"]
        .as_f64()
        .unwrap() as f32;
    let tie = near_ties(&low, &logits, &props, delta);
    let (differ, ties, bad) = compare(&kept, &golden_low.join(format!("{CASE}.nii.gz")), &tie);
    eprintln!(
        "3d_lowres (in memory): logits max abs diff {low_diff:.3e}, {} voxels, {ties} near-ties, {differ} \
         differ, {bad} of them not near-ties",
        tie.len()
    );
    assert!(low_diff <= TOL);
    assert_eq!(bad, 0);

    // The two-step form on the kept segmentation writes the same labels.
    let mut folder = V2PrevSource::Folder(keep.clone());
    let two = predict_case_v2_cascade(
        &case(),
        &m,
        &mut b.backends,
        Some(&mut folder),
        &tmp.path().join("two"),
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let a = nnu_volume::read_labels(&one.output).unwrap();
    let c = nnu_volume::read_labels(&two.output).unwrap();
    assert_eq!(a.data, c.data);
    assert_eq!(a.geometry, c.geometry);
    assert!(
        ticks > one.tiles,
        "the previous stage's tiles are counted too"
    );
    // Only the final outputs beside the kept folder.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("one"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["3d_lowres_predictions", "casc_a.nii.gz"]);
}

#[test]
fn a_cascade_stage_without_its_previous_stage_is_an_error_naming_what_is_missing() {
    let m = model("3d_cascade_fullres");
    let mut b = load_v2_backends(&m, &[], &cpu()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let opts = PredictOptions::default();
    let e = predict_case_v2_cascade(
        &case(),
        &m,
        &mut b.backends,
        None,
        tmp.path(),
        &opts,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cascade stage") && e.contains("3d_lowres"),
        "{e}"
    );

    // A folder without this case's file names the file.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut prev = V2PrevSource::Folder(empty.clone());
    let e = predict_case_v2_cascade(
        &case(),
        &m,
        &mut b.backends,
        Some(&mut prev),
        &tmp.path().join("o"),
        &opts,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    let want = empty.join("casc_a.nii.gz");
    assert!(
        e.starts_with(&format!("{}: missing", want.display())),
        "{e}"
    );

    // A segmentation of another shape names both files.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let seg = Array3::<u8>::zeros((3, 4, 5));
    nnu_volume::write_volume(
        &other.join("casc_a.nii.gz"),
        seg.view(),
        &nnu_volume::Geometry::default(),
        &nnu_volume::WriteOptions::default(),
    )
    .unwrap();
    let mut prev = V2PrevSource::Folder(other.clone());
    let e = predict_case_v2_cascade(
        &case(),
        &m,
        &mut b.backends,
        Some(&mut prev),
        &tmp.path().join("o"),
        &opts,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&other.join("casc_a.nii.gz").display().to_string())
            && e.contains(&image().display().to_string()),
        "{e}"
    );
}

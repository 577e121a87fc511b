//! nnunetv2 model folders of `scripts/goldens/v2_make.py` (fixtures/v2/models): plans with inheritance,
//! dataset.json with regions, checkpoints in `nnUNetTrainer.save_checkpoint`'s layout.

use std::path::{Path, PathBuf};

use nnu_artifacts::v2::{
    detect, ModelKind, NetworkClass, Nonlin, V2ModelFolder, V2Plans, CHECKPOINT_FINAL,
};
use nnu_artifacts::Error;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2/models")
}

fn plain() -> PathBuf {
    models().join("Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres")
}

#[test]
fn detects_v1_and_v2_folders() {
    assert_eq!(detect(plain()), ModelKind::V2);
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo/model");
    if v1.is_dir() {
        assert_eq!(detect(&v1), ModelKind::V1);
    }
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(detect(empty.path()), ModelKind::V1);
}

#[test]
fn opens_the_plain_model_with_two_folds() {
    let m = V2ModelFolder::open(plain()).unwrap();
    assert_eq!(m.folds.len(), 2);
    assert_eq!(m.folds[0].fold, Some(0));
    assert!(m.folds[1].checkpoint_final.is_some());
    assert_eq!(m.plans.transpose_forward, vec![0, 2, 1]);
    assert_eq!(
        m.plans.configuration_names,
        ["2d", "3d_cascade_fullres", "3d_fullres", "3d_lowres"]
    );
    let fg = &m.plans.foreground_intensity_properties_per_channel[&0];
    assert_eq!((fg.mean, fg.std), (101.25, 43.5));
    assert_eq!((fg.percentile_00_5, fg.percentile_99_5), (-40.0, 240.0));
    assert_eq!(m.dataset.channel_names[&0], "CT");
    assert_eq!(m.dataset.all_labels(), vec![0, 1, 2]);
    assert_eq!(m.dataset.num_segmentation_heads(), 3);
    assert_eq!(m.dataset.label_name(2), Some("tumour"));
    assert!(!m.dataset.has_regions());
}

#[test]
fn configurations_resolve_inheritance_and_type_the_network() {
    let m = V2ModelFolder::open(plain()).unwrap();
    let full = m.plans.configuration("3d_fullres").unwrap();
    let cascade = m.plans.configuration("3d_cascade_fullres").unwrap();
    assert_eq!(cascade.patch_size, full.patch_size);
    assert_eq!(cascade.architecture, full.architecture);
    assert_eq!(cascade.previous_stage.as_deref(), Some("3d_lowres"));
    assert_eq!(full.previous_stage, None);
    let low = m.plans.configuration("3d_lowres").unwrap();
    assert_eq!(low.next_stage, vec!["3d_cascade_fullres".to_string()]);
    assert_eq!(full.spacing, vec![3.0, 1.1, 0.9]);
    assert_eq!(full.resampling_fn_data.0, "resample_data_or_seg_to_shape");
    assert_eq!(full.resampling_fn_data.1.order, 3);
    assert_eq!(full.resampling_fn_probabilities.1.order, 1);
    assert_eq!(full.resampling_fn_seg.1.force_separate_z, None);
    let net = full.network().unwrap();
    assert_eq!(net.class, NetworkClass::PlainConvUNet);
    assert_eq!(net.ndim, 3);
    assert_eq!(net.features_per_stage, vec![4, 8, 12, 16]);
    assert_eq!(net.strides[1], vec![1, 2, 2]);
    assert_eq!(net.kernel_sizes[0], vec![1, 3, 3]);
    assert!(net.conv_bias);
    assert_eq!(net.nonlin, Nonlin::LeakyRelu(0.01));
    let two_d = m.plans.configuration("2d").unwrap();
    assert_eq!(two_d.ndim(), 2);
    assert_eq!(two_d.network().unwrap().ndim, 2);
    let err = m.plans.configuration("3d_nope").unwrap_err().to_string();
    assert!(
        err.contains("3d_fullres") && err.contains("3d_nope"),
        "{err}"
    );
}

#[test]
fn resenc_and_regions() {
    let r = V2ModelFolder::open(
        models().join("Dataset902_ResEnc/nnUNetTrainer__nnUNetResEncUNetMPlans__3d_fullres"),
    )
    .unwrap();
    let c = r.plans.configuration("3d_fullres").unwrap();
    assert_eq!(c.use_mask_for_norm, vec![true, false]);
    let net = c.network().unwrap();
    assert_eq!(net.class, NetworkClass::ResidualEncoderUNet);
    assert_eq!(net.n_conv_per_stage, vec![1, 2, 2, 2]);

    let g = V2ModelFolder::open(
        models().join("Dataset903_Regions/nnUNetTrainer__nnUNetPlans__3d_fullres"),
    )
    .unwrap();
    assert!(g.dataset.has_regions());
    assert_eq!(g.dataset.regions_class_order, Some(vec![1, 2]));
    let regions = g.dataset.regions();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0], ("whole".to_string(), vec![1, 2]));
    assert_eq!(regions[1], ("core".to_string(), vec![2]));
    assert_eq!(g.dataset.num_segmentation_heads(), 2);
}

#[test]
fn v2_checkpoint_reads_network_weights_and_trainer_entries() {
    let m = V2ModelFolder::open(plain()).unwrap();
    let c = m.checkpoint(Some(1), CHECKPOINT_FINAL).unwrap();
    assert_eq!(c.epoch, Some(2));
    let v2 = c.v2.as_ref().expect("v2 entries");
    assert_eq!(v2.trainer_name.as_deref(), Some("nnUNetTrainer"));
    assert_eq!(v2.inference_allowed_mirroring_axes, Some(vec![0, 1, 2]));
    assert_eq!(v2.configuration.as_deref(), Some("3d_fullres"));
    assert_eq!(v2.fold.as_deref(), Some("1"));
    let w = c
        .get("encoder.stages.0.0.convs.0.conv.weight")
        .expect("first conv");
    assert_eq!(w.shape, vec![4, 1, 1, 3, 3]);
    // The alias inside all_modules holds the same values.
    let alias = c
        .get("encoder.stages.0.0.convs.0.all_modules.0.weight")
        .expect("alias");
    assert_eq!(alias.data, w.data);
    let r = V2ModelFolder::open(
        models().join("Dataset902_ResEnc/nnUNetTrainer__nnUNetResEncUNetMPlans__3d_fullres"),
    )
    .unwrap();
    let c = r.checkpoint(Some(0), CHECKPOINT_FINAL).unwrap();
    assert_eq!(
        c.v2.unwrap().inference_allowed_mirroring_axes,
        Some(vec![1, 2])
    );
}

#[test]
fn errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = V2ModelFolder::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("plans.json"), "{e}");
    std::fs::copy(plain().join("plans.json"), dir.path().join("plans.json")).unwrap();
    let e = V2ModelFolder::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("dataset.json"), "{e}");
    std::fs::write(
        dir.path().join("dataset.json"),
        br#"{"channel_names": {"0": "CT"}, "labels": {"liver": 1}}"#,
    )
    .unwrap();
    let e = V2ModelFolder::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("dataset.json") && e.contains("labels/background"),
        "{e}"
    );
    std::fs::copy(
        plain().join("dataset.json"),
        dir.path().join("dataset.json"),
    )
    .unwrap();
    let e = V2ModelFolder::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("fold_0") && e.contains("checkpoint_final.pth"),
        "{e}"
    );

    let mut plans: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plain().join("plans.json")).unwrap()).unwrap();
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["norm_op"] =
        "torch.nn.BatchNorm3d".into();
    let p = V2Plans::from_json(&plans).unwrap();
    let e = p
        .configuration("3d_fullres")
        .unwrap()
        .network()
        .unwrap_err();
    assert!(
        matches!(&e, Error::BadValue { key, .. } if key.ends_with("arch_kwargs/norm_op")),
        "{e}"
    );
    plans["configurations"]["3d_fullres"]["inherits_from"] = "3d_cascade_fullres".into();
    let p = V2Plans::from_json(&plans).unwrap();
    let e = p
        .configuration("3d_cascade_fullres")
        .unwrap_err()
        .to_string();
    assert!(e.contains("circular"), "{e}");
}

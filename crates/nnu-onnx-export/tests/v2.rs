//! nnunetv2 networks (PlainConvUNet, ResidualEncoderUNet, 2-D, region-based) exported from the checkpoints
//! of `scripts/goldens/v2_make.py` and run in tract against PyTorch's outputs (fixtures/v2/net).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{max_abs_diff, read_npy_f32, run_tract};
use nnu_artifacts::v2::{V2ModelFolder, CHECKPOINT_FINAL};
use nnu_onnx_export::from_artifacts::load_v2_model_folder;
use nnu_onnx_export::v2::export_v2;
use nnu_onnx_export::ExportOptions;

const TOL: f32 = 1e-4;

/// The ops the native engine runs as well as tract.
const ALLOWED_OPS: [&str; 7] = [
    "Conv",
    "InstanceNormalization",
    "LeakyRelu",
    "Relu",
    "ConvTranspose",
    "Concat",
    "Add",
];

fn v2_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(v2_root().join("net"))
        .expect("fixtures/v2/net")
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert_eq!(v.len(), 5, "golden cases");
    v
}

#[test]
fn v2_networks_match_pytorch_in_tract() {
    for dir in cases() {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
        let model = V2ModelFolder::open(v2_root().join(meta["model"].as_str().unwrap())).unwrap();
        let fold = meta["fold"].as_u64().unwrap() as usize;
        let loaded = load_v2_model_folder(&model, Some(fold), CHECKPOINT_FINAL).unwrap();
        assert_eq!(
            loaded.configuration,
            meta["configuration"].as_str().unwrap()
        );
        assert_eq!(loaded.trainer, "nnUNetTrainer");
        // With every head in the graph, the initializers are the module's parameters (plus the pooling
        // weights of the residual skips).
        let all_heads = export_v2(
            &loaded.arch,
            &loaded.patch_size,
            loaded.state_dict.clone(),
            &ExportOptions {
                deep_supervision: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            all_heads.num_parameters as u64,
            meta["parameters"].as_u64().unwrap() + extra_pool_weights(&all_heads.model),
            "{}: parameters",
            dir.display()
        );
        let exported = export_v2(
            &loaded.arch,
            &loaded.patch_size,
            loaded.state_dict,
            &ExportOptions::default(),
        )
        .unwrap();
        let ops: BTreeSet<&str> = exported
            .model
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(
            ops.iter().all(|o| ALLOWED_OPS.contains(o)),
            "{}: ops {ops:?}",
            dir.display()
        );
        let (shape, input) = read_npy_f32(&dir.join("input.npy"));
        let outs = run_tract(&exported.to_bytes(), &shape, &input);
        assert_eq!(outs.len(), 1);
        let (rshape, rdata) = read_npy_f32(&dir.join("output.npy"));
        assert_eq!(outs[0].0, rshape, "{}", dir.display());
        let d = max_abs_diff(&outs[0].1, &rdata);
        println!(
            "{}: {:?} ops {ops:?}: max abs diff {d:.3e}",
            dir.file_name().unwrap().to_string_lossy(),
            rshape
        );
        assert!(d <= TOL, "{}: {d} > {TOL}", dir.display());
    }
}

/// Initializers that are no state_dict tensor: the average pooling of pool-only residual skips, exported
/// as a conv weight (`*.avgpool_as_conv.weight`); the folded projection keeps its key but grows by the
/// pooling window.
fn extra_pool_weights(model: &nnu_onnx_export::pb::ModelProto) -> u64 {
    let g = model.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .map(|t| {
            let n: i64 = t.dims.iter().product();
            if t.name.ends_with("avgpool_as_conv.weight") {
                n as u64
            } else if t.name.contains(".skip.1.conv.weight") {
                let window: i64 = t.dims[2..].iter().product();
                (n - n / window) as u64
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn deep_supervision_adds_one_head_per_decoder_stage() {
    let model = V2ModelFolder::open(
        v2_root().join("models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres"),
    )
    .unwrap();
    let loaded = load_v2_model_folder(&model, Some(0), CHECKPOINT_FINAL).unwrap();
    let opts = ExportOptions {
        deep_supervision: true,
        ..Default::default()
    };
    let e = export_v2(&loaded.arch, &loaded.patch_size, loaded.state_dict, &opts).unwrap();
    let names: Vec<&str> = e.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["class", "head_1", "head_2"]);
    assert_eq!(e.outputs[0].shape, vec![3, 8, 24, 32]);
    assert_eq!(e.outputs[1].shape, vec![3, 8, 12, 16]);
    assert_eq!(e.outputs[2].shape, vec![3, 4, 6, 8]);
}

#[test]
fn missing_and_extra_tensors_are_named() {
    let model = V2ModelFolder::open(
        v2_root().join("models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d"),
    )
    .unwrap();
    let loaded = load_v2_model_folder(&model, Some(0), CHECKPOINT_FINAL).unwrap();
    let mut sd = nnu_onnx_export::StateDict::new();
    for (k, t) in loaded.state_dict.iter() {
        if k != "decoder.transpconvs.1.bias" {
            sd.insert(k, t.shape.clone(), t.data.clone()).unwrap();
        }
    }
    let e = export_v2(
        &loaded.arch,
        &loaded.patch_size,
        sd,
        &ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("decoder.transpconvs.1.bias"), "{e}");
    let mut sd = loaded.state_dict.clone();
    sd.insert("decoder.extra.weight", vec![1], vec![0.0])
        .unwrap();
    let e = export_v2(
        &loaded.arch,
        &loaded.patch_size,
        sd,
        &ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("decoder.extra.weight"), "{e}");
    let e = export_v2(
        &loaded.arch,
        &[30, 32],
        loaded.state_dict,
        &ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("divisible"), "{e}");
}

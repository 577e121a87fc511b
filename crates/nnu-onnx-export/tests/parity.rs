//! Parity of our ONNX export with PyTorch on the reference networks (`../shared/reference`).
//!
//! Each folder holds a real checkpoint and PyTorch's outputs for `input.npy`; our graph, run in
//! tract, must reproduce every output within 1e-4 max abs (the README's bar; onnxruntime on
//! torch's own export reaches 3e-5).

mod common;

use common::*;
use nnu_onnx_export::{export_model, ExportOptions, Family, NetworkSpec, StateDict};
use prost::Message;

const TOL: f32 = 1e-4;

/// Spec from meta.json and the state_dict from torch's export's initializers (dev-time source).
fn reference_case(name: &str) -> (NetworkSpec, StateDict) {
    let dir = reference(name);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    let list = |k: &str| -> Vec<Vec<usize>> { serde_json::from_value(meta[k].clone()).unwrap() };
    let spec = NetworkSpec {
        family: if meta["family"] == "unetpp" {
            Family::UnetPlusPlus
        } else {
            Family::Unet
        },
        patch_size: serde_json::from_value(meta["patch"].clone()).unwrap(),
        pool_op_kernel_sizes: list("pools"),
        conv_kernel_sizes: list("convs"),
        conv_per_stage: 2,
    };
    let bytes = std::fs::read(dir.join("model_ds.onnx")).unwrap();
    let model = nnu_onnx_export::pb::ModelProto::decode(&bytes[..]).unwrap();
    let mut sd = StateDict::new();
    for t in model.graph.unwrap().initializer {
        let data = t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        sd.insert(t.name, t.dims.iter().map(|&d| d as usize).collect(), data)
            .unwrap();
    }
    (spec, sd)
}

fn check_parity(name: &str, deep_supervision: bool) {
    let dir = reference(name);
    let (spec, sd) = reference_case(name);
    let opts = ExportOptions {
        deep_supervision,
        ..Default::default()
    };
    let exported = export_model(&spec, sd, &opts).unwrap();
    let (shape, input) = read_npy_f32(&dir.join("input.npy"));
    let outs = run_tract(&exported.to_bytes(), &shape, &input);
    let expected_count = if deep_supervision {
        spec.num_pool().min(5)
    } else {
        1
    };
    let expected_count = if spec.family == Family::Unet && deep_supervision {
        spec.num_pool()
    } else {
        expected_count
    };
    assert_eq!(outs.len(), expected_count, "{name}: output count");
    for (k, (oshape, odata)) in outs.iter().enumerate() {
        let (rshape, rdata) = read_npy_f32(&dir.join(format!("output_{k}.npy")));
        assert_eq!(oshape, &rshape, "{name}: output {k} shape");
        let d = max_abs_diff(odata, &rdata);
        println!(
            "{name} ds={deep_supervision} output_{k} ({}): max abs diff {d:.3e}",
            exported.outputs[k].name
        );
        assert!(
            d <= TOL,
            "{name}: output_{k} differs from PyTorch by {d} > {TOL}"
        );
    }
}

#[test]
fn unetpp_small_matches_pytorch_all_heads() {
    check_parity("unetpp-small", true);
}

#[test]
fn unet_small_matches_pytorch_all_heads() {
    check_parity("unet-small", true);
}

#[test]
fn unetpp_small_final_head_only() {
    check_parity("unetpp-small", false);
}

#[test]
fn unet_small_final_head_only() {
    check_parity("unet-small", false);
}

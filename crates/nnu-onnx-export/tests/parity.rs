//! Parity of our ONNX export with PyTorch on the reference networks (`../shared/reference`).
//!
//! Each folder holds a real checkpoint and PyTorch's outputs for `input.npy`; our graph, run in
//! tract, must reproduce every output within 1e-4 max abs (the README's bar; onnxruntime on
//! torch's own export reaches 3e-5).

mod common;

use common::*;

const TOL: f32 = 1e-4;

fn check(name: &str, deep_supervision: bool) {
    let dir = reference(name);
    let spec = spec_from_meta(&dir);
    let sd = state_dict_from_torch_onnx(&dir.join("model_ds.onnx"));
    check_outputs(name, &dir, &spec, sd, deep_supervision, TOL);
}

#[test]
fn unetpp_small_matches_pytorch_all_heads() {
    check("unetpp-small", true);
}

#[test]
fn unet_small_matches_pytorch_all_heads() {
    check("unet-small", true);
}

#[test]
fn unetpp_small_final_head_only() {
    check("unetpp-small", false);
}

#[test]
fn unet_small_final_head_only() {
    check("unet-small", false);
}

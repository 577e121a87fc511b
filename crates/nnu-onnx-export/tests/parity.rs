//! Parity of our ONNX export with PyTorch on the reference networks (`fixtures/reference`, made by `scripts/goldens/reference_make.py`).
//!
//! Each folder holds a real nnU-Net v1 model folder (plans.pkl, fold_0 checkpoint and trainer
//! pickle) and PyTorch's outputs for `input.npy`. The export goes through `nnu-artifacts` exactly
//! as the tool does; our graph, run in tract, must reproduce every output within 1e-4 max abs (the
//! README's bar; onnxruntime on torch's own export reaches 3e-5).

mod common;

use common::*;
use nnu_onnx_export::from_artifacts::load_model_folder;
use nnu_onnx_export::Family;

const TOL: f32 = 1e-4;

fn check(name: &str, family: Family, deep_supervision: bool) {
    let dir = reference(name);
    let loaded = load_model_folder(&dir, Some(0), "model_final_checkpoint", None).unwrap();
    assert_eq!(
        loaded.spec.family, family,
        "{name}: family from the trainer pickle"
    );
    assert_eq!(
        loaded.spec,
        spec_from_meta(&dir),
        "{name}: plans agree with meta.json"
    );
    check_outputs(
        name,
        &dir,
        &loaded.spec,
        loaded.state_dict,
        deep_supervision,
        TOL,
    );
}

#[test]
fn unetpp_small_matches_pytorch_all_heads() {
    check("unetpp-small", Family::UnetPlusPlus, true);
}

#[test]
fn unet_small_matches_pytorch_all_heads() {
    check("unet-small", Family::Unet, true);
}

#[test]
fn unetpp_small_final_head_only() {
    check("unetpp-small", Family::UnetPlusPlus, false);
}

#[test]
fn unet_small_final_head_only() {
    check("unet-small", Family::Unet, false);
}

/// The checkpoint's tensors are the ones torch exported, bit for bit, in the same order.
#[test]
fn checkpoint_state_dict_equals_torch_export_initializers() {
    for name in ["unetpp-small", "unet-small"] {
        let dir = reference(name);
        let ours = load_model_folder(&dir, Some(0), "model_final_checkpoint", None)
            .unwrap()
            .state_dict;
        let torch = state_dict_from_torch_onnx(&dir.join("model_ds.onnx"));
        assert_eq!(ours.len(), torch.len(), "{name}");
        for (k, t) in torch.iter() {
            assert_eq!(ours.get(k), Some(t), "{name}: {k}");
        }
    }
}

#[test]
fn missing_checkpoint_names_the_file() {
    let dir = reference("unet-small");
    let err =
        load_model_folder(&dir, Some(3), "model_final_checkpoint", Some(Family::Unet)).unwrap_err();
    assert!(err.to_string().contains("fold_3"), "{err}");
}

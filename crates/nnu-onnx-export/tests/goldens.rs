//! Goldens of `scripts/goldens/export_make.py` (fixtures/export): the PyTorch modules' state_dict
//! layouts, and PyTorch outputs of small networks with anisotropic kernels, 2D, and 1 or 3 convs
//! per stage.

mod common;

use common::*;
use nnu_onnx_export::{
    export_model, synthetic_shapes, ExportError, ExportOptions, Family, NetworkSpec, StateDict,
    SyntheticConfig,
};

const TOL: f32 = 1e-4;

fn layouts() -> Vec<serde_json::Value> {
    let bytes =
        std::fs::read(fixtures().join("layouts.json")).expect("fixtures/export/layouts.json");
    serde_json::from_slice(&bytes).expect("json")
}

fn spec_of(l: &serde_json::Value) -> NetworkSpec {
    NetworkSpec {
        family: if l["family"] == "unetpp" {
            Family::UnetPlusPlus
        } else {
            Family::Unet
        },
        patch_size: serde_json::from_value(l["patch"].clone()).unwrap(),
        pool_op_kernel_sizes: serde_json::from_value(l["pools"].clone()).unwrap(),
        conv_kernel_sizes: serde_json::from_value(l["convs"].clone()).unwrap(),
        conv_per_stage: l["conv_per_stage"].as_u64().unwrap() as usize,
    }
}

/// The synthetic layout is the PyTorch constructor's, key for key, shape for shape, in order.
#[test]
fn synthetic_layouts_match_pytorch_constructors() {
    for l in layouts() {
        let name = l["name"].as_str().unwrap();
        let cfg = SyntheticConfig {
            input_channels: l["in_channels"].as_u64().unwrap() as usize,
            base_num_features: l["base"].as_u64().unwrap() as usize,
            max_num_features: l["max"].as_u64().unwrap_or(320) as usize,
            num_classes: l["classes"].as_u64().unwrap() as usize,
            seed: 0,
        };
        let ours = synthetic_shapes(&spec_of(&l), &cfg).unwrap();
        let theirs: Vec<(String, Vec<usize>)> =
            serde_json::from_value(l["state_dict"].clone()).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: key count");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "{name}: state_dict entry");
        }
        let params: usize = ours.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(
            params as u64,
            l["params"].as_u64().unwrap(),
            "{name}: parameter count"
        );
    }
}

/// The graph built from the full Task003 layouts accepts exactly those keys (shapes only; no
/// weights are generated, so this stays fast).
#[test]
fn task003_layouts_export_without_leftovers() {
    for l in layouts()
        .iter()
        .filter(|l| l["name"].as_str().unwrap().starts_with("task003"))
    {
        let mut sd = StateDict::new();
        for (k, s) in
            serde_json::from_value::<Vec<(String, Vec<usize>)>>(l["state_dict"].clone()).unwrap()
        {
            // One value per tensor keeps memory small; shapes are what the builder checks.
            let n = s.iter().product();
            sd.insert(k, s, vec![0.0; n]).unwrap();
        }
        let exported = export_model(
            &spec_of(l),
            sd,
            &ExportOptions {
                deep_supervision: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            exported.num_parameters as u64,
            l["params"].as_u64().unwrap()
        );
        assert_eq!(exported.outputs[0].shape, vec![3, 128, 128, 128]);
    }
}

fn small_case(name: &str) {
    let dir = fixtures().join(name);
    let spec = spec_from_meta(&dir);
    let sd = state_dict_from_torch_onnx(&dir.join("model.onnx"));
    check_outputs(name, &dir, &spec, sd.clone(), true, TOL);
    check_outputs(name, &dir, &spec, sd, false, TOL);
}

#[test]
fn unet_anisotropic_three_convs_per_stage_matches_pytorch() {
    small_case("unet_aniso_3conv");
}

#[test]
fn unetpp_anisotropic_one_conv_per_stage_matches_pytorch() {
    small_case("unetpp_aniso_1conv");
}

#[test]
fn unetpp_2d_matches_pytorch() {
    small_case("unetpp_2d");
}

fn small_unetpp() -> (NetworkSpec, StateDict) {
    let dir = fixtures().join("unetpp_aniso_1conv");
    (
        spec_from_meta(&dir),
        state_dict_from_torch_onnx(&dir.join("model.onnx")),
    )
}

fn rebuild(sd: &StateDict, f: impl Fn(&str, &[usize]) -> Option<Vec<usize>>) -> StateDict {
    let mut out = StateDict::new();
    for (k, t) in sd.iter() {
        if let Some(shape) = f(k, &t.shape) {
            let n = shape.iter().product();
            out.insert(k, shape, vec![0.5; n]).unwrap();
        }
    }
    out
}

#[test]
fn missing_key_is_named() {
    let (spec, sd) = small_unetpp();
    let sd = rebuild(&sd, |k, s| {
        (k != "loc2.1.0.blocks.0.instnorm.bias").then(|| s.to_vec())
    });
    let err = export_model(&spec, sd, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ExportError::MissingKey { key } if key == "loc2.1.0.blocks.0.instnorm.bias"),
        "{err}"
    );
    assert!(err.to_string().contains("loc2.1.0.blocks.0.instnorm.bias"));
}

#[test]
fn extra_key_is_named() {
    let (spec, mut sd) = small_unetpp();
    sd.insert("seg_outputs.5.weight", vec![2, 2, 1, 1, 1], vec![0.0; 4])
        .unwrap();
    let err = export_model(&spec, sd, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ExportError::UnexpectedKey { key, count: 1 } if key == "seg_outputs.5.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shapes_are_named() {
    let (spec, sd) = small_unetpp();
    // Input channels of a decoder conv that do not match the concatenation.
    let bad = rebuild(&sd, |k, s| {
        let mut s = s.to_vec();
        if k == "loc0.3.0.blocks.0.conv.weight" {
            s[1] += 1;
        }
        Some(s)
    });
    let err = export_model(&spec, bad, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ExportError::ShapeMismatch { key, .. } if key == "loc0.3.0.blocks.0.conv.weight"),
        "{err}"
    );
    // A kernel that disagrees with the plans.
    let mut spec2 = spec.clone();
    spec2.conv_kernel_sizes[0] = vec![3, 3, 3];
    let err = export_model(&spec2, sd.clone(), &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ExportError::ShapeMismatch { key, found, .. }
            if key == "conv_blocks_context.0.blocks.0.conv.weight" && found[2..] == [1, 3, 3]),
        "{err}"
    );
    // A transposed conv whose kernel is not the pool kernel.
    let mut spec3 = spec.clone();
    spec3.pool_op_kernel_sizes[4] = vec![2, 1, 1];
    spec3.patch_size = vec![16, 32, 16];
    let err = export_model(&spec3, sd.clone(), &ExportOptions::default()).unwrap_err();
    assert!(matches!(&err, ExportError::ShapeMismatch { .. }), "{err}");
    // A head with a different class count than the others.
    let bad = rebuild(&sd, |k, s| {
        let mut s = s.to_vec();
        if k == "seg_outputs.3.weight" {
            s[0] = 5;
        }
        Some(s)
    });
    let err = export_model(&spec, bad, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, ExportError::ShapeMismatch { key, .. } if key == "seg_outputs.3.weight"),
        "{err}"
    );
}

#[test]
fn options_shape_the_interface() {
    let (spec, sd) = small_unetpp();
    let opts = ExportOptions {
        opset: 13,
        deep_supervision: false,
        batch: nnu_onnx_export::BatchDim::Fixed(1),
    };
    let exported = export_model(&spec, sd.clone(), &opts).unwrap();
    assert_eq!(exported.model.ir_version, 7);
    assert_eq!(exported.model.opset_import[0].version, 13);
    let graph = exported.model.graph.as_ref().unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, "image");
    assert_eq!(
        graph
            .output
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["class"]
    );
    // Unused heads leave no initializers behind.
    assert!(graph
        .initializer
        .iter()
        .all(|t| !t.name.starts_with("seg_outputs.") || t.name == "seg_outputs.0.weight"));
    assert_eq!(exported.num_classes, 2);
    assert_eq!(exported.input_channels, 1);
    let err = export_model(
        &spec,
        sd,
        &ExportOptions {
            opset: 7,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::UnsupportedOpset(7)));
}

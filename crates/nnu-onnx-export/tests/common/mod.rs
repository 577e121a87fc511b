//! Shared helpers of the integration tests: reference folders, `.npy` reading, running in tract.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

/// `fixtures/reference` of the workspace: small nnU-Net v1 model folders with random weights and
/// PyTorch's outputs (made by `scripts/goldens/reference_make.py`).
pub fn reference_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference")
}

/// A reference model folder of `fixtures/reference` (committed, so every test that uses it runs).
pub fn reference(name: &str) -> PathBuf {
    let p = reference_root().join(name);
    assert!(
        p.join("meta.json").is_file(),
        "{}: reference folder missing (committed under fixtures/)",
        p.display()
    );
    p
}

/// Reads a little-endian f32 C-order `.npy` into (shape, data) ([`nnu_artifacts::numpy::read_npy_f32`]).
pub fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    nnu_artifacts::numpy::read_npy_f32(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs serialised ONNX bytes in tract on one input; returns each output as (shape, data).
pub fn run_tract(onnx: &[u8], shape: &[usize], data: &[f32]) -> Vec<(Vec<usize>, Vec<f32>)> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract parses the model")
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .expect("input fact")
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("runnable");
    let input = Tensor::from_shape(shape, data).expect("input tensor");
    let outputs = model
        .run(tvec!(input.into()))
        .expect("tract runs the model");
    outputs
        .iter()
        .map(|t| {
            let v = t.to_plain_array_view::<f32>().expect("f32 output");
            (v.shape().to_vec(), v.iter().copied().collect())
        })
        .collect()
}

/// Maximum absolute difference; panics on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `fixtures/export` of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/export")
}

/// The network description in a golden folder's `meta.json` (`family`, `patch`, `pools`, `convs`,
/// optional `conv_per_stage`, default 2).
pub fn spec_from_meta(dir: &Path) -> nnu_onnx_export::NetworkSpec {
    use nnu_onnx_export::{Family, NetworkSpec};
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).expect("meta.json"))
            .expect("json");
    let get = |k: &str| meta[k].clone();
    NetworkSpec {
        family: if meta["family"] == "unetpp" {
            Family::UnetPlusPlus
        } else {
            Family::Unet
        },
        patch_size: serde_json::from_value(get("patch")).expect("patch"),
        pool_op_kernel_sizes: serde_json::from_value(get("pools")).expect("pools"),
        conv_kernel_sizes: serde_json::from_value(get("convs")).expect("convs"),
        conv_per_stage: meta["conv_per_stage"].as_u64().unwrap_or(2) as usize,
    }
}

/// The initializers of a `torch.onnx.export` file as a state_dict (torch keeps the state_dict keys
/// as initializer names when nothing is folded, which holds for these networks).
pub fn state_dict_from_torch_onnx(path: &Path) -> nnu_onnx_export::StateDict {
    use nnu_onnx_export::pb::Message;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = nnu_onnx_export::pb::ModelProto::decode(&bytes[..]).expect("valid ModelProto");
    let mut sd = nnu_onnx_export::StateDict::new();
    for t in model.graph.expect("graph").initializer {
        assert!(
            !t.raw_data.is_empty(),
            "{}: initializer {} not in raw_data",
            path.display(),
            t.name
        );
        let data = t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        sd.insert(t.name, t.dims.iter().map(|&d| d as usize).collect(), data)
            .expect("well-formed");
    }
    sd
}

/// Exports `spec` with `sd` (deep supervision on), runs it in tract on `dir/input.npy` and checks
/// every `dir/output_K.npy` within `tol`; returns the max abs differences.
pub fn check_outputs(
    label: &str,
    dir: &Path,
    spec: &nnu_onnx_export::NetworkSpec,
    sd: nnu_onnx_export::StateDict,
    deep_supervision: bool,
    tol: f32,
) -> Vec<f32> {
    let opts = nnu_onnx_export::ExportOptions {
        deep_supervision,
        ..Default::default()
    };
    let exported = nnu_onnx_export::export_model(spec, sd, &opts).expect("export");
    let (shape, input) = read_npy_f32(&dir.join("input.npy"));
    let outs = run_tract(&exported.to_bytes(), &shape, &input);
    let n_expected = if deep_supervision {
        (0..)
            .take_while(|k| dir.join(format!("output_{k}.npy")).is_file())
            .count()
    } else {
        1
    };
    assert_eq!(outs.len(), n_expected, "{label}: output count");
    let mut diffs = Vec::new();
    for (k, (oshape, odata)) in outs.iter().enumerate() {
        let (rshape, rdata) = read_npy_f32(&dir.join(format!("output_{k}.npy")));
        assert_eq!(oshape, &rshape, "{label}: output {k} shape");
        assert_eq!(
            &oshape[1..],
            exported.outputs[k].shape.as_slice(),
            "{label}: declared shape"
        );
        let d = max_abs_diff(odata, &rdata);
        println!(
            "{label} ds={deep_supervision} output_{k} ({}): max abs diff {d:.3e}",
            exported.outputs[k].name
        );
        assert!(
            d <= tol,
            "{label}: output_{k} differs from PyTorch by {d} > {tol}"
        );
        diffs.push(d);
    }
    diffs
}

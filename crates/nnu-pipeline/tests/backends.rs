//! Loading CPU backends per fold: the native backend straight from a checkpoint (no `model.onnx`, the
//! network built in memory by `nnu-onnx-export`) against PyTorch's output of the reference networks, and
//! the same from tract; bf16 with tract is refused.

use std::path::{Path, PathBuf};

use ndarray::Array5;
use nnu_engine::Precision;
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::run::{load_cpu_backends, BackendKind, CpuBackendOptions};

/// A model folder of `fixtures/reference` (made by `scripts/goldens/reference_make.py`).
fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/reference")
        .join(name)
}

fn read_f32(path: &Path, shape: (usize, usize, usize, usize, usize)) -> Array5<f32> {
    let v = nnu_bins::read_f32_file(path).unwrap_or_else(|e| panic!("{e}"));
    Array5::from_shape_vec(shape, v).expect("reference file size")
}

fn check_from_checkpoint(name: &str, kind: BackendKind, expected_backend: &str) {
    let dir = reference(name);
    assert!(
        !dir.join("fold_0/model.onnx").exists(),
        "the fold must have no model.onnx for this test"
    );
    let model = ModelSpec::open(&dir).expect("model folder");
    let mut backends = load_cpu_backends(&model, &[0], None, &CpuBackendOptions::new(kind, 2))
        .expect("backend from the checkpoint");
    assert_eq!(backends.len(), 1);
    let b = &mut backends[0];
    assert_eq!(b.name(), expected_backend);
    let input = read_f32(&dir.join("input.bin"), (1, 1, 32, 32, 32));
    let expected = read_f32(&dir.join("output_class.bin"), (1, 3, 32, 32, 32));
    let got = b.run(input.view()).expect("run");
    let diff = got
        .iter()
        .zip(expected.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{name} from its checkpoint, {expected_backend}: max abs to PyTorch {diff:e}");
    assert!(diff <= 1e-4, "{name}: {diff}");
}

#[test]
fn native_from_checkpoint_matches_pytorch_unetpp() {
    check_from_checkpoint("unetpp-small", BackendKind::Auto, "native");
}

#[test]
fn native_from_checkpoint_matches_pytorch_unet() {
    check_from_checkpoint("unet-small", BackendKind::Native, "native");
}

#[test]
fn tract_from_checkpoint_matches_pytorch() {
    check_from_checkpoint("unet-small", BackendKind::Tract, "tract");
}

#[test]
fn bf16_with_tract_is_refused() {
    let dir = reference("unet-small");
    let model = ModelSpec::open(&dir).expect("model folder");
    let opts = CpuBackendOptions {
        kind: BackendKind::Tract,
        threads: 1,
        precision: Precision::Bf16,
    };
    let err = load_cpu_backends(&model, &[0], None, &opts)
        .err()
        .expect("bf16 with tract");
    assert!(err.to_string().contains("bf16"), "{err}");
}

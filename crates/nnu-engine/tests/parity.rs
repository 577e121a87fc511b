//! Parity of the tract backend with PyTorch on the reference networks in `fixtures/reference/`
//! (see its README: `output_class.bin` is PyTorch's final head for `input.bin`; onnxruntime reproduces
//! it to 3e-5, we ask for 1e-4 max abs).

// A build without the `tract` feature has no tract backend to test.
#![cfg(feature = "tract")]

use std::path::{Path, PathBuf};

use ndarray::{s, Array5, Axis};
use nnu_engine::{Backend, EngineError, TractBackend, TractOptions};

const TOLERANCE: f32 = 1e-4;

/// A model folder of `fixtures/reference` (made by `scripts/goldens/reference_make.py`).
fn reference_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/reference")
        .join(name)
}

fn read_f32(path: &Path, shape: (usize, usize, usize, usize, usize)) -> Array5<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Array5::from_shape_vec(shape, values).expect("reference file size")
}

fn max_abs_diff(a: &Array5<f32>, b: &Array5<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_parity(name: &str, threads: usize) {
    let dir = reference_dir(name);
    let mut backend = TractBackend::load(
        dir.join("model_ds.onnx"),
        &TractOptions::default().threads(threads),
    )
    .expect("load");
    assert_eq!(backend.patch_size(), [32, 32, 32]);
    assert_eq!(backend.input_channels(), 1);
    assert_eq!(backend.num_classes(), 3);
    assert_eq!(backend.max_batch(), 1);
    let input = read_f32(&dir.join("input.bin"), (1, 1, 32, 32, 32));
    let expected = read_f32(&dir.join("output_class.bin"), (1, 3, 32, 32, 32));
    let got = backend.run(input.view()).expect("run");
    let diff = max_abs_diff(&got, &expected);
    eprintln!("{name}, {threads} threads: max abs diff {diff:e}");
    assert!(
        diff <= TOLERANCE,
        "{name}, {threads} threads: max abs diff {diff}"
    );
    // The plan is reused: a second call gives the same result.
    let again = backend.run(input.view()).expect("second run");
    assert_eq!(got, again);
}

#[test]
fn unetpp_small_matches_pytorch() {
    check_parity("unetpp-small", 1);
}

#[test]
fn unet_small_matches_pytorch_two_threads() {
    check_parity("unet-small", 2);
}

/// Mirrored patches run as batches give the same logits as one by one, and the unmirrored one matches
/// PyTorch. (Batching is slower in tract, see `TractOptions::max_batch`; it must still be right.)
#[test]
fn batches_match_single_runs() {
    let dir = reference_dir("unet-small");
    let model = dir.join("model_ds.onnx");
    let input = read_f32(&dir.join("input.bin"), (1, 1, 32, 32, 32));
    let expected = read_f32(&dir.join("output_class.bin"), (1, 3, 32, 32, 32));
    // Mirrors m0, m3 (flip x and y), m7 (flip all three), in the recipe's numbering.
    let mirrors = [0usize, 3, 7];
    let mut batch = Array5::<f32>::zeros((mirrors.len(), 1, 32, 32, 32));
    for (i, m) in mirrors.into_iter().enumerate() {
        let mut v = input.slice(s![0, .., .., .., ..]);
        for (bit, axis) in [(1, 3), (2, 2), (4, 1)] {
            if m & bit != 0 {
                v.invert_axis(Axis(axis));
            }
        }
        batch.slice_mut(s![i, .., .., .., ..]).assign(&v);
    }
    let mut batched =
        TractBackend::load(&model, &TractOptions::default().threads(2).max_batch(2)).expect("load");
    assert_eq!(batched.max_batch(), 2);
    // run_all splits 3 patches into a batch of 2 and a batch of 1 (two plans).
    let all = batched.run_all(batch.view()).expect("batched run");
    assert_eq!(all.shape(), &[3, 3, 32, 32, 32]);
    let first = all.slice(s![0..1, .., .., .., ..]).to_owned();
    assert!(max_abs_diff(&first, &expected) <= TOLERANCE);

    let mut single = TractBackend::load(&model, &TractOptions::default().threads(1)).expect("load");
    let one_by_one = single.run_all(batch.view()).expect("run_all");
    let diff = max_abs_diff(&all, &one_by_one);
    assert!(diff <= TOLERANCE, "batched vs single: {diff}");
}

#[test]
fn patch_mismatch_names_the_model() {
    let dir = reference_dir("unet-small");
    let model = dir.join("model_ds.onnx");
    let err = TractBackend::load(&model, &TractOptions::default().patch_size([16, 32, 32]))
        .expect_err("wrong patch");
    match &err {
        EngineError::PatchMismatch {
            path,
            model: m,
            requested,
        } => {
            assert_eq!(path, &model);
            assert_eq!(*m, [32, 32, 32]);
            assert_eq!(*requested, [16, 32, 32]);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("model_ds.onnx"));
}

#[test]
fn wrong_input_shape_is_an_error() {
    let dir = reference_dir("unet-small");
    let mut backend = TractBackend::load(
        dir.join("model_ds.onnx"),
        &TractOptions::default().threads(1),
    )
    .expect("load");
    let wrong = Array5::<f32>::zeros((1, 1, 32, 32, 16));
    assert!(matches!(
        backend.run(wrong.view()),
        Err(EngineError::InputShape { .. })
    ));
    let too_many = Array5::<f32>::zeros((2, 1, 32, 32, 32));
    assert!(matches!(
        backend.run(too_many.view()),
        Err(EngineError::InputShape { .. })
    ));
}

#[test]
fn missing_or_garbage_model_is_a_load_error() {
    let err = TractBackend::load("/nonexistent/model.onnx", &TractOptions::default())
        .expect_err("missing file");
    assert!(matches!(err, EngineError::Load { .. }));
    assert!(err.to_string().contains("/nonexistent/model.onnx"));
    let dir = std::env::temp_dir().join(format!("nnu-engine-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf").expect("write");
    let err = TractBackend::load(&garbage, &TractOptions::default()).expect_err("garbage");
    assert!(matches!(err, EngineError::Load { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).ok();
}

//! Parity of the tract backend with PyTorch on the reference networks in `fixtures/reference/`
//! (see its README: `output_class.bin` is PyTorch's final head for `input.bin`; onnxruntime reproduces
//! it to 3e-5, we ask for 1e-4 max abs).

// A build without the `tract` feature has no tract backend to test.
#![cfg(feature = "tract")]

use ndarray::{s, Array5};
use nnu_engine::{Backend, EngineError, TractBackend, TractOptions};

mod common;
use common::{max_abs_diff, mirrored_batch, reference_dir, reference_io, TOLERANCE};

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
    let (input, expected) = reference_io(&dir);
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
    let (input, expected) = reference_io(&dir);
    // Mirrors m0, m3 (flip x and y), m7 (flip all three), in the recipe's numbering.
    let batch = mirrored_batch(&input, &[0, 3, 7]);
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

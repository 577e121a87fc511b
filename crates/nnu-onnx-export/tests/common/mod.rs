//! Shared helpers of the integration tests: reference folders, `.npy` reading, running in tract.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

/// `../shared/reference` beside the checkout (present for developers and CI; see
/// docs/architecture.md).
pub fn reference_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
}

/// A reference model folder; panics with a clear message when the reference set is absent.
pub fn reference(name: &str) -> PathBuf {
    let p = reference_root().join(name);
    assert!(
        p.join("meta.json").is_file(),
        "reference network folder {} is missing (expected ../shared/reference beside the checkout)",
        p.display()
    );
    p
}

/// Reads a little-endian f32 C-order `.npy` (format 1.0 or 2.0) into (shape, data).
pub fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not an .npy file",
        path.display()
    );
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).expect("npy header is ASCII");
    assert!(
        header.contains("'descr': '<f4'"),
        "{}: not little-endian f32: {header}",
        path.display()
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{}: Fortran order",
        path.display()
    );
    let shape_str = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("shape");
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("dim"))
        .collect();
    let data: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "{}: truncated",
        path.display()
    );
    (shape, data)
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

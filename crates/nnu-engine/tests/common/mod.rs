//! Shared by `parity.rs` and `native_parity.rs`: the reference networks of `fixtures/reference/` (made
//! by `scripts/goldens/reference_make.py`; `output_class.bin` is PyTorch's final head for `input.bin`)
//! and the comparisons the parity tests make against them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::{s, Array5, Axis};

/// The largest absolute difference to PyTorch (or between backends) that the parity tests accept.
pub const TOLERANCE: f32 = 1e-4;

/// A model folder of `fixtures/reference` (made by `scripts/goldens/reference_make.py`).
pub fn reference_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/reference")
        .join(name)
}

/// A raw little-endian f32 file read as an array of `shape`.
pub fn read_f32(path: &Path, shape: (usize, usize, usize, usize, usize)) -> Array5<f32> {
    let values = nnu_bins::read_f32_file(path).unwrap_or_else(|e| panic!("{e}"));
    Array5::from_shape_vec(shape, values).expect("reference file size")
}

/// A reference folder's input patch (1, 1, 32, 32, 32) and PyTorch's logits for it (1, 3, 32, 32, 32).
pub fn reference_io(dir: &Path) -> (Array5<f32>, Array5<f32>) {
    let input = read_f32(&dir.join("input.bin"), (1, 1, 32, 32, 32));
    let expected = read_f32(&dir.join("output_class.bin"), (1, 3, 32, 32, 32));
    (input, expected)
}

/// The largest absolute difference between two arrays of the same shape.
pub fn max_abs_diff(a: &Array5<f32>, b: &Array5<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A batch of the first patch of `input` under each of `mirrors`, in the recipe's numbering (bit 1
/// flips x, bit 2 y, bit 4 z: m3 flips x and y, m7 all three).
pub fn mirrored_batch(input: &Array5<f32>, mirrors: &[usize]) -> Array5<f32> {
    let (_, c, z, y, x) = input.dim();
    let mut batch = Array5::<f32>::zeros((mirrors.len(), c, z, y, x));
    for (i, &m) in mirrors.iter().enumerate() {
        let mut v = input.slice(s![0, .., .., .., ..]);
        for (bit, axis) in [(1, 3), (2, 2), (4, 1)] {
            if m & bit != 0 {
                v.invert_axis(Axis(axis));
            }
        }
        batch.slice_mut(s![i, .., .., .., ..]).assign(&v);
    }
    batch
}

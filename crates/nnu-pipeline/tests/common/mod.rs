//! Shared by the cascade parity tests (`cascade_v1.rs`, `cascade_v2.rs`): reading the goldens, the CPU
//! backend they run, and the comparisons of arrays and segmentations.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4};
use nnu_pipeline::run::{BackendKind, CpuBackendOptions};

/// `fixtures/cascade/SUB` of the workspace.
pub fn cascade_fixtures(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/cascade")
        .join(sub)
}

/// A 4-D f32 `.npy` golden.
pub fn read_npy(path: &Path) -> Array4<f32> {
    let a = nnu_pipeline::npy::read_npy_f32(path).unwrap_or_else(|e| panic!("{e}"));
    a.into_dimensionality().unwrap()
}

/// The native backend on two threads.
pub fn cpu() -> CpuBackendOptions {
    CpuBackendOptions::new(BackendKind::Native, 2)
}

/// The largest absolute difference of two arrays of the same shape.
pub fn max_abs(a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Two label files in the same frame (shape, origin within 1e-4, spacing within 1e-5), compared voxel by
/// voxel: (voxels that differ, near-ties (`tie`), differing voxels that are not near-ties).
pub fn compare(ours: &Path, theirs: &Path, tie: &Array3<bool>) -> (usize, usize, usize) {
    let a = nnu_volume::read_labels(ours).unwrap();
    let b = nnu_volume::read_labels(theirs).unwrap();
    assert_eq!(a.data.shape(), b.data.shape());
    assert_eq!(a.data.shape(), tie.shape());
    for k in 0..3 {
        assert!((a.geometry.origin[k] - b.geometry.origin[k]).abs() < 1e-4);
        assert!((a.geometry.spacing[k] - b.geometry.spacing[k]).abs() < 1e-5);
    }
    let (mut differ, mut ties, mut bad) = (0, 0, 0);
    ndarray::Zip::from(&a.data)
        .and(&b.data)
        .and(tie)
        .for_each(|&x, &y, &t| {
            ties += usize::from(t);
            if x != y {
                differ += 1;
                bad += usize::from(!t);
            }
        });
    (differ, ties, bad)
}

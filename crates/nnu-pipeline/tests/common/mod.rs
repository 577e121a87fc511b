//! Shared by the parity tests of this crate (`cascade_v1.rs`, `cascade_v2.rs`, `cascade_v2_regions.rs`,
//! `v2_predict.rs`, `bins_v2.rs`): reading the goldens and our outputs, the CPU backend they run, and the
//! comparisons of arrays and segmentations.
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

/// A golden's `meta.json` (or any JSON file).
pub fn meta(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// An nnunetv2 cascade input (image channels, then the one-hot of the previous stage) against the golden:
/// (largest difference of the first `image_channels` channels, one-hot values that differ).
pub fn compare_cascade_input(
    data: &Array4<f32>,
    want: &Array4<f32>,
    image_channels: usize,
) -> (f32, usize) {
    assert_eq!(data.shape(), want.shape());
    let k = image_channels;
    let image_diff = max_abs(
        &data.slice(ndarray::s![..k, .., .., ..]).to_owned(),
        &want.slice(ndarray::s![..k, .., .., ..]).to_owned(),
    );
    let onehot_differ = data
        .slice(ndarray::s![k.., .., .., ..])
        .iter()
        .zip(want.slice(ndarray::s![k.., .., .., ..]).iter())
        .filter(|(a, b)| a != b)
        .count();
    (image_diff, onehot_differ)
}

/// The previous stage read from the label file `seg` as `m` (an nnunetv2 cascade stage) takes it.
pub fn v2_prev_stage(
    m: &nnu_pipeline::v2::V2Model,
    seg: &Path,
) -> nnu_preprocessing::v2::V2PrevStage {
    let c = m.cascade.as_ref().unwrap();
    nnu_preprocessing::v2::V2PrevStage {
        seg: nnu_volume::read_volume(seg).unwrap().data,
        resampling: c.seg_resampling,
        foreground_labels: c.foreground_labels.clone(),
    }
}

/// The one array `probabilities` of an `.npz` (nnunetv2's `--save_probabilities` file or ours): its
/// shape and its values in C order.
pub fn npz_probabilities(path: &Path) -> (Vec<usize>, Vec<f32>) {
    use std::io::Read;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut z = zip::ZipArchive::new(f).unwrap();
    assert_eq!(z.len(), 1, "{}: one array", path.display());
    let mut bytes = Vec::new();
    z.by_name("probabilities.npy")
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let a = nnu_pipeline::npy::parse_npy_f32(path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    (a.shape().to_vec(), a.into_iter().collect())
}

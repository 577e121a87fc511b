//! Shared by the DICOM tests of `nnu-preprocess` and `nnu-postprocess` (`#[path]`): a stand-in for the
//! accelerator of the file path, and the comparison of a case's outputs with the streaming path's.
//!
//! The device runs the demo model's ONNX (`crates/nnu-demo/data/model/fold_0/model.onnx`) with
//! `nnu_engine::TractBackend` on every tile bin of a folder, one patch at a time, and writes each final head
//! as a `benchmark` dump (`STEM_1.bin`), the f32 logits bit for bit. The streaming path gets the same backend,
//! so the two paths run the same network on the same tiles and merge with the same code: segmentations are
//! expected to be identical and probabilities equal up to [`PROB_TOL`] (room only for a float
//! reassociation in the backend between runs), the tolerance of `tools/nnu-postprocess/tests/roundtrip.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::Axis;
use nnu_bins::{DumpNaming, MappedBin, TileName};
use nnu_engine::{Backend, TractBackend, TractOptions};
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::npy::read_npy_f32;
use nnu_volume::{read_labels, Geometry};

/// Probability tolerance between the file path and the streaming path (see the module docs).
pub const PROB_TOL: f32 = 1e-6;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo model folder (a small UNet++, patch 32^3, three classes).
pub fn demo_model() -> PathBuf {
    root().join("crates/nnu-demo/data/model")
}

/// `fixtures/dicom/NAME`.
pub fn dicom_fixture(name: &str) -> PathBuf {
    root().join("fixtures/dicom").join(name)
}

/// Copies the folder tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

/// The tract backend of the model's fold 0, two threads.
pub fn tract_backend(model: &ModelSpec) -> TractBackend {
    let onnx = model.onnx_for_fold("fold_0").expect("fold_0 ONNX");
    let opts = TractOptions::default()
        .patch_size(model.patch)
        .input_channels(model.num_modalities)
        .threads(2);
    TractBackend::load(onnx, &opts).expect("load the ONNX")
}

/// Runs `backend` (any backend: the tract one of [`tract_backend`], or a v2 fold's) on every tile bin of
/// `bins`, one at a time, and writes its logits into `dumps` as `benchmark` dumps (`STEM_1.bin`). Returns
/// the number of tiles run.
pub fn run_device(bins: &Path, backend: &mut dyn Backend, dumps: &Path) -> usize {
    let [pz, py, px] = backend.patch_size();
    let c = backend.input_channels();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(bins)
        .expect("list bins")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    inputs.sort();
    std::fs::create_dir_all(dumps).expect("mkdir");
    for path in &inputs {
        let file_name = path.file_name().and_then(|f| f.to_str()).expect("UTF-8");
        let tile = TileName::parse(file_name).expect("a tile name");
        let bin = MappedBin::open_shape(path, &[c, pz, py, px]).expect("a complete tile");
        let input = bin
            .view4([c, pz, py, px])
            .expect("view")
            .insert_axis(Axis(0));
        let logits = backend.run(input).expect("the network runs");
        let logits = logits.as_slice().expect("contiguous logits");
        let dump = dumps.join(DumpNaming::Benchmark.file_name(&tile.stem(), 0));
        nnu_bins::write_f32_file(&dump, logits).expect("write the dump");
    }
    inputs.len()
}

/// Compares the outputs of `case` in `ours` and in `streamed` (nnu-predict's path): identical labels, the
/// geometry of `geometry` (the series' as read, through the NIfTI header's f32: 1e-5 relative), and
/// probabilities within [`PROB_TOL`]. Returns (foreground voxels, largest probability difference).
pub fn assert_same_outputs(
    ours: &Path,
    streamed: &Path,
    case: &str,
    geometry: &Geometry,
) -> (usize, f32) {
    let seg = format!("{case}.nii.gz");
    let a = read_labels(&ours.join(&seg)).unwrap_or_else(|e| panic!("{case}: {e}"));
    let b = read_labels(&streamed.join(&seg)).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(a.data.shape(), b.data.shape(), "{case}");
    let differ = a
        .data
        .iter()
        .zip(b.data.iter())
        .filter(|(x, y)| x != y)
        .count();
    assert_eq!(
        differ, 0,
        "{case}: {differ} voxels differ between the paths"
    );
    assert_eq!(a.geometry, b.geometry, "{case}");
    for (what, got, want) in [
        ("spacing", a.geometry.spacing, geometry.spacing),
        ("origin", a.geometry.origin, geometry.origin),
    ] {
        for (x, y) in got.iter().zip(want) {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "{case}: {what} {got:?}, the series has {want:?}"
            );
        }
    }
    for (x, y) in a.geometry.direction.iter().zip(geometry.direction) {
        assert!(
            (x - y).abs() <= 1e-5,
            "{case}: direction {:?}, the series has {:?}",
            a.geometry.direction,
            geometry.direction
        );
    }
    let probs = format!("{case}_probabilities.npy");
    let p = read_npy_f32(&ours.join(&probs)).unwrap_or_else(|e| panic!("{case}: {e}"));
    let q = read_npy_f32(&streamed.join(&probs)).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(p.shape(), q.shape(), "{case}");
    let (z, y, x) = a.data.dim();
    assert_eq!(&p.shape()[1..], &[z, y, x], "{case}: the series' grid");
    let max = p
        .iter()
        .zip(q.iter())
        .map(|(u, v)| (u - v).abs())
        .fold(0f32, f32::max);
    assert!(max <= PROB_TOL, "{case}: probabilities differ by {max:e}");
    (a.data.iter().filter(|&&l| l > 0).count(), max)
}

//! `nnu-postprocess` with an nnunetv2 model folder: tiles written by the library
//! (`nnu_pipeline::bins_v2::preprocess_to_bins_v2`, what `nnu-preprocess` runs for a v2 folder, whose
//! bins the tool's own test shows identical), the in-test device of `tools/tile_device.rs` running each tile through the fold's
//! network (native backend, built from the checkpoint), then the tool. Its outputs must be those of the
//! streaming path (`predict_case_v2`, what `nnu-predict` runs) with the same network: identical
//! segmentation and `CASE.pkl`, probabilities within 1e-6 (room for a float reassociation between a
//! batch of mirrors and single tiles; bit-identical when measured), and the model's `dataset.json` and
//! `plans.json` beside them as `nnUNetv2_predict` leaves them.

#[path = "../../nnu-predict/tests/common/mod.rs"]
mod common;
#[path = "../../tile_device.rs"]
mod tile_device;

use std::io::Read;
use std::path::Path;

use common::*;
use nnu_pipeline::bins::BinsOptions;
use nnu_pipeline::bins_v2::{default_mirrors_v2, preprocess_to_bins_v2};
use nnu_pipeline::cases::Case;
use nnu_pipeline::run::{BackendKind, CpuBackendOptions};
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{load_v2_backends, predict_case_v2, V2Model};

const EXE: &str = env!("CARGO_BIN_EXE_nnu-postprocess");
const PROB_TOL: f32 = 1e-6;

fn probabilities(path: &Path) -> Vec<f32> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut bytes = Vec::new();
    z.by_name("probabilities.npy")
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    nnu_pipeline::npy::parse_npy_f32(path, &bytes)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn an_nnunetv2_case_from_dumps_equals_nnu_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixtures().join("v2/models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres");
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(
        fixtures().join("v2/cases/plain_a_0000.nii.gz"),
        images.join("plain_a_0000.nii.gz"),
    )
    .unwrap();
    let case = Case::nifti(
        "plain_a".to_owned(),
        vec![images.join("plain_a_0000.nii.gz")],
    );
    // Fold 1: fold 0 predicts no foreground on this case.
    let model = V2Model::open(&dir, None, "checkpoint_final.pth").unwrap();
    let mirrors = default_mirrors_v2(&model, &[1]).unwrap();
    let bins = tmp.path().join("bins");
    let shape_file = bins.join("all_shape.txt");
    let opts = BinsOptions {
        mirrors,
        ..BinsOptions::default()
    };
    preprocess_to_bins_v2(&case, &model, &bins, &shape_file, &opts, &mut |_, _| {}).unwrap();

    let mut loaded = load_v2_backends(
        &model,
        &[1],
        &CpuBackendOptions::new(BackendKind::Native, 2),
    )
    .unwrap();
    let dumps = tmp.path().join("dumps");
    let tiles = tile_device::run_device(&bins, loaded.backends[0].as_mut(), &dumps);

    let out = tmp.path().join("out");
    let o = run(
        EXE,
        &[
            "-m".into(),
            dir.display().to_string(),
            "--fold".into(),
            "1".into(),
            "-i".into(),
            images.display().to_string(),
            "--shape-file".into(),
            shape_file.display().to_string(),
            "--dumps".into(),
            dumps.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--save-probabilities".into(),
        ],
    );
    o.assert_no_crash();
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(
        listing(&out),
        [
            "dataset.json",
            "plain_a.nii.gz",
            "plain_a.npz",
            "plain_a.pkl",
            "plans.json"
        ]
    );

    let streamed = tmp.path().join("streamed");
    let popts = PredictOptions {
        mirrors,
        save_probabilities: true,
        ..PredictOptions::default()
    };
    predict_case_v2(
        &case,
        &model,
        &mut loaded.backends,
        &streamed,
        &popts,
        &mut |_, _| {},
    )
    .unwrap();
    let a = nnu_volume::read_labels(&out.join("plain_a.nii.gz")).unwrap();
    let b = nnu_volume::read_labels(&streamed.join("plain_a.nii.gz")).unwrap();
    assert_eq!(a.geometry, b.geometry);
    assert_eq!(a.data, b.data);
    assert!(a.data.iter().any(|&v| v > 0), "no foreground");
    let (pa, pb) = (
        probabilities(&out.join("plain_a.npz")),
        probabilities(&streamed.join("plain_a.npz")),
    );
    assert_eq!(pa.len(), pb.len());
    let max = pa
        .iter()
        .zip(&pb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{} tiles x {} mirrors, probabilities max abs diff {max:.2e}",
        tiles / mirrors.len(),
        mirrors.len()
    );
    assert!(max <= PROB_TOL, "{max}");
    assert_eq!(
        std::fs::read(out.join("plain_a.pkl")).unwrap(),
        std::fs::read(streamed.join("plain_a.pkl")).unwrap()
    );
    for f in ["dataset.json", "plans.json"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(dir.join(f)).unwrap()
        );
    }
}

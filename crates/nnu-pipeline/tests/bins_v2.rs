//! The file path to accelerators with nnunetv2 models (`nnu_pipeline::bins_v2`, what `nnu-preprocess` and
//! `nnu-postprocess` call for a v2 folder) against the streaming path (`predict_case_v2`, what
//! `nnu-predict` runs, itself checked against nnunetv2 2.8.1 in `v2_predict.rs`).
//!
//! For each fixture model (3-D softmax, 2-D slice by slice, 3-D region-based with sigmoid) a case is
//! preprocessed into tile bins with the model's default mirrors; an in-test "device" runs each bin alone
//! through the fold's network (native backend, the network built from the checkpoint) and writes the
//! final head as a `benchmark` dump; the postprocess merges the dumps. The streaming path runs the same
//! backend on the same tiles (with the mirrors as one batch) and merges with the same code
//! (`LogitMerge`, `export_v2`), so the segmentations must be identical and the probabilities equal up to
//! [`PROB_TOL`] (room for a float reassociation between a batch of mirrors and single tiles in the
//! backend); the measured difference is printed. The `.pkl` files must be identical.

mod common;

use common::npz_probabilities;
use std::path::{Path, PathBuf};

use ndarray::Axis;
use nnu_bins::{read_all_shape, DumpIndex, DumpNaming, MappedBin, TileName};
use nnu_engine::Backend;
use nnu_pipeline::bins::{properties_path, BinsOptions};
use nnu_pipeline::bins_v2::{
    default_mirrors_v2, postprocess_from_dumps_v2, preprocess_to_bins_v2, read_properties_v2,
};
use nnu_pipeline::cases::Case;
use nnu_pipeline::run::{BackendKind, CpuBackendOptions};
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{load_v2_backends, predict_case_v2, V2Model};

/// Probability tolerance between the file path and the streaming path (see the module docs).
const PROB_TOL: f32 = 1e-6;

fn v2_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/v2")
}

/// Runs `backend` on every tile bin of `bins`, one at a time, and writes the logits as `benchmark`
/// dumps into `dumps`. Returns the number of bins.
fn run_device(bins: &Path, backend: &mut dyn Backend, dumps: &Path) -> usize {
    let [pz, py, px] = backend.patch_size();
    let c = backend.input_channels();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(bins)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    inputs.sort();
    std::fs::create_dir_all(dumps).unwrap();
    for path in &inputs {
        let tile = TileName::parse(path.file_name().unwrap().to_str().unwrap()).unwrap();
        let bin = MappedBin::open_shape(path, &[c, pz, py, px]).unwrap();
        let input = bin.view4([c, pz, py, px]).unwrap().insert_axis(Axis(0));
        let logits = backend.run(input).unwrap();
        let dump = dumps.join(DumpNaming::Benchmark.file_name(&tile.stem(), 0));
        nnu_bins::write_f32_file(&dump, logits.as_slice().unwrap()).unwrap();
    }
    inputs.len()
}

/// One fold of a model through both paths; `with_saved` says whether the postprocess reads `CASE.json` (else it is
/// removed first and the case is preprocessed again). Returns (bins, foreground voxels, probability
/// difference).
fn round_trip(model_dir: &str, fold: usize, case: &str, with_saved: bool) -> (usize, usize, f32) {
    let tmp = tempfile::tempdir().unwrap();
    let model = V2Model::open(
        &v2_root().join("models").join(model_dir),
        None,
        "checkpoint_final.pth",
    )
    .unwrap();
    let files = vec![v2_root().join(format!("cases/{case}_0000.nii.gz"))];
    let case = Case::nifti(case.to_owned(), files);
    let mut loaded = load_v2_backends(
        &model,
        &[fold],
        &CpuBackendOptions::new(BackendKind::Native, 2),
    )
    .unwrap();
    let mirrors = default_mirrors_v2(&model, &[fold]).unwrap();
    assert_eq!(mirrors, loaded.default_mirrors().unwrap(), "{model_dir}");

    let (bins, shape_file) = (
        tmp.path().join("bins"),
        tmp.path().join("bins/all_shape.txt"),
    );
    let bins_opts = BinsOptions {
        mirrors,
        ..BinsOptions::default()
    };
    let r = preprocess_to_bins_v2(
        &case,
        &model,
        &bins,
        &shape_file,
        &bins_opts,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        r.written,
        r.record.num_tiles() * mirrors.len(),
        "{model_dir}"
    );
    // A second run keeps the complete tiles (resume).
    let again = preprocess_to_bins_v2(
        &case,
        &model,
        &bins,
        &shape_file,
        &bins_opts,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(again.skipped && again.written == 0, "{model_dir}");

    let dumps = tmp.path().join("dumps");
    let n = run_device(&bins, loaded.backends[0].as_mut(), &dumps);
    let saved_path = properties_path(&shape_file, &case.name);
    if !with_saved {
        std::fs::remove_file(&saved_path).unwrap();
    }
    let saved = read_properties_v2(&saved_path).unwrap();
    assert_eq!(saved.is_some(), with_saved);
    let record = read_all_shape(&shape_file)
        .unwrap()
        .into_iter()
        .find(|r| r.case == case.name)
        .unwrap();
    let opts = PredictOptions {
        mirrors,
        save_probabilities: true,
        ..PredictOptions::default()
    };
    let index = DumpIndex::scan(&[&dumps], None).unwrap();
    let ours = tmp.path().join("post");
    postprocess_from_dumps_v2(&case, &model, &record, saved.as_ref(), &index, &ours, &opts)
        .unwrap();

    let streamed = tmp.path().join("stream");
    predict_case_v2(
        &case,
        &model,
        &mut loaded.backends,
        &streamed,
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let seg = format!("{}.nii.gz", case.name);
    let a = nnu_volume::read_labels(&ours.join(&seg)).unwrap();
    let b = nnu_volume::read_labels(&streamed.join(&seg)).unwrap();
    assert_eq!(a.geometry, b.geometry, "{model_dir}");
    assert_eq!(a.data, b.data, "{model_dir}: segmentations differ");
    let (sa, pa) = npz_probabilities(&ours.join(format!("{}.npz", case.name)));
    let (sb, pb) = npz_probabilities(&streamed.join(format!("{}.npz", case.name)));
    assert_eq!(sa, sb, "{model_dir}");
    let max = pa
        .iter()
        .zip(&pb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max <= PROB_TOL,
        "{model_dir}: probabilities differ by {max}"
    );
    let pkl = format!("{}.pkl", case.name);
    assert_eq!(
        std::fs::read(ours.join(&pkl)).unwrap(),
        std::fs::read(streamed.join(&pkl)).unwrap(),
        "{model_dir}: properties"
    );
    let foreground = a.data.iter().filter(|&&v| v > 0).count();
    eprintln!(
        "{model_dir}: {n} bins ({} tiles x {} mirrors), {foreground} foreground voxels, \
         probabilities max abs diff {max:.2e}, CASE.json {}",
        record.num_tiles(),
        mirrors.len(),
        if with_saved { "read" } else { "absent" }
    );
    (n, foreground, max)
}

#[test]
fn a_3d_v2_case_through_bins_and_dumps_equals_the_streaming_path() {
    let (_, foreground, _) = round_trip(
        "Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres",
        1,
        "plain_a",
        true,
    );
    // Fold 1, as fold 0 predicts no foreground on this case.
    assert!(
        foreground > 0,
        "no foreground: the comparison would be weak"
    );
}

#[test]
fn a_2d_v2_case_is_tiled_slice_by_slice_and_equals_the_streaming_path() {
    round_trip(
        "Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d",
        0,
        "plain_a",
        true,
    );
}

#[test]
fn a_region_based_case_without_saved_properties_equals_the_streaming_path() {
    round_trip(
        "Dataset903_Regions/nnUNetTrainer__nnUNetPlans__3d_fullres",
        0,
        "regions_a",
        false,
    );
}

/// Saved properties of another image, or of a v1 model, are refused naming the file.
#[test]
fn saved_properties_that_do_not_fit_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.json");
    std::fs::write(&path, br#"{"original_size_of_raw_data": [1, 2, 3]}"#).unwrap();
    let e = read_properties_v2(&path).unwrap_err().to_string();
    assert!(e.contains("x.json") && e.contains("nnunetv2"), "{e}");

    let model = V2Model::open(
        &v2_root().join("models/Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres"),
        None,
        "checkpoint_final.pth",
    )
    .unwrap();
    let case = Case::nifti(
        "plain_a".to_owned(),
        vec![v2_root().join("cases/plain_a_0000.nii.gz")],
    );
    let bins = tmp.path().join("bins");
    let shape_file = bins.join("all_shape.txt");
    let opts = BinsOptions::default();
    preprocess_to_bins_v2(&case, &model, &bins, &shape_file, &opts, &mut |_, _| {}).unwrap();
    let json = properties_path(&shape_file, "plain_a");
    let mut props: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    props["shape_before_cropping"][0] = serde_json::json!(999);
    std::fs::write(&json, serde_json::to_vec(&props).unwrap()).unwrap();
    let saved = read_properties_v2(&json).unwrap();
    let record = read_all_shape(&shape_file).unwrap().remove(0);
    let e = postprocess_from_dumps_v2(
        &case,
        &model,
        &record,
        saved.as_ref(),
        &DumpIndex::default(),
        &tmp.path().join("out"),
        &PredictOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("plain_a_0000.nii.gz") && e.contains("changed since nnu-preprocess"),
        "{e}"
    );
    assert!(!tmp.path().join("out/plain_a.nii.gz").exists());
}

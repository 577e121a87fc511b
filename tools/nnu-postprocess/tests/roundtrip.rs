//! Round trip of the Ascend file path (issue 6): a phantom CT is preprocessed into tile bins
//! (`nnu_pipeline::bins::preprocess_to_bins`, the function `nnu-preprocess` calls), an in-test "device"
//! runs the ONNX of `crates/nnu-demo/data/model` on every bin with `nnu_engine::TractBackend` and writes the dumps,
//! half of them in the `benchmark` numbering (`STEM_1.bin` is the final head) in one folder and half in the
//! `ais_bench` numbering (`STEM_0.bin`) in another, and the `nnu-postprocess` binary merges them with
//! `--dumps DIR1,DIR2`. Its outputs are compared with the streaming path (`nnu_pipeline::predict::
//! predict_case`, what `nnu-predict` runs) with the same model and options.
//!
//! Besides the final head the device writes one more output per tile, standing in for a deep-supervision
//! head (`STEM_2.bin` in the benchmark folder, `STEM_1.bin` in the ais_bench folder), holding the negated
//! logits: a postprocess that took the wrong head would give another segmentation.
//!
//! Tolerances: segmentation voxels identical (and the same geometry); probabilities (`--save-probabilities`)
//! within 1e-6 max abs. Both paths run the same network with the same backend options one patch at a time,
//! the dumps carry the f32 logits bit for bit, and softmax, mirror mean, Gaussian merge and export are the
//! same code (`nnu-tiling`, `nnu-preprocessing`) in the same order, so the results are expected to be equal;
//! the 1e-6 leaves room only for a float reassociation in the backend between runs, far below any label
//! change on this trained model. The measured difference is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::Axis;
use nnu_bins::{DumpIndex, DumpNaming, MappedBin, TileName};
use nnu_engine::{Backend, TractBackend, TractOptions};
use nnu_pipeline::bins::{preprocess_to_bins, BinsOptions};
use nnu_pipeline::cases::{discover_cases, Case};
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::npy::read_npy_f32;
use nnu_pipeline::predict::predict_case;
use nnu_pipeline::stages::PredictOptions;
use nnu_synth::{generate, PhantomSpec};
use nnu_tiling::MirrorSet;
use nnu_volume::{read_labels, write_volume, WriteOptions};

/// Probability tolerance between the bins path and the streaming path (see the module docs).
const PROB_TOL: f32 = 1e-6;

const CASE: &str = "rt_000";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    root().join("crates/nnu-demo/data/model")
}

/// A phantom at another spacing than the model's (3.0 x 1.6 x 1.6 mm against 2.5 x 2 x 2), with a flipped
/// x axis, so the case is resampled on the way in and out: 30 x 50 x 40 voxels become 36 x 40 x 32, which
/// a 32^3 patch covers with 2 x 2 x 1 overlapping tiles.
fn write_phantom(images: &Path) -> Case {
    std::fs::create_dir_all(images).unwrap();
    let spec = PhantomSpec::new([30, 50, 40], [3.0, 1.6, 1.6], 4242).flipped(0);
    let p = generate(&spec).unwrap();
    write_volume(
        &images.join(format!("{CASE}_0000.nii.gz")),
        p.image.data.view(),
        &p.image.geometry,
        &WriteOptions::default(),
    )
    .unwrap();
    let mut cases = discover_cases(images).unwrap();
    assert_eq!(cases.len(), 1);
    cases.remove(0)
}

fn backend(model: &ModelSpec) -> TractBackend {
    let onnx = model.onnx_for_fold("fold_0").unwrap();
    let opts = TractOptions::default()
        .patch_size(model.patch)
        .input_channels(model.num_modalities)
        .threads(2);
    TractBackend::load(onnx, &opts).unwrap()
}

/// The in-test device: every input tile of `bins` (name order) is dealt in turn to one of `folders`, run
/// through `backend`, and its logits written as that folder's final head; the negated logits go into the
/// next output number as a decoy head. Returns the number of tiles run.
fn run_device(bins: &Path, backend: &mut TractBackend, folders: &[(PathBuf, DumpNaming)]) -> usize {
    let [pz, py, px] = backend.patch_size();
    let c = backend.input_channels();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(bins)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    inputs.sort();
    for (dir, _) in folders {
        std::fs::create_dir_all(dir).unwrap();
    }
    for (i, path) in inputs.iter().enumerate() {
        let file_name = path.file_name().unwrap().to_str().unwrap();
        let tile = TileName::parse(file_name).unwrap();
        let bin = MappedBin::open_shape(path, &[c, pz, py, px]).unwrap();
        let input = bin.view4([c, pz, py, px]).unwrap().insert_axis(Axis(0));
        let logits = backend.run(input).unwrap();
        assert_eq!(logits.shape()[0], 1);
        let logits = logits.as_slice().unwrap();
        let (dir, naming) = &folders[i % folders.len()];
        let stem = tile.stem();
        nnu_bins::write_f32_file(&dir.join(naming.file_name(&stem, 0)), logits).unwrap();
        let decoy: Vec<f32> = logits.iter().map(|v| -v).collect();
        nnu_bins::write_f32_file(&dir.join(naming.file_name(&stem, 1)), &decoy).unwrap();
    }
    inputs.len()
}

fn postprocess(args: &[&Path], flags: &[&str]) -> Output {
    let [model, images, dumps, shape_file, out] = args else {
        panic!("five paths expected")
    };
    Command::new(env!("CARGO_BIN_EXE_nnu-postprocess"))
        .arg("--model")
        .arg(model)
        .arg("-i")
        .arg(images)
        .arg("--dumps")
        .arg(dumps)
        .arg("--shape-file")
        .arg(shape_file)
        .arg("-o")
        .arg(out)
        .args(["--threads", "2"])
        .args(flags)
        .output()
        .unwrap()
}

/// Compares the outputs of `CASE` in `bins_out` (nnu-postprocess) and `stream_out` (streaming predict):
/// identical voxels and geometry, probabilities within [`PROB_TOL`]. Returns the probability difference.
fn assert_same_outputs(bins_out: &Path, stream_out: &Path) -> f32 {
    let seg = format!("{CASE}.nii.gz");
    let ours = read_labels(&bins_out.join(&seg)).unwrap();
    let theirs = read_labels(&stream_out.join(&seg)).unwrap();
    assert_eq!(ours.data.shape(), theirs.data.shape());
    assert_eq!(ours.data.shape(), &[30, 50, 40], "the input's grid");
    let differ = ours
        .data
        .iter()
        .zip(theirs.data.iter())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differ, 0, "{differ} voxels differ between the two paths");
    assert!(
        ours.data.iter().any(|&l| l == 1),
        "no liver found: the comparison would be vacuous"
    );
    assert_eq!(ours.geometry, theirs.geometry);

    let probs = format!("{CASE}_probabilities.npy");
    let p = read_npy_f32(&bins_out.join(&probs)).unwrap();
    let q = read_npy_f32(&stream_out.join(&probs)).unwrap();
    assert_eq!(p.shape(), q.shape());
    assert_eq!(p.shape(), &[3, 30, 50, 40]);
    let max = p
        .iter()
        .zip(q.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max <= PROB_TOL, "probabilities differ by {max:e}");
    max
}

struct RoundTrip {
    _tmp: tempfile::TempDir,
    model: ModelSpec,
    images: PathBuf,
    bins: PathBuf,
    shape_file: PathBuf,
    dev0: PathBuf,
    dev1: PathBuf,
    stream_out: PathBuf,
    expected_dumps: usize,
}

/// Preprocesses the phantom to bins with `mirrors`, runs the device over them into a `benchmark` folder and
/// an `ais_bench` folder, and predicts the same case with the streaming path.
fn round_trip(mirrors: MirrorSet) -> RoundTrip {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = ModelSpec::open(&model_dir()).unwrap();
    let images = t.join("images");
    let case = write_phantom(&images);

    let bins = t.join("bins");
    let shape_file = bins.join("all_shape.txt");
    let report = preprocess_to_bins(
        &case,
        &model,
        &bins,
        &shape_file,
        &BinsOptions {
            mirrors,
            ..BinsOptions::default()
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(report.record.num_tiles(), 4, "2 x 2 x 1 tiles");
    assert_eq!(report.written, 4 * mirrors.len());
    let text = std::fs::read_to_string(&shape_file).unwrap();
    assert_eq!(text.trim_end(), report.record.line());

    let mut backend = backend(&model);
    let dev0 = t.join("result/dumpOutput_device0");
    let dev1 = t.join("result/dumpOutput_device1");
    let n = run_device(
        &bins,
        &mut backend,
        &[
            (dev0.clone(), DumpNaming::Benchmark),
            (dev1.clone(), DumpNaming::AisBench),
        ],
    );
    assert_eq!(n, 4 * mirrors.len());

    // The index sees each folder's numbering and one final head per tile.
    let index = DumpIndex::scan(&[&dev0, &dev1], None).unwrap();
    assert_eq!(index.len(), n);
    assert_eq!(index.folders()[0].naming, DumpNaming::Benchmark);
    assert_eq!(index.folders()[1].naming, DumpNaming::AisBench);
    assert!(index.duplicates().is_empty() && index.unparsed().is_empty());

    let stream_out = t.join("stream");
    let opts = PredictOptions {
        mirrors,
        save_probabilities: true,
        overwrite: true,
        ..PredictOptions::default()
    };
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(backend)];
    let r = predict_case(
        &case,
        &model,
        &mut backends,
        &stream_out,
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.tiles, 4);

    RoundTrip {
        _tmp: tmp,
        model,
        images,
        bins,
        shape_file,
        dev0,
        dev1,
        stream_out,
        expected_dumps: n,
    }
}

fn dumps_arg(rt: &RoundTrip) -> PathBuf {
    PathBuf::from(format!("{},{}", rt.dev0.display(), rt.dev1.display()))
}

fn assert_nothing_written(out: &Path) {
    for f in [
        format!("{CASE}.nii.gz"),
        format!("{CASE}_probabilities.npy"),
    ] {
        assert!(!out.join(&f).exists(), "{f} written for a refused case");
    }
}

#[test]
fn eight_mirrors_round_trip_matches_streaming_and_refuses_incomplete_dumps() {
    let rt = round_trip(MirrorSet::all());
    assert_eq!(rt.expected_dumps, 32);
    let out = rt.bins.parent().unwrap().join("post");
    let dumps = dumps_arg(&rt);
    let o = postprocess(
        &[
            &rt.model.folder.dir,
            &rt.images,
            &dumps,
            &rt.shape_file,
            &out,
        ],
        &["--save-probabilities"],
    );
    assert!(
        o.status.success(),
        "nnu-postprocess failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let max = assert_same_outputs(&out, &rt.stream_out);
    eprintln!("8 mirrors: segmentation identical, probabilities max abs diff {max:e}");

    // One final head missing: the case is refused, the missing tile named, nothing written.
    let victim = std::fs::read_dir(&rt.dev1)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with("_0.bin"))
        .min()
        .unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let input_name = {
        let f = victim.file_name().unwrap().to_str().unwrap();
        format!("{}.bin", f.strip_suffix("_0.bin").unwrap())
    };
    let out_missing = rt.bins.parent().unwrap().join("post_missing");
    let o = postprocess(
        &[
            &rt.model.folder.dir,
            &rt.images,
            &dumps,
            &rt.shape_file,
            &out_missing,
        ],
        &["--save-probabilities"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("1 missing"), "{err}");
    assert!(
        err.contains(&input_name),
        "{input_name} not named in: {err}"
    );
    assert_nothing_written(&out_missing);
    nnu_bins::write_atomic(&victim, &bytes).unwrap();

    // One final head short (an interrupted copy): refused, the dump's path named, nothing written.
    let short = std::fs::read_dir(&rt.dev0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with("_1.bin"))
        .max()
        .unwrap();
    let len = std::fs::metadata(&short).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let out_short = rt.bins.parent().unwrap().join("post_short");
    let o = postprocess(
        &[
            &rt.model.folder.dir,
            &rt.images,
            &dumps,
            &rt.shape_file,
            &out_short,
        ],
        &["--save-probabilities"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("1 with a wrong size"), "{err}");
    assert!(
        err.contains(&short.display().to_string()),
        "{} not named in: {err}",
        short.display()
    );
    assert_nothing_written(&out_short);
}

#[test]
fn unmirrored_round_trip_matches_streaming() {
    let rt = round_trip(MirrorSet::identity_only());
    assert_eq!(rt.expected_dumps, 4);
    let out = rt.bins.parent().unwrap().join("post");
    let o = postprocess(
        &[
            &rt.model.folder.dir,
            &rt.images,
            &dumps_arg(&rt),
            &rt.shape_file,
            &out,
        ],
        &["--save-probabilities", "--disable-tta"],
    );
    assert!(
        o.status.success(),
        "nnu-postprocess failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let max = assert_same_outputs(&out, &rt.stream_out);
    eprintln!("no mirrors: segmentation identical, probabilities max abs diff {max:e}");

    // The parent of the device folders (`result/`) stands for all of them.
    let parent = rt.dev0.parent().unwrap().to_path_buf();
    assert_eq!(parent, rt.dev1.parent().unwrap());
    let out_parent = rt.bins.parent().unwrap().join("post_parent");
    let o = postprocess(
        &[
            &rt.model.folder.dir,
            &rt.images,
            &parent,
            &rt.shape_file,
            &out_parent,
        ],
        &["--save-probabilities", "--disable-tta"],
    );
    assert!(
        o.status.success(),
        "nnu-postprocess --dumps {}: {}",
        parent.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_outputs(&out_parent, &rt.stream_out);
}

//! Running a [`Backend`] over tile bins: the counterpart of Huawei's `benchmark` / `ais_bench` tools
//! (and of the recipe's `onnx_infer.py` for `--loop`). One runner for every backend: [`InferPlan::run`]
//! on one backend (native, tract, or one NPU), [`InferPlan::run_devices`] on several NPUs at once (one
//! worker per device taking the next tile; with cargo feature `acl`, [`load_acl_devices`] loads an
//! `.om` model on each), with the same inputs, dump names, resume rule and one summary type.
//!
//! The inputs are the raw f32 tiles written by the bins preprocessing (`CASE_lbx_ubx_lby_uby_lbz_ubz_m.bin`,
//! shape `(C, P, P, P)`), listed from a folder or from a `.info` file (`INDEX PATH W H` lines, as the
//! recipe's `gen_dataset_info.py` writes them). Each input's final-head logits `(1, classes, P, P, P)` are
//! written atomically as `DUMP_DIR/STEM_1.bin` (`benchmark` numbering) or `STEM_0.bin` (`ais_bench`), so the
//! bins postprocessing reads them exactly as it reads the device tools' dumps. Unlike those tools, only the
//! final head is written: the deep-supervision heads `_2.._5` are never read (the recipe's `clear2345.sh`
//! deleted them).
//!
//! A dump that already exists with the right size is skipped, so an interrupted run resumes. The latency
//! of each backend call is measured (reading and writing excluded, as the device tools report compute time;
//! on an NPU the device's execution without the copies, [`Backend::compute_time`])
//! and summarised as `ais_bench` does: min, mean, median, 99th percentile (numpy's linear interpolation),
//! max, and throughput; see [`InferSummary`], printed by [`print_summary`]. [`run_inference`] is what
//! `nnu-infer` runs: the model opened on an [`InferBackend`] and the plan run on it.
//!
//! ```no_run
//! use nnu_bins::DumpNaming;
//! use nnu_engine::{TractBackend, TractOptions};
//! use nnu_pipeline::infer::{InferInput, InferOptions, InferPlan};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut backend = TractBackend::load("model.onnx", &TractOptions::default())?;
//! let input = InferInput::from_path("bins/sth1.info");
//! let options = InferOptions::new(Some("result/dumpOutput_device0".into()), DumpNaming::Benchmark);
//! let plan = InferPlan::new(&input, &options, &backend)?;
//! let summary = plan.run(&mut backend, &mut |done, total| eprintln!("{done}/{total}"))?;
//! println!("{summary}");
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "acl")]
mod acl;
mod job;
mod plan;
mod run;
mod summary;

#[cfg(feature = "acl")]
pub use acl::*;
pub use job::*;
use plan::*;
pub use run::Device;
pub use summary::*;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{s, Array5, ArrayView5};
use nnu_bins::info::{list_bins, read_info};
use nnu_bins::{write_array, write_atomic, DumpNaming, MappedBin};
use nnu_engine::Backend;
use serde::Serialize;

use crate::PipelineError;

/// Name of the summary written into the dump folder.
pub const SUMMARY_FILE: &str = "summary.json";

/// Where the inputs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InferInput {
    /// Every `.bin` file directly inside a folder, in name order.
    BinDir(PathBuf),
    /// The inputs listed in a `.info` file, in file order. Relative paths are taken relative to the
    /// working directory as the device tools do, or, when no such file exists, to the `.info`'s folder.
    Info(PathBuf),
    /// `count` random inputs (uniform in [-2, 2), seeded), nothing written but the summary: the recipe's
    /// `onnx_infer.py` and `benchmark -round`.
    Random {
        /// Number of inputs.
        count: usize,
        /// Seed of the generator.
        seed: u64,
    },
}

impl InferInput {
    /// A `.info` file when `path` ends in `.info`, else a folder of `.bin` files.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if path.extension().is_some_and(|e| e == "info") {
            InferInput::Info(path)
        } else {
            InferInput::BinDir(path)
        }
    }
}

/// Options of an inference run.
#[derive(Debug, Clone)]
pub struct InferOptions {
    /// Folder of the dumps and `summary.json`; created if missing. Required for file inputs, optional
    /// for [`InferInput::Random`] (then only the summary goes there).
    pub output_dir: Option<PathBuf>,
    /// Dump numbering (`_1` for `benchmark`, `_0` for `ais_bench`).
    pub naming: DumpNaming,
    /// Recompute dumps that already exist (default false: they are skipped).
    pub overwrite: bool,
    /// Untimed warm-up calls before the first timed one (default 1, as `ais_bench` warms up).
    pub warmup: usize,
}

impl InferOptions {
    /// Options with the defaults: no overwrite, one warm-up call.
    pub fn new(output_dir: Option<PathBuf>, naming: DumpNaming) -> Self {
        InferOptions {
            output_dir,
            naming,
            overwrite: false,
            warmup: 1,
        }
    }
}

/// One input and where its dump goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferTask {
    /// The input tile; `None` for a random input.
    pub input: Option<PathBuf>,
    /// The dump file; `None` when nothing is written.
    pub output: Option<PathBuf>,
}

/// The work of one run: which inputs run, which are already done.
#[derive(Debug, Clone)]
pub struct InferPlan {
    tasks: Vec<InferTask>,
    skipped: usize,
    seed: u64,
    input_shape: [usize; 5],
    output_shape: [usize; 5],
    output_dir: Option<PathBuf>,
    naming: DumpNaming,
    warmup: usize,
}

#[cfg(all(test, feature = "tract"))]
mod tests {
    use super::run::XorShift;
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], 99) == 3.97; median 2.5.
        let one = LatencyMs::from_ms(&[7.0]).expect("figures");
        assert_eq!((one.median, one.p99), (7.0, 7.0));
        let l = LatencyMs::from_ms(&[4.0, 1.0, 3.0, 2.0]).expect("figures");
        assert_eq!((l.min, l.mean, l.max), (1.0, 2.5, 4.0));
        assert!((l.median - 2.5).abs() < 1e-12 && (l.p99 - 3.97).abs() < 1e-12);
        assert_eq!(LatencyMs::from_ms(&[]), None);
    }

    #[test]
    fn input_kind_from_extension() {
        assert_eq!(
            InferInput::from_path("a/sth1.info"),
            InferInput::Info("a/sth1.info".into())
        );
        assert_eq!(
            InferInput::from_path("a/bins"),
            InferInput::BinDir("a/bins".into())
        );
    }

    #[test]
    fn random_values_are_in_range() {
        let mut r = XorShift::new(3);
        for _ in 0..10_000 {
            let v = r.uniform();
            assert!((-2.0..2.0).contains(&v));
        }
    }
}

/// Runs against the reference networks in `fixtures/reference/` (`scripts/goldens/reference_make.py`).
#[cfg(test)]
mod reference_tests {
    use super::*;
    use nnu_engine::{TractBackend, TractOptions};

    /// PyTorch's final head vs ours: the reference README's bound for an inference engine.
    const TOLERANCE: f32 = 1e-4;

    fn reference(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/reference")
            .join(name)
    }

    fn read_f32(path: &Path) -> Vec<f32> {
        nnu_bins::read_f32_file(path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nnu-infer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn folder_of_bins_gives_reference_dumps_and_resumes() {
        let reference = reference("unetpp-small");
        let root = scratch("dir");
        let (bins, dumps) = (root.join("bins"), root.join("dumps"));
        std::fs::create_dir_all(&bins).expect("bins dir");
        let tiles = ["case_0_32_0_32_0_32_0", "case_0_32_0_32_0_32_1"];
        for t in tiles {
            std::fs::copy(reference.join("input.bin"), bins.join(format!("{t}.bin")))
                .expect("copy");
        }
        let mut backend = TractBackend::load(
            reference.join("model_ds.onnx"),
            &TractOptions::default().threads(2),
        )
        .expect("load");
        let options = InferOptions::new(Some(dumps.clone()), DumpNaming::Benchmark);
        let input = InferInput::from_path(&bins);
        let plan = InferPlan::new(&input, &options, &backend).expect("plan");
        assert_eq!(plan.tasks().len(), 2);
        let mut calls = Vec::new();
        let summary = plan
            .run(&mut backend, &mut |d, t| calls.push((d, t)))
            .expect("run");
        assert_eq!(calls, vec![(1, 2), (2, 2)]);
        assert_eq!(
            (summary.inputs, summary.processed, summary.skipped),
            (2, 2, 0)
        );
        assert_eq!(summary.output_shape, [1, 3, 32, 32, 32]);
        let l = summary.latency_ms.as_ref().expect("latency");
        assert!(l.min <= l.median && l.median <= l.p99 && l.p99 <= l.max);

        let expected = read_f32(&reference.join("output_class.bin"));
        for t in tiles {
            let got = read_f32(&dumps.join(format!("{t}_1.bin")));
            let diff = max_abs_diff(&got, &expected);
            assert!(diff <= TOLERANCE, "{t}: max abs diff {diff}");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dumps.join(SUMMARY_FILE)).expect("summary.json"))
                .expect("json");
        assert_eq!(json["processed"], 2);
        assert_eq!(json["output_numbering"], 1);

        // A rerun finds both dumps complete; a truncated one is redone.
        let plan = InferPlan::new(&input, &options, &backend).expect("plan");
        assert_eq!((plan.tasks().len(), plan.skipped()), (0, 2));
        std::fs::write(dumps.join("case_0_32_0_32_0_32_1_1.bin"), b"short").expect("truncate");
        let plan = InferPlan::new(&input, &options, &backend).expect("plan");
        assert_eq!((plan.tasks().len(), plan.skipped()), (1, 1));

        // The dump folder must not be the input folder.
        let same = InferOptions::new(Some(bins.clone()), DumpNaming::Benchmark);
        assert!(matches!(
            InferPlan::new(&input, &same, &backend),
            Err(PipelineError::Input { .. })
        ));
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn unreadable_input_is_reported_and_the_others_run() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../crates/nnu-demo/data/model/fold_0/model.onnx");
        let root = scratch("bad");
        let (bins, dumps) = (root.join("bins"), root.join("dumps"));
        std::fs::create_dir_all(&bins).expect("bins dir");
        let mut backend =
            TractBackend::load(&model, &TractOptions::default().threads(2)).expect("load");
        let [p0, p1, p2] = backend.patch_size();
        let n = backend.input_channels() * p0 * p1 * p2;
        let good = "case_0_32_0_32_0_32_0";
        let short = "case_0_32_0_32_0_32_1";
        let values: Vec<u8> = (0..n)
            .flat_map(|i| ((i % 7) as f32).to_le_bytes())
            .collect();
        std::fs::write(bins.join(format!("{good}.bin")), &values).expect("write");
        std::fs::write(bins.join(format!("{short}.bin")), &values[..1000]).expect("write");
        let options = InferOptions::new(Some(dumps.clone()), DumpNaming::AisBench);
        let input = InferInput::from_path(&bins);
        let plan = InferPlan::new(&input, &options, &backend).expect("plan");
        let summary = plan.run(&mut backend, &mut |_, _| ()).expect("run");
        assert_eq!((summary.processed, summary.failed.len()), (1, 1));
        let failure = &summary.failed[0];
        assert!(failure.input.ends_with(format!("{short}.bin")));
        // One line that names the file once.
        let name = format!("{short}.bin");
        assert_eq!(failure.error.matches(&name).count(), 1, "{}", failure.error);
        assert!(!failure.error.contains('\n'));
        assert!(dumps.join(format!("{good}_0.bin")).is_file());
        assert!(!dumps.join(format!("{short}_0.bin")).exists());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dumps.join(SUMMARY_FILE)).expect("summary.json"))
                .expect("json");
        assert_eq!(json["failed"].as_array().map(Vec::len), Some(1));
        assert!(summary.to_string().contains("1 input(s) could not be run"));
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn info_file_with_ais_bench_numbering_and_batches() {
        let reference = reference("unet-small");
        let root = scratch("info");
        let tile = root.join("liver_3_0_32_0_32_0_32_0.bin");
        std::fs::copy(reference.join("input.bin"), &tile).expect("copy");
        // A relative path, resolved against the .info's folder.
        let info = root.join("sth1.info");
        std::fs::write(&info, "0 liver_3_0_32_0_32_0_32_0.bin 128 128\n").expect("info");
        let mut backend = TractBackend::load(
            reference.join("model_ds.onnx"),
            &TractOptions::default().threads(1).max_batch(2),
        )
        .expect("load");
        let dumps = root.join("out");
        let options = InferOptions::new(Some(dumps.clone()), DumpNaming::AisBench);
        let plan = InferPlan::new(&InferInput::from_path(&info), &options, &backend).expect("plan");
        let summary = plan.run(&mut backend, &mut |_, _| {}).expect("run");
        assert_eq!(
            (summary.processed, summary.batch_size, summary.calls),
            (1, 2, 1)
        );
        let got = read_f32(&dumps.join("liver_3_0_32_0_32_0_32_0_0.bin"));
        let diff = max_abs_diff(&got, &read_f32(&reference.join("output_class.bin")));
        assert!(diff <= TOLERANCE, "max abs diff {diff}");

        // A tile of the wrong size is an error naming it.
        std::fs::write(&tile, [0u8; 64]).expect("short tile");
        let options = InferOptions {
            overwrite: true,
            ..options
        };
        let plan = InferPlan::new(&InferInput::from_path(&info), &options, &backend).expect("plan");
        let summary = plan.run(&mut backend, &mut |_, _| {}).expect("run");
        assert_eq!((summary.inputs, summary.processed), (1, 0));
        assert_eq!(summary.failed.len(), 1);
        let err = &summary.failed[0].error;
        assert!(err.contains("liver_3_0_32_0_32_0_32_0.bin"), "{err}");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn loop_runs_random_inputs_without_dumps() {
        let reference = reference("unet-small");
        let mut backend = TractBackend::load(
            reference.join("model_ds.onnx"),
            &TractOptions::default().threads(1),
        )
        .expect("load");
        let options = InferOptions::new(None, DumpNaming::Benchmark);
        let input = InferInput::Random { count: 3, seed: 1 };
        let plan = InferPlan::new(&input, &options, &backend).expect("plan");
        let summary = plan.run(&mut backend, &mut |_, _| {}).expect("run");
        assert_eq!((summary.processed, summary.calls), (3, 3));
        assert!(summary.throughput_per_s > 0.0);
    }
}

//! Running a [`Backend`] over tile bins: the counterpart of Huawei's `benchmark` / `ais_bench` tools
//! (and of the recipe's `onnx_infer.py` for `--loop`).
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
//! of each backend call is measured (reading and writing excluded, as the device tools report compute time)
//! and summarised as `ais_bench` does: min, mean, median, 99th percentile (numpy's linear interpolation),
//! max, and throughput; see [`InferSummary`].
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

fn input_err(path: &Path, msg: impl Into<String>) -> PipelineError {
    PipelineError::Input {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The file stem of an input (`NAME` of `NAME.bin`).
fn stem(path: &Path) -> Result<&str, PipelineError> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| input_err(path, "input file name is not UTF-8"))
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl InferPlan {
    /// Lists the inputs, checks that none is listed twice under one dump name, and skips those whose
    /// dump already exists with the size `backend`'s output needs (unless `options.overwrite`).
    pub fn new(
        input: &InferInput,
        options: &InferOptions,
        backend: &dyn Backend,
    ) -> Result<Self, PipelineError> {
        let [z, y, x] = backend.patch_size();
        let input_shape = [1, backend.input_channels(), z, y, x];
        let output_shape = [1, backend.num_classes(), z, y, x];
        let (inputs, seed) = match input {
            InferInput::BinDir(dir) => {
                if let Some(out) = &options.output_dir {
                    if same_folder(dir, out) {
                        return Err(input_err(
                            out,
                            "the dump folder is the input folder; dumps would be read as inputs",
                        ));
                    }
                }
                let paths = list_bins(dir)?;
                if paths.is_empty() {
                    return Err(input_err(dir, "no .bin files in this folder"));
                }
                (paths.into_iter().map(Some).collect::<Vec<_>>(), 0)
            }
            InferInput::Info(info) => {
                let entries = read_info(info)?;
                if entries.is_empty() {
                    return Err(input_err(info, "the .info file lists no inputs"));
                }
                let base = info.parent().unwrap_or(Path::new(""));
                let paths = entries
                    .into_iter()
                    .map(|e| {
                        let p = PathBuf::from(&e.path);
                        if p.is_relative() && !p.exists() && base.join(&p).exists() {
                            Some(base.join(p))
                        } else {
                            Some(p)
                        }
                    })
                    .collect();
                (paths, 0)
            }
            InferInput::Random { count, seed } => (vec![None; *count], *seed),
        };

        let needs_output = inputs.iter().any(Option::is_some);
        let out_dir = match (&options.output_dir, needs_output) {
            (Some(d), _) => Some(d.clone()),
            (None, false) => None,
            (None, true) => {
                return Err(input_err(
                    Path::new("."),
                    "an output folder is required for file inputs",
                ))
            }
        };
        let expected = nnu_bins::tile::file_len(&output_shape);
        let mut seen = std::collections::HashMap::new();
        let mut tasks = Vec::with_capacity(inputs.len());
        let mut skipped = 0;
        for input in inputs {
            let output = match (&input, &out_dir) {
                (Some(path), Some(dir)) => {
                    let name = options.naming.file_name(stem(path)?, 0);
                    if let Some(other) = seen.insert(name.clone(), path.clone()) {
                        return Err(input_err(
                            path,
                            format!("has the same dump name {name} as {}", other.display()),
                        ));
                    }
                    Some(dir.join(name))
                }
                _ => None,
            };
            if let Some(out) = &output {
                let done = std::fs::metadata(out)
                    .map(|m| m.len() == expected)
                    .unwrap_or(false);
                if done && !options.overwrite {
                    skipped += 1;
                    continue;
                }
            }
            tasks.push(InferTask { input, output });
        }
        Ok(InferPlan {
            tasks,
            skipped,
            seed,
            input_shape,
            output_shape,
            output_dir: out_dir,
            naming: options.naming,
            warmup: options.warmup,
        })
    }

    /// The inputs that will run, in order.
    pub fn tasks(&self) -> &[InferTask] {
        &self.tasks
    }

    /// Number of inputs skipped because their dump is complete.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Runs every task through `backend` in batches of up to [`Backend::max_batch`] inputs, writes the
    /// dumps and `summary.json`, and returns the summary. `progress(done, total)` is called after each
    /// batch. On an error the dumps written so far stay (a rerun resumes after them).
    pub fn run(
        &self,
        backend: &mut dyn Backend,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<InferSummary, PipelineError> {
        let started = Instant::now();
        if let Some(dir) = &self.output_dir {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
        let [_, c, z, y, x] = self.input_shape;
        let batch = backend.max_batch().max(1);
        let total = self.tasks.len();
        if !self.tasks.is_empty() {
            let zeros = Array5::<f32>::zeros((batch.min(total), c, z, y, x));
            for _ in 0..self.warmup {
                backend.run(zeros.view())?;
            }
        }
        let mut rng = XorShift::new(self.seed);
        let mut latencies_ms = Vec::with_capacity(total.div_ceil(batch));
        let mut done = 0;
        let mut failed = Vec::new();
        for chunk in self.tasks.chunks(batch) {
            // Inputs are memory-mapped; a batch of one is passed without a copy. An input that cannot be
            // read (missing, short, unreadable) is reported in the summary and skipped; the others run.
            let mut maps = Vec::with_capacity(chunk.len());
            let mut tasks = Vec::with_capacity(chunk.len());
            for task in chunk {
                match &task.input {
                    // open_shape checks the size against the shape, so view5 below cannot fail.
                    Some(p) => match MappedBin::open_shape(p, &self.input_shape) {
                        Ok(m) => {
                            maps.push(m);
                            tasks.push(task);
                        }
                        Err(e) => failed.push(FailedInput {
                            input: p.clone(),
                            error: e.to_string(),
                        }),
                    },
                    None => tasks.push(task),
                }
            }
            if tasks.is_empty() {
                done += chunk.len();
                progress(done, total);
                continue;
            }
            let owned;
            let view: ArrayView5<f32> = if maps.len() == 1 && tasks.len() == 1 {
                maps[0].view5(self.input_shape)?
            } else {
                let mut b = Array5::<f32>::zeros((tasks.len(), c, z, y, x));
                let mut maps = maps.iter();
                for (i, task) in tasks.iter().enumerate() {
                    let mut dst = b.slice_mut(s![i..i + 1, .., .., .., ..]);
                    match (&task.input, maps.next()) {
                        (Some(_), Some(m)) => dst.assign(&m.view5(self.input_shape)?),
                        _ => dst.iter_mut().for_each(|v| *v = rng.uniform()),
                    }
                }
                owned = b;
                owned.view()
            };
            let t0 = Instant::now();
            let logits = backend.run(view)?;
            latencies_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            let got = logits.shape();
            if got[0] != tasks.len() || got[1..] != self.output_shape[1..] {
                return Err(PipelineError::Shape(format!(
                    "{} returned {got:?} for a batch of {}, expected ({}, {:?})",
                    backend.name(),
                    tasks.len(),
                    tasks.len(),
                    &self.output_shape[1..]
                )));
            }
            for (i, task) in tasks.iter().enumerate() {
                if let Some(out) = &task.output {
                    let one = logits.slice(s![i..i + 1, .., .., .., ..]);
                    write_array(out, one)?;
                }
            }
            done += chunk.len();
            progress(done, total);
        }
        let summary = InferSummary::new(
            backend.name(),
            self,
            batch,
            &latencies_ms,
            started.elapsed().as_secs_f64(),
            failed,
        );
        if let Some(dir) = &self.output_dir {
            let path = dir.join(SUMMARY_FILE);
            let json = serde_json::to_string_pretty(&summary)
                .map_err(|e| input_err(&path, format!("cannot serialise the summary: {e}")))?;
            write_atomic(&path, json.as_bytes())?;
        }
        Ok(summary)
    }
}

/// Latency figures of the timed backend calls, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Fastest call.
    pub min: f64,
    /// Mean over calls.
    pub mean: f64,
    /// Median (numpy's `median`).
    pub median: f64,
    /// 99th percentile (numpy's `percentile(.., 99)`, linear interpolation).
    pub p99: f64,
    /// Slowest call.
    pub max: f64,
}

impl LatencyMs {
    /// The figures of a list of latencies in milliseconds (in any order); `None` when it is empty. Other
    /// drivers of a backend (the multi-device ACL path of `nnu-infer`) use it to report like [`InferPlan`].
    pub fn from_ms(latencies: &[f64]) -> Option<LatencyMs> {
        let mut sorted = latencies.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        Some(LatencyMs {
            min: first,
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            median: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            max: last,
        })
    }
}

/// An input that could not be run (missing, short or unreadable); its dump is not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedInput {
    /// The input tile.
    pub input: PathBuf,
    /// What is wrong with it (one line, naming the file).
    pub error: String,
}

/// What a run did and how fast, written as `summary.json` and printed like `ais_bench`'s summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferSummary {
    /// Backend name.
    pub backend: String,
    /// Inputs listed (processed + skipped).
    pub inputs: usize,
    /// Inputs run in this invocation (failed ones excluded).
    pub processed: usize,
    /// Inputs skipped because their dump was complete.
    pub skipped: usize,
    /// Inputs per backend call.
    pub batch_size: usize,
    /// Timed backend calls.
    pub calls: usize,
    /// Input shape of one patch `(1, C, P, P, P)`.
    pub input_shape: [usize; 5],
    /// Dump shape of one patch `(1, classes, P, P, P)`.
    pub output_shape: [usize; 5],
    /// Dump numbering: 1 (`benchmark`) or 0 (`ais_bench`).
    pub output_numbering: u32,
    /// Latency of one backend call (a whole batch), warm-up excluded; `None` when nothing ran.
    pub latency_ms: Option<LatencyMs>,
    /// Inputs per second of compute time (`1000 * processed / sum of latencies`).
    pub throughput_per_s: f64,
    /// Wall time of the run, reading and writing included, in seconds.
    pub wall_s: f64,
    /// Inputs that could not be read; the run went on without them. A caller should treat a non-empty list
    /// as a failed run (`nnu-infer` exits non-zero) after the others' dumps are written.
    pub failed: Vec<FailedInput>,
}

/// numpy's `percentile` with linear interpolation on sorted data.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl InferSummary {
    fn new(
        backend: &str,
        plan: &InferPlan,
        batch: usize,
        latencies: &[f64],
        wall_s: f64,
        failed: Vec<FailedInput>,
    ) -> Self {
        let processed = plan.tasks.len() - failed.len();
        let sum: f64 = latencies.iter().sum();
        let latency_ms = LatencyMs::from_ms(latencies);
        InferSummary {
            backend: backend.to_string(),
            inputs: plan.tasks.len() + plan.skipped,
            processed,
            skipped: plan.skipped,
            batch_size: batch,
            calls: latencies.len(),
            input_shape: plan.input_shape,
            output_shape: plan.output_shape,
            output_numbering: plan.naming.first_index(),
            latency_ms,
            throughput_per_s: if sum > 0.0 {
                processed as f64 * 1e3 / sum
            } else {
                0.0
            },
            wall_s,
            failed,
        }
    }
}

impl fmt::Display for InferSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "[INFO] backend: {}  batch size: {}  input {:?}  output {:?}",
            self.backend, self.batch_size, self.input_shape, self.output_shape
        )?;
        writeln!(
            f,
            "[INFO] inputs: {}  processed: {}  skipped (complete dumps): {}",
            self.inputs, self.processed, self.skipped
        )?;
        if let Some(l) = &self.latency_ms {
            writeln!(
                f,
                "[INFO] compute time (ms): min = {:.3}, max = {:.3}, mean = {:.3}, median = {:.3}, percentile(99%) = {:.3}",
                l.min, l.max, l.mean, l.median, l.p99
            )?;
        }
        write!(
            f,
            "[INFO] throughput (1000*processed/sum(compute time)): {:.3}/s  wall time: {:.3} s",
            self.throughput_per_s, self.wall_s
        )?;
        if !self.failed.is_empty() {
            write!(
                f,
                "\n[WARN] {} input(s) could not be run:",
                self.failed.len()
            )?;
            for failure in &self.failed {
                write!(f, "\n[WARN]   {}", failure.error)?;
            }
        }
        Ok(())
    }
}

/// xorshift64*: deterministic random inputs without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-2, 2).
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 random bits
        bits as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], 99) == 3.97; median 2.5.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-12);
        assert!((percentile(&v, 50.0) - 2.5).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
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
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
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

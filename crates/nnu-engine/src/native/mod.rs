//! The native CPU backend: nnU-Net-family networks run by our own kernels (channel-blocked direct
//! convolution, see [`kernels`]), imported from ONNX without tract.
//!
//! Loading decodes the ONNX file ([`onnx`]), keeps the nodes the final head needs, fuses
//! `Conv -> InstanceNormalization -> LeakyRelu` and turns the graph into steps over tensors whose
//! buffers are planned once ([`NativeBackend::planned_bytes`]). A fused step's normalisation and
//! activation are deferred ([`kernels::defer_norm_act`]): the next reader applies them as it copies its
//! input anyway (bf16 conversion, the narrow path's segmented planes, the transposed convolution's
//! staged rows); before an f32 blocked convolution, a residual addition or the output, one pass applies
//! them ([`kernels::materialize`]). A batch is run one sample after the
//! other through the same buffers, on a private rayon pool of [`NativeOptions::threads`] threads, or for
//! a small network whole samples per thread ([`NativeOptions::samples_in_parallel`]).
//!
//! Diagnostics for kernel work: `NNU_PROFILE=1` prints one line per executed step on stderr (kind,
//! channels, shape, milliseconds, GFLOP/s counted as a direct convolution); `NNU_WINOGRAD=0` keeps every
//! convolution on the direct kernel ([`kernels::PackedConv::new`]).

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::{s, Array5, ArrayView4, ArrayView5, ArrayViewMut4};

use crate::{check_input_shape, Backend, EngineError};

mod import;
pub mod kernels;
pub mod onnx;
mod plan;

use import::{ImportOptions, ImportedModel, Step};
pub use kernels::Precision;
use kernels::{Act, ChannelStats, Isa, LANES};

/// Options of [`NativeBackend::load`], builder style (as [`crate::TractOptions`]).
///
/// Defaults: all available cores, fp32, batches of one patch (the model's batch when it fixes one),
/// patch size and channel count from the model's input shape, the best instruction set of this CPU.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    threads: usize,
    precision: Precision,
    patch_size: Option<[usize; 3]>,
    input_channels: Option<usize>,
    max_batch: usize,
    isa: Option<Isa>,
    samples_in_parallel: Option<bool>,
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            precision: Precision::F32,
            patch_size: None,
            input_channels: None,
            max_batch: 1,
            isa: None,
            samples_in_parallel: None,
        }
    }
}

impl NativeOptions {
    /// Threads of the backend's private pool (default: all available cores; 0 counts as 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Arithmetic of the convolutions (default [`Precision::F32`]). [`Precision::Bf16`] needs a CPU
    /// with AVX512_BF16; elsewhere loading fails with [`EngineError::PrecisionUnavailable`].
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Spatial patch shape (z, y, x). Required when the model's spatial axes are dynamic; when the
    /// model fixes them, a different value is an [`EngineError::PatchMismatch`]. For a 2-D model (input
    /// `(n, c, y, x)`, run as the 3-D one on one slice) it is `[1, y, x]`.
    pub fn patch_size(mut self, patch_size: [usize; 3]) -> Self {
        self.patch_size = Some(patch_size);
        self
    }

    /// Input channel count, required only when the model leaves it dynamic.
    pub fn input_channels(mut self, channels: usize) -> Self {
        self.input_channels = Some(channels);
        self
    }

    /// Largest batch one [`Backend::run`] call takes (default 1; a model that fixes its batch uses
    /// that). Samples run one after the other through the same buffers, or a whole sample per thread
    /// ([`NativeOptions::samples_in_parallel`]), so this only sets how many patches a call may carry.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How a batch of several samples is spread over the threads: `false` runs one sample after the
    /// other, each operator split over all threads; `true` gives each thread whole samples (its own
    /// activation buffers, one more planned set per thread), so small networks, whose operators are too
    /// small to split well, keep every thread busy. Default: whole samples per thread when the planned
    /// activations of one sample are at most [`SAMPLES_IN_PARALLEL_BYTES`] (small networks such as the
    /// demo's), else one sample at a time.
    pub fn samples_in_parallel(mut self, on: bool) -> Self {
        self.samples_in_parallel = Some(on);
        self
    }

    /// Instruction set of the kernels (default: the best this CPU has, [`kernels::detect_isa`]).
    /// Asking for one the CPU lacks is refused by the kernels.
    pub fn isa(mut self, isa: Isa) -> Self {
        self.isa = Some(isa);
        self
    }
}

/// Planned activations of one sample up to which a batch's samples run in parallel by default, one
/// whole sample per thread ([`NativeOptions::samples_in_parallel`]).
pub const SAMPLES_IN_PARALLEL_BYTES: usize = 64 << 20;

/// The buffers one sample runs through: the planned activation slots and the statistics scratch.
struct Worker {
    slots: Vec<Option<Act>>,
    stats: ChannelStats,
}

impl Worker {
    fn new(slot_elements: &[usize]) -> Result<Self, EngineError> {
        Ok(Worker {
            slots: slot_elements
                .iter()
                .map(|&e| Act::try_zeros(LANES, [e / LANES, 1, 1]).map(Some))
                .collect::<Result<Vec<_>, _>>()?,
            stats: ChannelStats::default(),
        })
    }
}

/// ONNX inference on the CPU with the native kernels.
pub struct NativeBackend {
    origin: PathBuf,
    model: ImportedModel,
    slot_of: Vec<usize>,
    slot_elements: Vec<usize>,
    planned_bytes: usize,
    /// `workers[0]` runs single samples; the others exist once a batch ran samples in parallel.
    workers: Vec<Worker>,
    max_batch: usize,
    precision: Precision,
    samples_in_parallel: bool,
    pool: rayon::ThreadPool,
    /// One single-thread pool per worker, built with the first parallel batch.
    sample_pools: Vec<rayon::ThreadPool>,
}

impl fmt::Debug for NativeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeBackend")
            .field("origin", &self.origin)
            .field("patch", &self.model.patch)
            .field("input_channels", &self.model.input_channels)
            .field("classes", &self.model.classes)
            .field("steps", &self.model.steps.len())
            .field("planned_bytes", &self.planned_bytes)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

fn load_err(path: &Path, e: impl fmt::Display) -> EngineError {
    EngineError::Load {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl NativeBackend {
    /// Loads an ONNX model with one `(n, c, z, y, x)` input, keeps its output named `class` (else its
    /// first output) and plans it for `options`' patch size.
    ///
    /// An operator outside the supported set (see the module doc of `import`) is
    /// [`EngineError::Unsupported`], naming the node; callers may fall back to tract on it.
    pub fn load(path: impl AsRef<Path>, options: &NativeOptions) -> Result<Self, EngineError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| load_err(path, e))?;
        Self::from_onnx_bytes(&bytes, path, options)
    }

    /// As [`NativeBackend::load`] from a serialised `ModelProto` in memory (an export built on the
    /// fly from a checkpoint); `origin` names the model in messages.
    pub fn from_onnx_bytes(
        bytes: &[u8],
        origin: impl AsRef<Path>,
        options: &NativeOptions,
    ) -> Result<Self, EngineError> {
        let origin = origin.as_ref();
        if options.precision == Precision::Bf16 && !kernels::bf16_supported() {
            return Err(EngineError::PrecisionUnavailable {
                precision: "bf16",
                reason: "this CPU lacks AVX512_BF16 (use fp32)".to_string(),
            });
        }
        let model = onnx::decode_model(bytes).map_err(|e| load_err(origin, e))?;
        let imported = import::import(
            &model,
            &ImportOptions {
                origin: origin.to_path_buf(),
                patch_size: options.patch_size,
                input_channels: options.input_channels,
                precision: options.precision,
                isa: options.isa.unwrap_or_else(kernels::detect_isa),
            },
        )?;
        drop(model);
        let memory = plan::plan(&imported);
        let worker = Worker::new(&memory.slot_elements)?;
        let planned_bytes = memory.bytes();
        let threads = options.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("nnu-native-{i}"))
            .num_threads(threads)
            .build()
            .map_err(|e| EngineError::ThreadPool {
                threads,
                message: e.to_string(),
            })?;
        Ok(NativeBackend {
            origin: origin.to_path_buf(),
            max_batch: imported.fixed_batch.unwrap_or(options.max_batch),
            planned_bytes,
            slot_of: memory.slot_of,
            slot_elements: memory.slot_elements,
            model: imported,
            workers: vec![worker],
            precision: options.precision,
            samples_in_parallel: options
                .samples_in_parallel
                .unwrap_or(planned_bytes <= SAMPLES_IN_PARALLEL_BYTES),
            pool,
            sample_pools: Vec::new(),
        })
    }

    /// The model file (or the name given to [`NativeBackend::from_onnx_bytes`]).
    pub fn path(&self) -> &Path {
        &self.origin
    }

    /// Bytes of the activation buffers planned for one sample (allocated once at load, reused by
    /// every pass; one more set per thread once a batch runs its samples in parallel); the packed
    /// weights come on top.
    pub fn planned_bytes(&self) -> usize {
        self.planned_bytes
    }

    /// Scalar weights of the network (convolutions, biases, norm parameters) the final head needs.
    pub fn parameters(&self) -> usize {
        self.model.parameters
    }

    /// Arithmetic of the convolutions.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of execution steps after fusion (for diagnostics).
    pub fn steps(&self) -> usize {
        self.model.steps.len()
    }
}

impl NativeBackend {
    /// Runs the samples of `input` on `min(threads, n)` workers at once, each a single-thread pool with
    /// its own buffers taking every `k`-th sample.
    fn run_samples_in_parallel(
        &mut self,
        input: ArrayView5<f32>,
        out: &mut Array5<f32>,
    ) -> Result<(), EngineError> {
        let n = input.shape()[0];
        let k = self.pool.current_num_threads().min(n);
        while self.workers.len() < k {
            self.workers.push(Worker::new(&self.slot_elements)?);
        }
        while self.sample_pools.len() < k {
            let i = self.sample_pools.len();
            let pool = rayon::ThreadPoolBuilder::new()
                .thread_name(move |_| format!("nnu-native-sample-{i}"))
                .num_threads(1)
                .build()
                .map_err(|e| EngineError::ThreadPool {
                    threads: 1,
                    message: e.to_string(),
                })?;
            self.sample_pools.push(pool);
        }
        let mut outputs: Vec<Vec<(usize, ArrayViewMut4<f32>)>> =
            (0..k).map(|_| Vec::new()).collect();
        for (i, o) in out.outer_iter_mut().enumerate() {
            outputs[i % k].push((i, o));
        }
        let (model, slot_of) = (&self.model, &self.slot_of);
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .workers
                .iter_mut()
                .zip(&self.sample_pools)
                .zip(outputs)
                .map(|((worker, pool), outs)| {
                    scope.spawn(move || {
                        pool.install(|| {
                            for (i, o) in outs {
                                run_sample(
                                    model,
                                    slot_of,
                                    worker,
                                    input.slice(s![i, .., .., .., ..]),
                                    o,
                                )?;
                            }
                            Ok::<(), EngineError>(())
                        })
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join().map_err(|_| EngineError::Run {
                    backend: "native",
                    message: "a sample worker panicked".to_string(),
                })?
            })
        })
    }
}

/// Whether `NNU_PROFILE=1` asks for one line per executed step on stderr (a diagnostic for kernel work:
/// step kind, channels, output shape, milliseconds and GFLOP/s of the convolutions).
fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("NNU_PROFILE").is_ok_and(|v| v == "1"))
}

/// Prints one step's profile line (see [`profiling`]).
fn report_step(model: &ImportedModel, step: &Step, took: std::time::Duration) {
    let ms = took.as_secs_f64() * 1e3;
    let line = match step {
        Step::Conv {
            conv, dst, norm, ..
        } => {
            let sp = conv.spec();
            let dims = model.tensors[*dst].dims;
            let flop = 2.0
                * (sp.in_channels * sp.out_channels * sp.kernel.iter().product::<usize>()) as f64
                * dims.iter().product::<usize>() as f64;
            format!(
                "conv {:?} s{:?} {}->{} @{:?}{} {:?}{}: {ms:.2} ms {:.1} GFLOP/s",
                sp.kernel,
                sp.stride,
                sp.in_channels,
                sp.out_channels,
                dims,
                if norm.is_some() { " +norm" } else { "" },
                conv.precision(),
                if conv.uses_winograd() {
                    " winograd"
                } else {
                    ""
                },
                flop / took.as_secs_f64() / 1e9
            )
        }
        Step::ConvTranspose { dst, .. } => {
            let t = model.tensors[*dst];
            format!("convT -> {} @{:?}: {ms:.2} ms", t.channels, t.dims)
        }
        Step::Activate { t, .. } => format!("activate {:?}: {ms:.2} ms", model.tensors[*t].dims),
        Step::Add { acc, .. } => format!("add {:?}: {ms:.2} ms", model.tensors[*acc].dims),
    };
    eprintln!("NNU_PROFILE {line}");
}

/// Runs every step for one sample through the planned buffers.
fn run_sample(
    model: &ImportedModel,
    slot_of: &[usize],
    worker: &mut Worker,
    input: ArrayView4<f32>,
    output: ArrayViewMut4<f32>,
) -> Result<(), EngineError> {
    let Worker { slots, stats } = worker;
    let missing = || EngineError::Run {
        backend: "native",
        message: "a planned buffer is in use twice (a bug in the plan)".to_string(),
    };
    let shape = |t: usize| model.tensors[t];
    {
        let sh = shape(model.input);
        let act = slots[slot_of[model.input]].as_mut().ok_or_else(missing)?;
        act.reshape(sh.channels, sh.dims)?;
        act.load_cdhw(input);
    }
    let profile = profiling();
    for step in &model.steps {
        let t0 = profile.then(std::time::Instant::now);
        match step {
            Step::Conv {
                srcs,
                conv,
                dst,
                norm,
                act,
            } => {
                let mut out = slots[slot_of[*dst]].take().ok_or_else(missing)?;
                let sh = shape(*dst);
                let result = (|| -> Result<(), EngineError> {
                    out.reshape(sh.channels, sh.dims)?;
                    if !conv.reads_deferred() {
                        for &t in srcs {
                            kernels::materialize(slots[slot_of[t]].as_mut().ok_or_else(missing)?);
                        }
                    }
                    let ins = srcs
                        .iter()
                        .map(|&t| slots[slot_of[t]].as_ref().ok_or_else(missing))
                        .collect::<Result<Vec<&Act>, _>>()?;
                    match norm {
                        Some(n) => {
                            stats.sum.clear();
                            stats.sum.resize(sh.channels, 0.0);
                            stats.sumsq.clear();
                            stats.sumsq.resize(sh.channels, 0.0);
                            stats.count = 0;
                            kernels::conv3d(&ins, conv, &mut out, Some(stats))?;
                            // applied by the next reader where it copies its input anyway
                            kernels::defer_norm_act(
                                &mut out, stats, &n.gamma, &n.beta, n.eps, *act,
                            );
                        }
                        None => {
                            kernels::conv3d(&ins, conv, &mut out, None)?;
                            if *act != kernels::Activation::None {
                                kernels::activate(&mut out, *act);
                            }
                        }
                    }
                    Ok(())
                })();
                slots[slot_of[*dst]] = Some(out);
                result?;
            }
            Step::ConvTranspose {
                src,
                conv,
                dst,
                act,
            } => {
                let mut out = slots[slot_of[*dst]].take().ok_or_else(missing)?;
                let sh = shape(*dst);
                let result = (|| -> Result<(), EngineError> {
                    out.reshape(sh.channels, sh.dims)?;
                    let x = slots[slot_of[*src]].as_ref().ok_or_else(missing)?;
                    kernels::conv_transpose3d(x, conv, &mut out)?;
                    if *act != kernels::Activation::None {
                        kernels::activate(&mut out, *act);
                    }
                    Ok(())
                })();
                slots[slot_of[*dst]] = Some(out);
                result?;
            }
            Step::Activate { t, act } => {
                let x = slots[slot_of[*t]].as_mut().ok_or_else(missing)?;
                kernels::activate(x, *act);
            }
            Step::Add { acc, other } => {
                kernels::materialize(slots[slot_of[*other]].as_mut().ok_or_else(missing)?);
                let mut a = slots[slot_of[*acc]].take().ok_or_else(missing)?;
                let result = slots[slot_of[*other]]
                    .as_ref()
                    .ok_or_else(missing)
                    .map(|b| {
                        kernels::add_assign(&mut a, b);
                    });
                slots[slot_of[*acc]] = Some(a);
                result?;
            }
        }
        if let Some(t0) = t0 {
            report_step(model, step, t0.elapsed());
        }
    }
    let out = slots[slot_of[model.output]].as_mut().ok_or_else(missing)?;
    kernels::materialize(out);
    out.store_cdhw(output);
    Ok(())
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }

    fn run(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError> {
        let m = &self.model;
        check_input_shape(&input, m.input_channels, m.patch, self.max_batch)?;
        let n = input.shape()[0];
        let [z, y, x] = m.patch;
        let mut out = Array5::<f32>::zeros((n, m.classes, z, y, x));
        let parallel = self.samples_in_parallel && self.pool.current_num_threads() > 1 && n > 1;
        if parallel {
            self.run_samples_in_parallel(input, &mut out)?;
            return Ok(out);
        }
        let (model, slot_of, worker) = (&self.model, &self.slot_of, &mut self.workers[0]);
        self.pool.install(|| {
            for i in 0..n {
                run_sample(
                    model,
                    slot_of,
                    worker,
                    input.slice(s![i, .., .., .., ..]),
                    out.slice_mut(s![i, .., .., .., ..]),
                )?;
            }
            Ok::<(), EngineError>(())
        })?;
        Ok(out)
    }

    fn num_classes(&self) -> usize {
        self.model.classes
    }

    fn patch_size(&self) -> [usize; 3] {
        self.model.patch
    }

    fn input_channels(&self) -> usize {
        self.model.input_channels
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }
}

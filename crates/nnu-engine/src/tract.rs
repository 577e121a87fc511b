//! The tract-onnx CPU backend.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{s, Array5, ArrayView5, Axis, Ix4, Ix5};
use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;
use tract_onnx::tract_hir::infer::{DimFact, Factoid};

use crate::{check_input_shape, Backend, EngineError};

/// Options of [`TractBackend::load`], builder style.
///
/// Defaults: all available cores, batches of one patch, patch size and channel count taken from the
/// model's input shape.
#[derive(Debug, Clone)]
pub struct TractOptions {
    threads: usize,
    max_batch: usize,
    patch_size: Option<[usize; 3]>,
    input_channels: Option<usize>,
}

impl Default for TractOptions {
    fn default() -> Self {
        TractOptions {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_batch: 1,
            patch_size: None,
            input_channels: None,
        }
    }
}

impl TractOptions {
    /// Threads for tract's matrix products (default: all available cores; 0 or 1 runs on the
    /// calling thread). The pool is private to the backend, so several backends do not share it.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Largest batch one [`Backend::run`] call takes (default 1). Only honoured when the model's batch
    /// axis is dynamic; a model with a fixed batch uses that batch.
    ///
    /// Keep 1 for tract: with tract 0.23.9 on 2 cores, the 8 mirrors of a `unetpp-small` tile as one
    /// batch of 8 took about 9-11 s per patch against 0.15-0.5 s one by one (`benches/benches/engine.rs`,
    /// 1 and 2 threads), so batching is 20-60 times slower. Other backends (an NPU) may gain from it.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Spatial patch shape (z, y, x). Required when the model's spatial axes are dynamic; when the
    /// model fixes them, a different value is an [`EngineError::PatchMismatch`]. For a 2-D model (input
    /// `(n, c, y, x)`) it is `[1, y, x]`.
    pub fn patch_size(mut self, patch_size: [usize; 3]) -> Self {
        self.patch_size = Some(patch_size);
        self
    }

    /// Input channel count, required only when the model leaves it dynamic.
    pub fn input_channels(mut self, channels: usize) -> Self {
        self.input_channels = Some(channels);
        self
    }
}

/// A model parsed and reduced to its final head, ready to be fixed to a batch size and optimised.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    model: InferenceModel,
}

/// ONNX inference on the CPU with tract.
///
/// The model is parsed once; for each batch size used, the graph is fixed to
/// `(batch, channels, patch)`, optimised and planned once, then reused for every call (in practice one
/// or two batch sizes). Matrix products run on a private pool of [`TractOptions::threads`] threads.
///
/// A 2-D model (one `(n, c, y, x)` input, as `nnu-export-onnx` writes a `2d` nnunetv2 configuration) is
/// run as the backend contract asks, on `(n, c, 1, y, x)` patches: the slice axis is dropped on the way in
/// and restored on the way out, and [`Backend::patch_size`] is `[1, y, x]`.
#[derive(Debug)]
pub struct TractBackend {
    source: Source,
    channels: usize,
    patch: [usize; 3],
    /// The model's input is `(n, c, y, x)`: patches are one slice.
    two_d: bool,
    classes: usize,
    /// `Some(b)` when the model fixes its batch to `b`.
    fixed_batch: Option<usize>,
    max_batch: usize,
    executor: Executor,
    states: HashMap<usize, TypedSimpleState>,
}

fn load_err(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Load {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    }
}

fn not_seg(path: &Path, reason: String) -> EngineError {
    EngineError::NotSegmentationModel {
        path: path.to_path_buf(),
        reason,
    }
}

fn run_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Run {
        backend: "tract",
        message: format!("{e:#}"),
    }
}

/// A dimension of an ONNX fact as a concrete size, `None` when symbolic or unknown.
fn concrete(d: &DimFact) -> Option<usize> {
    d.concretize()
        .and_then(|d| d.as_i64())
        .and_then(|v| usize::try_from(v).ok())
}

fn make_executor(threads: usize) -> Result<Executor, EngineError> {
    if threads <= 1 {
        return Ok(Executor::SingleThread);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("nnu-tract-{i}"))
        .num_threads(threads)
        .build()
        .map_err(|e| EngineError::ThreadPool {
            threads,
            message: e.to_string(),
        })?;
    Ok(Executor::MultiThread(Arc::new(pool)))
}

impl TractBackend {
    /// Loads an ONNX model with one `(n, c, z, y, x)` input (or `(n, c, y, x)`, a 2-D network), keeps its
    /// output named `class` (else its first output), and prepares it for `options`' patch size and batch.
    ///
    /// The plan for the largest batch is built here, so shape errors surface at load time.
    pub fn load(path: impl AsRef<Path>, options: &TractOptions) -> Result<Self, EngineError> {
        let path = path.as_ref();
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| load_err(path, e))?;
        Self::from_model(model, path, options)
    }

    /// As [`TractBackend::load`] from a serialised `ModelProto` in memory (an export built on the fly
    /// from a checkpoint); `origin` names the model in messages.
    pub fn from_onnx_bytes(
        bytes: &[u8],
        origin: impl AsRef<Path>,
        options: &TractOptions,
    ) -> Result<Self, EngineError> {
        let path = origin.as_ref();
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|e| load_err(path, e))?;
        Self::from_model(model, path, options)
    }

    fn from_model(
        mut model: InferenceModel,
        path: &Path,
        options: &TractOptions,
    ) -> Result<Self, EngineError> {
        let inputs = model.input_outlets().map_err(|e| load_err(path, e))?.len();
        if inputs != 1 {
            return Err(not_seg(path, format!("{inputs} inputs, expected 1")));
        }
        let fact = model.input_fact(0).map_err(|e| load_err(path, e))?.clone();
        let rank = fact.shape.dims().count();
        if fact.shape.is_open() || !(rank == 4 || rank == 5) {
            let rank = if fact.shape.is_open() {
                "unknown".to_string()
            } else {
                rank.to_string()
            };
            return Err(not_seg(
                path,
                format!("input rank {rank}, expected 5 (n, c, z, y, x) or 4 (n, c, y, x)"),
            ));
        }
        let two_d = rank == 4;
        let mut dims: Vec<Option<usize>> = fact.shape.dims().map(concrete).collect();
        if two_d {
            // The slice axis the backend contract has and a 2-D network does not.
            dims.insert(2, Some(1));
            if let Some(r) = options.patch_size.filter(|r| r[0] != 1) {
                return Err(not_seg(
                    path,
                    format!(
                        "input rank 4: a 2-D network (n, c, y, x) takes patches of one slice, \
                         [1, y, x], not {r:?}"
                    ),
                ));
            }
        }

        let channels = match (dims[1], options.input_channels) {
            (Some(c), Some(want)) if c != want => {
                return Err(not_seg(
                    path,
                    format!("model has {c} input channels, {want} requested"),
                ))
            }
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => {
                return Err(EngineError::UnknownShape {
                    path: path.to_path_buf(),
                })
            }
        };
        let model_patch = match (dims[2], dims[3], dims[4]) {
            (Some(z), Some(y), Some(x)) => Some([z, y, x]),
            _ => None,
        };
        let patch = match (model_patch, options.patch_size) {
            (Some(m), Some(r)) if m != r => {
                return Err(EngineError::PatchMismatch {
                    path: path.to_path_buf(),
                    model: m,
                    requested: r,
                })
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => {
                return Err(EngineError::UnknownShape {
                    path: path.to_path_buf(),
                })
            }
        };
        if patch.contains(&0) || channels == 0 {
            return Err(not_seg(
                path,
                format!("empty input shape c={channels}, patch {patch:?}"),
            ));
        }

        // Keep only the final head: deep-supervision heads would cost memory and time for nothing.
        let outputs = model
            .output_outlets()
            .map_err(|e| load_err(path, e))?
            .to_vec();
        let Some(&first) = outputs.first() else {
            return Err(not_seg(path, "the model has no output".to_string()));
        };
        let class = outputs
            .iter()
            .copied()
            .find(|o| model.outlet_label(*o) == Some("class"));
        model
            .select_output_outlets(&[class.unwrap_or(first)])
            .map_err(|e| load_err(path, e))?;

        let fixed_batch = dims[0];
        let max_batch = fixed_batch.unwrap_or(options.max_batch.max(1));
        let mut backend = TractBackend {
            source: Source {
                path: path.to_path_buf(),
                model,
            },
            channels,
            patch,
            two_d,
            classes: 0,
            fixed_batch,
            max_batch,
            executor: make_executor(options.threads)?,
            states: HashMap::new(),
        };
        backend.prepare(max_batch)?;
        Ok(backend)
    }

    /// The model file this backend was loaded from.
    pub fn path(&self) -> &Path {
        &self.source.path
    }

    /// Builds (once) the optimised plan for `batch` patches and records the class count.
    fn prepare(&mut self, batch: usize) -> Result<(), EngineError> {
        if self.states.contains_key(&batch) {
            return Ok(());
        }
        let path = &self.source.path;
        let [z, y, x] = self.patch;
        let shape: Vec<usize> = if self.two_d {
            vec![batch, self.channels, y, x]
        } else {
            vec![batch, self.channels, z, y, x]
        };
        let typed = self
            .source
            .model
            .clone()
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &*shape))
            .and_then(|m| m.into_optimized())
            .map_err(|e| load_err(path, e))?;
        let out = typed.output_fact(0).map_err(|e| load_err(path, e))?;
        let out_shape: Option<Vec<usize>> = out.shape.as_concrete().map(|s| s.to_vec());
        let classes = match out_shape.as_deref() {
            Some([b, c, oz, oy, ox])
                if !self.two_d && *b == batch && [*oz, *oy, *ox] == self.patch =>
            {
                *c
            }
            Some([b, c, oy, ox]) if self.two_d && *b == batch && [1, *oy, *ox] == self.patch => *c,
            other => {
                return Err(not_seg(
                    path,
                    format!(
                        "output shape {other:?} for input {shape:?}, expected (n, classes, patch)"
                    ),
                ))
            }
        };
        if out.datum_type != f32::datum_type() {
            return Err(not_seg(
                path,
                format!("output type {:?}, expected f32", out.datum_type),
            ));
        }
        self.classes = classes;
        let options = RunOptions {
            executor: Some(self.executor.clone()),
            ..Default::default()
        };
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(|e| load_err(path, e))?;
        let state = plan.spawn().map_err(|e| load_err(path, e))?;
        self.states.insert(batch, state);
        Ok(())
    }
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn run(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError> {
        check_input_shape(&input, self.channels, self.patch, self.max_batch)?;
        let n = input.shape()[0];
        // A model with a fixed batch gets a zero-padded batch; a dynamic one a plan for `n`.
        let batch = self.fixed_batch.unwrap_or(n);
        let input: Array5<f32> = if batch == n {
            input.as_standard_layout().into_owned()
        } else {
            let [z, y, x] = self.patch;
            let mut padded = Array5::<f32>::zeros((batch, self.channels, z, y, x));
            padded.slice_mut(s![..n, .., .., .., ..]).assign(&input);
            padded
        };
        let tensor: Tensor = if self.two_d {
            input.index_axis_move(Axis(2), 0).into()
        } else {
            input.into()
        };
        self.prepare(batch)?;
        let state = self
            .states
            .get_mut(&batch)
            .ok_or_else(|| run_err("no plan"))?;
        let mut outputs = state.run(tvec!(tensor.into())).map_err(run_err)?;
        if outputs.is_empty() {
            return Err(run_err("the model returned no output"));
        }
        let logits = outputs
            .swap_remove(0)
            .into_tensor()
            .into_plain_array::<f32>()
            .map_err(run_err)?;
        let logits = if self.two_d {
            logits
                .into_dimensionality::<Ix4>()
                .map_err(run_err)?
                .insert_axis(Axis(2))
        } else {
            logits.into_dimensionality::<Ix5>().map_err(run_err)?
        };
        if batch == n {
            Ok(logits)
        } else {
            Ok(logits.slice(s![..n, .., .., .., ..]).to_owned())
        }
    }

    fn num_classes(&self) -> usize {
        self.classes
    }

    fn patch_size(&self) -> [usize; 3] {
        self.patch
    }

    fn input_channels(&self) -> usize {
        self.channels
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }
}

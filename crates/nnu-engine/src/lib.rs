//! Inference backends behind one small [`Backend`] trait: the `network(x)` step of nnU-Net's sliding
//! window, run on a batch of patches.
//!
//! A backend is loaded once for one model and one fixed patch shape, then called many times. It takes
//! a batch of patches `(n, c, z, y, x)` (f32, channel first, the array order of
//! `docs/architecture.md`) and returns the logits of the network's *final* head `(n, classes, z, y, x)`.
//! An export with deep supervision left on (the Ascend recipe's `model_ds.onnx`) has extra outputs: the
//! backend keeps the output named `class`, or the first output when none has that name, and discards
//! the others (tract prunes them from the graph).
//!
//! [`NativeBackend`] (cargo feature `native`, on by default) runs nnU-Net-family networks on the CPU
//! with our own kernels (channel-blocked direct convolution, AVX-512 / AVX2 / portable, fp32 or bf16),
//! importing the ONNX file itself (no tract): Conv, InstanceNormalization, LeakyRelu, Relu,
//! ConvTranspose (kernel = stride), Concat, Add and Identity; anything else is
//! [`EngineError::Unsupported`], which callers use to fall back to tract.
//!
//! [`TractBackend`] (cargo feature `tract`, on by default) runs ONNX models on the CPU with [tract](https://github.com/sonos/tract): the input
//! fact is fixed to the patch shape, the graph optimised once, and the matrix products spread over a
//! private thread pool of [`TractOptions::threads`] threads (tract-linalg's `multithread-mm`).
//!
//! ```no_run
//! use ndarray::Array5;
//! use nnu_engine::{Backend, TractBackend, TractOptions};
//!
//! # fn main() -> Result<(), nnu_engine::EngineError> {
//! let mut backend = TractBackend::load("model_ds.onnx", &TractOptions::default().threads(2))?;
//! let [z, y, x] = backend.patch_size();
//! let patch = Array5::<f32>::zeros((1, backend.input_channels(), z, y, x));
//! let logits = backend.run(patch.view())?;
//! assert_eq!(logits.shape()[1], backend.num_classes());
//! # Ok(())
//! # }
//! ```
//!
//! [`AclBackend`] (cargo feature `acl`, off by default) runs an ATC offline model (`.om`) on one Ascend
//! NPU through `nnu-acl`, which loads `libascendcl.so` at run time, so building it needs no CANN. A build
//! with `--no-default-features --features acl` compiles neither tract nor the native kernels.
//!
//! The trait is object-safe so callers can hold a `Box<dyn Backend>`. An onnxruntime backend is not
//! included: tract needs no native library, and `ort`'s dynamic loading would add a large dependency
//! tree to every build; it can be added later behind a non-default feature implementing [`Backend`].
//!
//! This crate deliberately does not apply softmax, mirroring or Gaussian weighting (that is
//! `nnu-tiling`), nor read tile files (that is `nnu-bins`).

#![warn(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use ndarray::{s, Array5, ArrayView5};

#[cfg(feature = "acl")]
mod acl;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "tract")]
mod tract;

#[cfg(feature = "acl")]
pub use crate::acl::AclBackend;
#[cfg(feature = "native")]
pub use crate::native::{NativeBackend, NativeOptions};
#[cfg(feature = "tract")]
pub use crate::tract::{TractBackend, TractOptions};
/// The AscendCL wrapper under [`AclBackend`] (cargo feature `acl`): its runtime, to load backends with.
#[cfg(feature = "acl")]
pub use nnu_acl;

/// Arithmetic of the convolutions of the native backend (tract runs f32 only). Defined whatever the
/// features, so that options and command lines can name it in a build without the native backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 everywhere (the default).
    F32,
    /// Inputs and weights rounded to bf16 (round to nearest even), products accumulated in f32.
    Bf16,
}

/// Errors of the inference backends. Each variant names the model file or the offending value.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file could not be read or parsed.
    #[error("{path}: cannot load the model: {message}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// The model is not a 3-D segmentation network with one `(n, c, z, y, x)` input.
    #[error("{path}: not a 3-D segmentation model: {reason}")]
    NotSegmentationModel {
        /// The model file.
        path: PathBuf,
        /// What does not fit (input count, rank, ...).
        reason: String,
    },
    /// The requested patch size differs from the one fixed in the model.
    #[error("{path}: the model's patch size is {model:?}, but {requested:?} was requested")]
    PatchMismatch {
        /// The model file.
        path: PathBuf,
        /// Spatial input shape fixed in the model (z, y, x).
        model: [usize; 3],
        /// Spatial shape the caller asked for.
        requested: [usize; 3],
    },
    /// The model's input shape is not fully known and no patch size was given.
    #[error("{path}: the model's input shape is not fixed; give the patch size and channel count")]
    UnknownShape {
        /// The model file.
        path: PathBuf,
    },
    /// A batch passed to [`Backend::run`] does not have the shape the backend was loaded for.
    #[error("input batch has shape {got:?}, the model expects (n <= {max_batch}, {expected:?})")]
    InputShape {
        /// Shape of the batch given.
        got: Vec<usize>,
        /// Expected (c, z, y, x).
        expected: [usize; 4],
        /// Largest batch the backend takes in one call.
        max_batch: usize,
    },
    /// A thread pool could not be created.
    #[error("cannot start a pool of {threads} threads: {message}")]
    ThreadPool {
        /// Requested thread count.
        threads: usize,
        /// What rayon reported.
        message: String,
    },
    /// A buffer (activations or packed weights) could not be allocated.
    #[error("cannot allocate {bytes} bytes")]
    OutOfMemory {
        /// Size of the failed allocation.
        bytes: usize,
    },
    /// The model uses an operator (or an operator variant) the native backend does not implement;
    /// callers may fall back to tract.
    #[error("{path}: node {node:?} ({op}): not supported by the native backend: {reason}")]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// ONNX operator type.
        op: String,
        /// Node name (its first output when unnamed).
        node: String,
        /// What is not supported.
        reason: String,
    },
    /// The requested arithmetic precision is not available on this CPU.
    #[error("{precision} precision is not available: {reason}")]
    PrecisionUnavailable {
        /// `bf16`, ...
        precision: &'static str,
        /// Why (which CPU feature is missing).
        reason: String,
    },
    /// Opening AscendCL, a device or an `.om` model (cargo feature `acl`).
    #[cfg(feature = "acl")]
    #[error(transparent)]
    Acl(#[from] nnu_acl::AclError),
    /// The backend failed while running the model.
    #[error("{backend}: inference failed: {message}")]
    Run {
        /// Backend name (`tract`, `acl`, ...).
        backend: &'static str,
        /// What the runtime reported.
        message: String,
    },
}

/// A loaded network for one fixed patch shape.
///
/// Implementations must accept any batch size from 1 to [`Backend::max_batch`] in [`Backend::run`];
/// [`Backend::run_all`] splits larger batches. The trait is object-safe: hold a `Box<dyn Backend>`.
pub trait Backend: Send {
    /// Short name used in messages and summaries (`"tract"`, `"acl"`).
    fn name(&self) -> &'static str;

    /// Runs a batch of patches `(n, c, z, y, x)` with `1 <= n <= max_batch()` and returns the logits of
    /// the final head `(n, classes, z, y, x)`.
    ///
    /// The input may have any strides. Errors with [`EngineError::InputShape`] when the shape does not
    /// match [`Backend::input_channels`] and [`Backend::patch_size`].
    fn run(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError>;

    /// Number of output channels (classes including background).
    fn num_classes(&self) -> usize;

    /// Spatial patch shape (z, y, x) the backend was loaded for.
    fn patch_size(&self) -> [usize; 3];

    /// Number of input channels (modalities).
    fn input_channels(&self) -> usize;

    /// Largest batch one [`Backend::run`] call accepts (1 for a model with a fixed batch of 1).
    fn max_batch(&self) -> usize;

    /// The compute time of the last [`Backend::run`] when the backend can tell it apart from copying the
    /// batch in and the logits out (the Ascend backend: the device's execution), else `None` (the
    /// default), and the caller times the whole call. Reported as a run's latency.
    fn compute_time(&self) -> Option<Duration> {
        None
    }

    /// Runs a batch of any size by splitting it into chunks of at most [`Backend::max_batch`] patches.
    fn run_all(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError> {
        let n = input.shape()[0];
        let max = self.max_batch().max(1);
        if n <= max {
            return self.run(input);
        }
        let [z, y, x] = self.patch_size();
        let mut out = Array5::<f32>::zeros((n, self.num_classes(), z, y, x));
        let mut start = 0;
        while start < n {
            let end = (start + max).min(n);
            let logits = self.run(input.slice(s![start..end, .., .., .., ..]))?;
            out.slice_mut(s![start..end, .., .., .., ..])
                .assign(&logits);
            start = end;
        }
        Ok(out)
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn run(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError> {
        (**self).run(input)
    }
    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }
    fn patch_size(&self) -> [usize; 3] {
        (**self).patch_size()
    }
    fn input_channels(&self) -> usize {
        (**self).input_channels()
    }
    fn max_batch(&self) -> usize {
        (**self).max_batch()
    }
    fn run_all(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError> {
        (**self).run_all(input)
    }
    fn compute_time(&self) -> Option<Duration> {
        (**self).compute_time()
    }
}

/// Checks that `input` is `(1..=max_batch, channels, patch)`; for use by [`Backend`] implementations.
pub fn check_input_shape(
    input: &ArrayView5<f32>,
    channels: usize,
    patch: [usize; 3],
    max_batch: usize,
) -> Result<(), EngineError> {
    let sh = input.shape();
    let expected = [channels, patch[0], patch[1], patch[2]];
    if sh[0] == 0 || sh[0] > max_batch || sh[1..] != expected {
        return Err(EngineError::InputShape {
            got: sh.to_vec(),
            expected,
            max_batch,
        });
    }
    Ok(())
}

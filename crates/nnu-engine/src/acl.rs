//! The Ascend backend (cargo feature `acl`): an `.om` model on one NPU through `nnu-acl`, which wraps
//! AscendCL and loads `libascendcl.so` at run time (so building this needs no CANN).

use std::path::Path;
use std::time::{Duration, Instant};

use ndarray::{Array5, ArrayView5};
use nnu_acl::{AclError, Runner, Runtime};

use crate::{check_input_shape, Backend, EngineError};

type Result<T, E = AclError> = std::result::Result<T, E>;

/// Runs an `.om` model on one Ascend device as a [`Backend`].
///
/// The model's input 0 must be `(n, c, z, y, x)` and its output 0 (the final head `class` of our exports;
/// ATC keeps the ONNX output order) `(n, classes, z, y, x)`, both static, f32 or f16. Other outputs (deep
/// supervision heads) are computed by the device but not copied back. `n` is [`Backend::max_batch`]; a
/// smaller batch is padded with zeros.
pub struct AclBackend {
    runner: Runner,
    batch: usize,
    channels: usize,
    classes: usize,
    patch: [usize; 3],
    host_out: Vec<f32>,
    /// Time of the last `aclmdlExecute`.
    execute: Option<Duration>,
}

impl AclBackend {
    /// Loads `model` on device `device`.
    pub fn load(
        rt: &Runtime,
        device: i32,
        model: impl AsRef<Path>,
    ) -> Result<AclBackend, EngineError> {
        let runner = Runner::new(rt, device, model)?;
        let info = runner.info();
        let bad = |reason: String| AclError::Model {
            path: runner.model_path().to_path_buf(),
            reason,
        };
        let dims = |d: &[i64]| -> Option<[usize; 5]> {
            if d.len() != 5 {
                return None;
            }
            let mut out = [0usize; 5];
            for (o, &v) in out.iter_mut().zip(d) {
                *o = usize::try_from(v).ok().filter(|&v| v > 0)?;
            }
            Some(out)
        };
        let i = dims(&info.inputs[0].dims).ok_or_else(|| {
            bad(format!(
                "input 0 has dims {:?}, expected (n, c, z, y, x)",
                info.inputs[0].dims
            ))
        })?;
        let o = dims(&info.outputs[0].dims).ok_or_else(|| {
            bad(format!(
                "output 0 has dims {:?}, expected (n, classes, z, y, x)",
                info.outputs[0].dims
            ))
        })?;
        if i[0] != o[0] || i[2..] != o[2..] {
            return Err(bad(format!(
                "output 0 {:?} does not match input 0 {:?} in batch and spatial size",
                info.outputs[0].dims, info.inputs[0].dims
            ))
            .into());
        }
        Ok(AclBackend {
            batch: i[0],
            channels: i[1],
            classes: o[1],
            patch: [i[2], i[3], i[4]],
            runner,
            host_out: Vec::new(),
            execute: None,
        })
    }

    /// The runner underneath (device, model description).
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    fn run_impl(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>> {
        let n = input.shape()[0];
        let owned;
        let data = match input.as_slice() {
            Some(s) => s,
            None => {
                owned = input.iter().copied().collect::<Vec<f32>>();
                &owned
            }
        };
        self.runner.set_input(0, data, true)?;
        self.execute = None;
        let started = Instant::now();
        self.runner.execute()?;
        self.execute = Some(started.elapsed());
        self.runner.output(0, &mut self.host_out)?;
        let [z, y, x] = self.patch;
        let per = self.classes * z * y * x;
        let v = self.host_out[..n * per].to_vec();
        Array5::from_shape_vec((n, self.classes, z, y, x), v).map_err(|e| AclError::Model {
            path: self.runner.model_path().to_path_buf(),
            reason: e.to_string(),
        })
    }
}

impl Backend for AclBackend {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn run(&mut self, input: ArrayView5<f32>) -> Result<Array5<f32>, EngineError> {
        check_input_shape(&input, self.channels, self.patch, self.batch)?;
        self.run_impl(input).map_err(|e| EngineError::Run {
            backend: "acl",
            message: e.to_string(),
        })
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
        self.batch
    }

    /// The time of the last run's `aclmdlExecute`, without the copies to and from the device (the
    /// compute time `benchmark` and `ais_bench` report).
    fn compute_time(&self) -> Option<Duration> {
        self.execute
    }
}

impl std::fmt::Debug for AclBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclBackend")
            .field("runner", &self.runner)
            .finish()
    }
}

//! Safe wrapper over AscendCL (Huawei CANN's runtime for Ascend NPUs): the process-wide runtime, devices
//! with their contexts, streams, device memory, `.om` models and their description, datasets and
//! execution, with f16 models' inputs and outputs converted from and to f32.
//!
//! `libascendcl.so` is loaded at run time ([`nnu_acl_sys`] explains why), so this crate builds and its
//! tests run without CANN: they load a small C test double of the library (`tests/fake_acl/fake_acl.c`).
//! Every `aclError` becomes an [`AclError::Call`] naming the function, the code, what it was called for,
//! and the runtime's own explanation from `aclGetRecentErrMsg`.
//!
//! ```no_run
//! use nnu_acl::{Runner, Runtime, RuntimeOptions};
//!
//! # fn main() -> Result<(), nnu_acl::AclError> {
//! let rt = Runtime::init(&RuntimeOptions::default())?; // finds CANN's libascendcl.so
//! let mut runner = Runner::new(&rt, 0, "nnunetplusplus.om")?;
//! let voxels = runner.info().inputs[0].elements().unwrap_or(0);
//! runner.set_input(0, &vec![0.0; voxels], false)?;
//! runner.execute()?;
//! let mut logits = Vec::new();
//! runner.output(0, &mut logits)?; // output 0: the final head, as f32
//! # Ok(())
//! # }
//! ```
//!
//! Deliberately not here: the inference backend on top (`nnu_engine::AclBackend`, cargo feature `acl`
//! of `nnu-engine`), tile files and the multi-device run over them
//! (`nnu_pipeline::infer`), asynchronous execution, dynamic shapes or batch gears, AIPP, DVPP, model
//! loading from memory, and op-level APIs. The models of this project are static `(1, 1, 128, 128, 128)`
//! networks run one tile at a time, as the recipe's `benchmark` does.

#![warn(missing_docs)]

mod device;
mod error;
mod model;
mod runtime;

pub use crate::device::{Device, DeviceBuffer, Stream};
pub use crate::error::{AclError, Result};
pub use crate::model::{DataType, Model, ModelInfo, Runner, TensorInfo};
pub use crate::runtime::{Runtime, RuntimeOptions};

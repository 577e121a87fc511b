//! Safe wrapper over AscendCL (Huawei CANN's runtime for Ascend NPUs): the process-wide runtime, devices
//! with their contexts, streams, device memory, `.om` models and their description, datasets, execution,
//! an [`nnu_engine::Backend`] on top, and a multi-device driver for tile files.
//!
//! `libascendcl.so` is loaded at run time ([`nnu_acl_sys`] explains why), so this crate builds and its
//! tests run without CANN: they load a small C test double of the library (`tests/fake_acl/fake_acl.c`).
//! Every `aclError` becomes an [`AclError::Call`] naming the function, the code, what it was called for,
//! and the runtime's own explanation from `aclGetRecentErrMsg`.
//!
//! ```no_run
//! use ndarray::Array5;
//! use nnu_acl::{AclBackend, Runtime, RuntimeOptions};
//! use nnu_engine::Backend;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = Runtime::init(&RuntimeOptions::default())?; // finds CANN's libascendcl.so
//! let mut backend = AclBackend::load(&rt, 0, "nnunetplusplus.om")?;
//! let [z, y, x] = backend.patch_size();
//! let logits = backend.run(Array5::<f32>::zeros((1, 1, z, y, x)).view())?;
//! assert_eq!(logits.shape()[1], backend.num_classes());
//! # Ok(())
//! # }
//! ```
//!
//! Multi-device runs over tile files (what `nnu-infer --backend acl --device 0,1,2,3` runs, there with
//! [`DumpLayout::Flat`] and the tiles its resume check left):
//!
//! ```no_run
//! use nnu_acl::{run_tiles, tiles_from_info, DriverOptions, Runtime, RuntimeOptions};
//!
//! # fn main() -> Result<(), nnu_acl::AclError> {
//! let rt = Runtime::init(&RuntimeOptions::default())?;
//! let tiles = tiles_from_info("nnunetplusplus_prep_bin.info")?;
//! let opts = DriverOptions::new("nnunetplusplus.om", vec![0, 1, 2, 3], "result");
//! let report = run_tiles(&rt, &tiles, &opts, &|_device| {})?;
//! for d in &report.devices {
//!     println!("device {}: {} tiles, {:.3} tiles/s", d.device, d.tiles, d.throughput());
//! }
//! println!("total: {:.3} tiles/s", report.throughput());
//! # Ok(())
//! # }
//! ```
//!
//! Deliberately not covered: asynchronous execution, dynamic shapes or batch gears, AIPP, DVPP, model
//! loading from memory, and op-level APIs. The models of this project are static `(1, 1, 128, 128, 128)`
//! networks run one tile at a time, as the recipe's `benchmark` does.

#![warn(missing_docs)]

mod backend;
mod device;
mod driver;
mod error;
mod model;
mod runtime;

pub use crate::backend::AclBackend;
pub use crate::device::{Device, DeviceBuffer, Stream};
pub use crate::driver::{
    run_tiles, tiles_from_dir, tiles_from_info, DeviceReport, DriverOptions, DriverReport,
    DumpLayout, Heads,
};
pub use crate::error::{AclError, Result};
pub use crate::model::{DataType, Model, ModelInfo, Runner, TensorInfo};
pub use crate::runtime::{Runtime, RuntimeOptions};

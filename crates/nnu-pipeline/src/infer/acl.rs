//! Loading an `.om` model on Ascend NPUs for [`InferPlan::run_devices`] (cargo feature `acl`).

use std::time::Duration;

use nnu_engine::nnu_acl::{AclError, Runtime, RuntimeOptions};
use nnu_engine::{AclBackend, EngineError};

use super::*;

/// Environment variable naming the `libascendcl.so` to load when none is given.
pub const LIBRARY_ENV: &str = "NNU_ACL_LIB";

/// Loads AscendCL (`library`, else `$NNU_ACL_LIB`, else CANN's usual places), checks that every device of
/// `devices` exists, and loads `model` on each of them in parallel, timing each load. Nothing is
/// written. The messages name the command-line options (`--device`, `--acl-lib`) that `nnu-infer` takes.
pub fn load_acl_devices(
    model: &Path,
    devices: &[i32],
    library: Option<PathBuf>,
) -> Result<Vec<Device>, PipelineError> {
    if !model.is_file() {
        return Err(input_err(model, "no such model file"));
    }
    let library = library.or_else(|| {
        std::env::var_os(LIBRARY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let acl = |e: AclError| PipelineError::Engine(EngineError::Acl(e));
    let rt = Runtime::init(&RuntimeOptions {
        library,
        config: None,
    })
    .map_err(|e| match e {
        AclError::NotFound { .. } => {
            PipelineError::Devices(format!("{e}; or give --acl-lib PATH or ${LIBRARY_ENV}"))
        }
        e => acl(e),
    })?;
    let count = rt.device_count().map_err(acl)?;
    for &d in devices {
        if u32::try_from(d).map_or(true, |d| d >= count) {
            return Err(PipelineError::Devices(format!(
                "--device {d}: no such device; AscendCL ({}) sees {count} device(s){}",
                rt.library_path().display(),
                if count > 0 {
                    format!(", ids 0..{}", count - 1)
                } else {
                    String::new()
                }
            )));
        }
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .map(|&id| {
                let rt = rt.clone();
                let handle = s.spawn(move || {
                    let started = Instant::now();
                    AclBackend::load(&rt, id, model).map(|b| (b, started.elapsed()))
                });
                (id, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(id, handle)| {
                let loaded: Result<(AclBackend, Duration), EngineError> =
                    handle.join().map_err(|_| PipelineError::WorkerPanic {
                        device: id,
                        message: "while loading the model".into(),
                    })?;
                let (backend, setup) = loaded.map_err(|e| PipelineError::Device {
                    device: id,
                    source: Box::new(e.into()),
                })?;
                Ok(Device {
                    id,
                    backend: Box::new(backend),
                    setup,
                })
            })
            .collect()
    })
}

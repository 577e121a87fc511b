//! The process-wide AscendCL runtime: the loaded library, `aclInit` and `aclFinalize`.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nnu_acl_sys as sys;

use crate::error::{AclError, Result};

/// Options of [`Runtime::init`].
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// The `libascendcl.so` to load. Default: CANN's usual places (see
    /// [`nnu_acl_sys::library_candidates`]).
    pub library: Option<PathBuf>,
    /// The JSON configuration file passed to `aclInit` (dump and profiling settings). Default: none.
    pub config: Option<PathBuf>,
}

pub(crate) struct Inner {
    pub(crate) lib: sys::AscendCl,
    path: PathBuf,
}

struct Global {
    inner: Option<Arc<Inner>>,
    handles: usize,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    inner: None,
    handles: 0,
});

fn global() -> std::sync::MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle on the process-wide AscendCL runtime.
///
/// AscendCL must be initialised once per process (`aclInit`) and finalised once (`aclFinalize`). Every
/// `Runtime` (and every device, model or buffer, which keep one) shares that single initialisation: the
/// first [`Runtime::init`] loads the library and calls `aclInit`, later ones return another handle, and
/// `aclFinalize` runs when the last handle is dropped. Some CANN versions refuse a second `aclInit` in the
/// same process after `aclFinalize`, so long-running programs should keep one handle for their lifetime.
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl Runtime {
    /// Loads AscendCL (once per process) and initialises it, or returns a handle on the running one.
    pub fn init(opts: &RuntimeOptions) -> Result<Runtime> {
        let mut g = global();
        if let Some(inner) = g.inner.clone() {
            if let Some(req) = &opts.library {
                if req != &inner.path {
                    return Err(AclError::OtherLibrary {
                        running: inner.path.clone(),
                        requested: req.clone(),
                    });
                }
            }
            g.handles += 1;
            return Ok(Runtime { inner });
        }
        let (lib, path) =
            sys::load(opts.library.as_deref()).map_err(|tried| AclError::NotFound { tried })?;
        let missing = sys::missing_symbols(&lib);
        if !missing.is_empty() {
            return Err(AclError::MissingSymbols {
                path,
                symbols: missing,
            });
        }
        let inner = Arc::new(Inner { lib, path });
        let config = match &opts.config {
            Some(p) => Some(CString::new(p.to_string_lossy().into_owned()).map_err(|_| {
                AclError::Model {
                    path: p.clone(),
                    reason: "path contains a NUL byte".into(),
                }
            })?),
            None => None,
        };
        let ptr = config.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: aclInit takes a NUL-terminated path or null.
        let code = unsafe { inner.lib.aclInit(ptr) };
        check(&inner, code, "aclInit", || inner.path.display().to_string())?;
        g.inner = Some(Arc::clone(&inner));
        g.handles = 1;
        Ok(Runtime { inner })
    }

    /// The library file in use.
    pub fn library_path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of devices AscendCL sees (`aclrtGetDeviceCount`).
    pub fn device_count(&self) -> Result<u32> {
        let mut n = 0u32;
        // SAFETY: n is a valid out pointer.
        let code = unsafe { self.inner.lib.aclrtGetDeviceCount(&mut n) };
        self.check(code, "aclrtGetDeviceCount", String::new)?;
        Ok(n)
    }

    pub(crate) fn lib(&self) -> &sys::AscendCl {
        &self.inner.lib
    }

    /// Turns an `aclError` into a typed error with `aclGetRecentErrMsg`.
    pub(crate) fn check(
        &self,
        code: i32,
        call: &'static str,
        context: impl FnOnce() -> String,
    ) -> Result<()> {
        check(&self.inner, code, call, context)
    }

    /// A typed error for a null pointer returned by `call`.
    pub(crate) fn null(&self, call: &'static str, context: impl FnOnce() -> String) -> AclError {
        AclError::Null {
            call,
            context: context(),
            message: recent_message(&self.inner),
        }
    }
}

impl Clone for Runtime {
    fn clone(&self) -> Self {
        global().handles += 1;
        Runtime {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let mut g = global();
        g.handles = g.handles.saturating_sub(1);
        if g.handles == 0 {
            if let Some(inner) = g.inner.take() {
                // SAFETY: every device, model and buffer holds a handle, so none is left at this point.
                let _ = unsafe { inner.lib.aclFinalize() };
            }
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.inner.path)
            .finish()
    }
}

fn recent_message(inner: &Inner) -> String {
    let Ok(get) = &inner.lib.aclGetRecentErrMsg else {
        return "(aclGetRecentErrMsg is not available in this CANN version)".into();
    };
    // SAFETY: the function returns null or a NUL-terminated string owned by the runtime.
    let p = unsafe { get() };
    if p.is_null() {
        return "(no message from aclGetRecentErrMsg)".into();
    }
    // SAFETY: non-null, NUL-terminated, valid until the next AscendCL call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn check(
    inner: &Inner,
    code: i32,
    call: &'static str,
    context: impl FnOnce() -> String,
) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(AclError::Call {
        call,
        code,
        context: context(),
        message: recent_message(inner),
    })
}

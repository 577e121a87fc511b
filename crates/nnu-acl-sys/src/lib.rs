//! Raw FFI bindings to Huawei CANN's AscendCL (`libascendcl.so`), loaded at run time.
//!
//! # Why run-time loading
//!
//! The tools of this project are built and tested on machines without CANN, and the same binary should use
//! an Ascend NPU when it runs on a machine that has one. Linking against `libascendcl.so` would make every
//! build need CANN, and would make the binary fail to start anywhere else. So the library is opened with
//! [`libloading`] when an ACL backend is asked for ([`load`] looks in CANN's usual places), and a machine
//! without CANN gets a clear error instead of a loader failure. The same mechanism lets the tests load a
//! small C test double of `libascendcl.so` (see `crates/nnu-acl/tests/fake_acl/`).
//!
//! # Where the declarations come from
//!
//! * Default: [`manual`], checked-in declarations of the functions `nnu-acl` calls, written from the
//!   public AscendCL API reference, in the exact shape bindgen generates (so the two are interchangeable).
//! * Feature `bindgen`: `build.rs` runs bindgen over `acl/acl.h`, `acl_mdl.h`, `acl_rt.h`, `acl_base.h` found
//!   through `ASCEND_TOOLKIT_HOME`, `ASCEND_HOME_PATH` or `/usr/local/Ascend/ascend-toolkit/latest`
//!   (`include/` or `runtime/include/`), allow-listing the `acl*` API, as a run-time loaded `AscendCl` too.
//!   This needs the CANN headers and libclang at build time. A libclang without a `clang` installation
//!   next to it gets the C compiler's builtin headers (`stddef.h`, ...) from `build.rs`, unless
//!   `BINDGEN_EXTRA_CLANG_ARGS` is set. Without the CANN headers the feature falls back to [`manual`]
//!   (with a build warning when a CANN environment variable is set); [`BINDINGS`] says which were used. `nnu-acl` has been built and its tests run against bindings
//!   generated from a copy of the public AscendCL headers (`acl.h` version 1.10.0); see `docs/ascend.md`.
//!
//! ```
//! // Without CANN on this machine, loading fails with the list of places tried.
//! match nnu_acl_sys::load(None) {
//!     Ok((_lib, path)) => println!("AscendCL from {}", path.display()),
//!     Err(tried) => assert!(!tried.is_empty()),
//! }
//! ```
//!
//! This crate deliberately has no safe API: `nnu-acl` wraps it.

#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]

use std::path::{Path, PathBuf};

#[cfg(nnu_acl_generated)]
#[allow(missing_docs, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}
#[cfg(nnu_acl_generated)]
pub use generated::*;

#[cfg(not(nnu_acl_generated))]
pub mod manual;
#[cfg(not(nnu_acl_generated))]
pub use manual::*;

/// Which declarations this build uses: `"bindgen"` (generated from the CANN headers by `build.rs`) or
/// `"manual"` (the checked-in [`manual`] module: the default, and the fallback of the `bindgen` feature
/// when no CANN headers are found).
#[cfg(nnu_acl_generated)]
pub const BINDINGS: &str = "bindgen";
/// Which declarations this build uses: `"bindgen"` (generated from the CANN headers by `build.rs`) or
/// `"manual"` (the checked-in [`manual`] module: the default, and the fallback of the `bindgen` feature
/// when no CANN headers are found).
#[cfg(not(nnu_acl_generated))]
pub const BINDINGS: &str = "manual";

/// The library file name.
pub const LIBRARY_NAME: &str = "libascendcl.so";

/// Where [`load`] looks for `libascendcl.so`, in order: `$ASCEND_TOOLKIT_HOME/lib64`,
/// `$ASCEND_TOOLKIT_HOME/runtime/lib64`, the same under `$ASCEND_HOME_PATH`, under
/// `/usr/local/Ascend/ascend-toolkit/latest` and `/usr/local/Ascend/nnrt/latest`, then the bare file name
/// (searched through `LD_LIBRARY_PATH` and the system's paths, as CANN's `set_env.sh` sets them up).
pub fn library_candidates() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"]
        .iter()
        .filter_map(|v| {
            std::env::var_os(v)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .collect();
    roots.push(PathBuf::from("/usr/local/Ascend/ascend-toolkit/latest"));
    roots.push(PathBuf::from("/usr/local/Ascend/nnrt/latest"));
    let mut out = Vec::new();
    for r in roots {
        for sub in ["lib64", "runtime/lib64", "acllib/lib64"] {
            let p = r.join(sub).join(LIBRARY_NAME);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out.push(PathBuf::from(LIBRARY_NAME));
    out
}

/// Loads AscendCL from `path`, or else from the first of [`library_candidates`] that loads. On failure,
/// returns every path tried with the loader's message.
pub fn load(path: Option<&Path>) -> Result<(AscendCl, PathBuf), Vec<(PathBuf, String)>> {
    let candidates = match path {
        Some(p) => vec![p.to_path_buf()],
        None => library_candidates(),
    };
    let mut tried = Vec::new();
    for c in candidates {
        let is_bare = c.parent().is_none_or(|p| p.as_os_str().is_empty());
        if !is_bare && path.is_none() && !c.is_file() {
            tried.push((c, "no such file".to_string()));
            continue;
        }
        // SAFETY: the file is AscendCL (or a test double of it) by the contract of this function.
        match unsafe { AscendCl::new(&c) } {
            Ok(lib) => return Ok((lib, c)),
            Err(e) => tried.push((c, e.to_string())),
        }
    }
    Err(tried)
}

macro_rules! required {
    ($($name:ident),* $(,)?) => {
        /// Names of the functions `nnu-acl` needs that the loaded library lacks (empty when all are there).
        /// `aclGetRecentErrMsg` is optional (older CANN lacks it) and not listed.
        pub fn missing_symbols(lib: &AscendCl) -> Vec<&'static str> {
            let mut out = Vec::new();
            $( if lib.$name.is_err() { out.push(stringify!($name)); } )*
            out
        }
    };
}

required!(
    aclInit,
    aclFinalize,
    aclrtSetDevice,
    aclrtResetDevice,
    aclrtGetDeviceCount,
    aclrtCreateContext,
    aclrtDestroyContext,
    aclrtSetCurrentContext,
    aclrtCreateStream,
    aclrtDestroyStream,
    aclrtSynchronizeStream,
    aclrtMalloc,
    aclrtFree,
    aclrtMemcpy,
    aclmdlLoadFromFile,
    aclmdlUnload,
    aclmdlCreateDesc,
    aclmdlDestroyDesc,
    aclmdlGetDesc,
    aclmdlGetNumInputs,
    aclmdlGetNumOutputs,
    aclmdlGetInputSizeByIndex,
    aclmdlGetOutputSizeByIndex,
    aclmdlGetInputDims,
    aclmdlGetOutputDims,
    aclmdlGetInputNameByIndex,
    aclmdlGetOutputNameByIndex,
    aclmdlGetInputDataType,
    aclmdlGetOutputDataType,
    aclmdlCreateDataset,
    aclmdlDestroyDataset,
    aclmdlAddDatasetBuffer,
    aclCreateDataBuffer,
    aclDestroyDataBuffer,
    aclmdlExecute,
);

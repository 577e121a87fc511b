//! Shared by the test binaries of `nnu-acl`, and of `nnu-engine` and `nnu-pipeline` with their `acl`
//! feature (through `#[path]`): builds the C test double of libascendcl.so and writes fake models.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds `crates/nnu-acl/tests/fake_acl/fake_acl.c` into `$CARGO_TARGET_TMPDIR/fake_acl-<binary>/libascendcl.so` once
/// per test binary, with the system C compiler (`cc`, or `$CC`).
pub fn fake_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        // `crates/CRATE/..`: the same path from each crate that includes this file.
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../nnu-acl/tests/fake_acl/fake_acl.c");
        let exe = std::env::current_exe().unwrap();
        let tag = exe.file_name().unwrap().to_string_lossy().into_owned();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fake_acl-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("libascendcl.so");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-lpthread")
            .status()
            .unwrap_or_else(|e| {
                panic!("these tests need a C compiler to build the AscendCL test double: {cc}: {e}")
            });
        assert!(status.success(), "{cc} failed to build {}", src.display());
        out
    })
    .clone()
}

/// The fake model of most tests: one input (1, 1, 4, 4, 4), two outputs (1, 3, 4, 4, 4), f32.
pub const MODEL: &str = "batch 1\nchannels 1\npatch 4 4 4\nclasses 3\nheads 2\ndtype float";

/// Input `seed + 0.25 * voxel` of [`MODEL`].
pub fn input(seed: f32) -> ndarray::Array5<f32> {
    ndarray::Array5::from_shape_fn((1, 1, 4, 4, 4), |(_, _, z, y, x)| {
        seed + (z * 16 + y * 4 + x) as f32 * 0.25
    })
}

/// Writes a fake `.om` model (see fake_acl.c for the format).
pub fn fake_model(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("FAKEOM\n{body}\n")).unwrap();
    p
}

/// The test double's own counters, read through a second handle on the same library.
pub struct Probe {
    lib: libloading::Library,
}

impl Probe {
    pub fn new() -> Probe {
        // SAFETY: the test double has no initialisers; dlopen returns the already loaded copy.
        Probe {
            lib: unsafe { libloading::Library::new(fake_lib()) }.unwrap(),
        }
    }

    /// Allocations, buffers, datasets, descriptions, contexts, streams and models not yet released.
    pub fn live_objects(&self) -> i64 {
        // SAFETY: symbol of the test double with this signature.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn() -> i64> =
                self.lib.get(b"fakeacl_live_objects\0").unwrap();
            f()
        }
    }

    /// Executions run on `device` so far.
    pub fn exec_count(&self, device: i32) -> i64 {
        // SAFETY: symbol of the test double with this signature.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn(i32) -> i64> =
                self.lib.get(b"fakeacl_exec_count\0").unwrap();
            f(device)
        }
    }
}

/// Runtime options loading the test double.
pub fn options() -> nnu_acl::RuntimeOptions {
    nnu_acl::RuntimeOptions {
        library: Some(fake_lib()),
        config: None,
    }
}

//! With the `bindgen` feature: generate `OUT_DIR/bindings.rs` from the CANN headers found through
//! `ASCEND_TOOLKIT_HOME`, `ASCEND_HOME_PATH` or `/usr/local/Ascend/ascend-toolkit/latest` (`include/` or
//! `runtime/include/`), as a run-time loaded library (`AscendCl`) with the `acl*` API only.
//! Without the feature this script does nothing, so the default build needs neither CANN nor libclang.
//!
//! With the feature but no CANN headers (`cargo build --all-features` on a CI machine, docs.rs), the
//! checked-in bindings are used instead: silently when no CANN environment is set at all, with a build
//! warning when `ASCEND_TOOLKIT_HOME` or `ASCEND_HOME_PATH` is set but holds no `acl/acl.h`. Only a
//! successful generation sets `cfg(nnu_acl_generated)`, which selects the generated bindings.
//!
//! libclang needs its own builtin headers (`stddef.h`, `stdint.h`, ...), which it finds through a `clang`
//! installation. A libclang without one (for instance the `libclang` Python wheel pointed at with
//! `LIBCLANG_PATH`) fails on CANN's `#include <stddef.h>`. When no `clang` (or `$CLANG_PATH`) answers
//! `-print-resource-dir` and `BINDGEN_EXTRA_CLANG_ARGS` is not set, the C compiler's builtin header folder
//! (`cc -print-file-name=include`, which has the same headers) is passed instead.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(nnu_acl_generated)");
    println!("cargo:rerun-if-env-changed=ASCEND_TOOLKIT_HOME");
    println!("cargo:rerun-if-env-changed=ASCEND_HOME_PATH");
    for v in [
        "BINDGEN_EXTRA_CLANG_ARGS",
        "CLANG_PATH",
        "LIBCLANG_PATH",
        "CC",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    #[cfg(feature = "bindgen")]
    generate::run();
}

#[cfg(feature = "bindgen")]
mod generate {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The first line `program ARG` prints, if it runs and succeeds.
    fn ask(program: &str, arg: &str) -> Option<String> {
        let out = Command::new(program).arg(arg).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let line = text.lines().next()?.trim().to_string();
        (out.status.success() && !line.is_empty()).then_some(line)
    }

    /// `-isystem DIR` for the builtin headers when libclang may not find its own (see the file's docs).
    fn builtin_headers() -> Option<String> {
        if std::env::var_os("BINDGEN_EXTRA_CLANG_ARGS").is_some() {
            return None;
        }
        let clang = std::env::var("CLANG_PATH").unwrap_or_else(|_| "clang".into());
        if ask(&clang, "-print-resource-dir").is_some() {
            return None; // bindgen asks this clang for its include paths itself
        }
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let dir = PathBuf::from(ask(&cc, "-print-file-name=include")?);
        if !dir.join("stddef.h").is_file() {
            return None;
        }
        println!(
            "cargo:warning=nnu-acl-sys: no clang executable found; using {}'s builtin headers in {} \
             (set BINDGEN_EXTRA_CLANG_ARGS to choose others)",
            cc,
            dir.display()
        );
        Some(format!("-isystem{}", dir.display()))
    }

    fn include_dir() -> Option<PathBuf> {
        let roots = ["ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"]
            .iter()
            .filter_map(|v| std::env::var_os(v).map(PathBuf::from))
            .chain(std::iter::once(PathBuf::from(
                "/usr/local/Ascend/ascend-toolkit/latest",
            )));
        for root in roots {
            for sub in ["include", "runtime/include"] {
                let dir = root.join(sub);
                if dir.join("acl/acl.h").is_file() {
                    return Some(dir);
                }
            }
        }
        None
    }

    pub fn run() {
        let Some(inc) = include_dir() else {
            let cann_env = ["ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
            if cann_env && std::env::var_os("DOCS_RS").is_none() {
                println!(
                    "cargo:warning=nnu-acl-sys: feature `bindgen`: no acl/acl.h under $ASCEND_TOOLKIT_HOME, \
                     $ASCEND_HOME_PATH or /usr/local/Ascend/ascend-toolkit/latest (include/ or \
                     runtime/include/); using the checked-in bindings"
                );
            }
            return;
        };
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let mut builder = bindgen::Builder::default()
            .clang_arg(format!("-I{}", inc.display()))
            .clang_args(builtin_headers())
            .dynamic_library_name("AscendCl")
            .allowlist_function("acl.*")
            .allowlist_type("acl.*")
            .allowlist_var("ACL_.*")
            .layout_tests(false)
            .derive_default(true)
            .generate_comments(false);
        for h in [
            "acl/acl.h",
            "acl/acl_mdl.h",
            "acl/acl_rt.h",
            "acl/acl_base.h",
        ] {
            let p: &Path = &inc.join(h);
            if p.is_file() {
                println!("cargo:rerun-if-changed={}", p.display());
                builder = builder.header(p.display().to_string());
            }
        }
        let bindings = builder
            .generate()
            .unwrap_or_else(|e| panic!("bindgen failed on the headers in {}: {e}", inc.display()));
        bindings
            .write_to_file(out.join("bindings.rs"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.join("bindings.rs").display()));
        println!("cargo:rustc-cfg=nnu_acl_generated");
    }
}

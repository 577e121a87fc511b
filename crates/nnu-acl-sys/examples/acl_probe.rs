//! Looks for AscendCL (`libascendcl.so`) the way `nnu-acl` does and reports what it found: the library,
//! the functions `nnu-acl` needs that it lacks, and, when it initialises, the number of NPUs.
//!
//! ```text
//! cargo run -p nnu-acl-sys --example acl_probe [PATH/TO/libascendcl.so]
//! ```
//! On a machine without CANN it lists every place it looked and exits with status 1.

use std::path::PathBuf;

fn main() {
    let path = std::env::args().nth(1).map(PathBuf::from);
    println!("bindings: {}", nnu_acl_sys::BINDINGS);
    let (lib, found) = match nnu_acl_sys::load(path.as_deref()) {
        Ok(v) => v,
        Err(tried) => {
            println!("no AscendCL could be loaded; tried:");
            for (p, why) in tried {
                println!("  {}: {why}", p.display());
            }
            std::process::exit(1);
        }
    };
    println!("loaded {}", found.display());
    let missing = nnu_acl_sys::missing_symbols(&lib);
    if !missing.is_empty() {
        println!("missing functions: {}", missing.join(", "));
        std::process::exit(1);
    }
    // SAFETY: every symbol is present (checked above); a null config path is allowed by aclInit.
    unsafe {
        let rc = lib.aclInit(std::ptr::null());
        if rc != 0 {
            println!("aclInit failed with error {rc}");
            std::process::exit(1);
        }
        let mut count = 0u32;
        let rc = lib.aclrtGetDeviceCount(&mut count);
        if rc == 0 {
            println!("{count} NPU(s)");
        } else {
            println!("aclrtGetDeviceCount failed with error {rc}");
        }
        lib.aclFinalize();
    }
}

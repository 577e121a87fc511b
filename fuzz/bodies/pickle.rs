//! Body of the `pickle` target: any byte string through the pickle reader. It returns `Ok` or `Err`, never
//! panics or hangs, and whatever decodes also renders. Shared by `fuzz/fuzz_targets/pickle.rs` and
//! `crates/nnu-artifacts/tests/fuzz_smoke.rs` (included with `#[path]`).

/// Runs one input.
pub fn run(data: &[u8]) {
    match nnu_artifacts::pickle::from_slice(data) {
        Ok(v) => {
            let _ = v.type_name();
            let _ = v.to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

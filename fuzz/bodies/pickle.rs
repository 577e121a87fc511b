//! Body of the `pickle` target: any byte string through the pickle reader. It returns `Ok` or `Err`, never
//! panics or hangs, and whatever decodes also renders (the first 64 KiB of it: the full text of a value whose
//! shared sub-objects nest is exponentially long, as Python's `repr` would be). Shared by
//! `fuzz/fuzz_targets/pickle.rs` and `crates/nnu-artifacts/tests/fuzz_smoke.rs` (included with `#[path]`).

use std::fmt::Write;

/// A `fmt::Write` that fails once `0` bytes are left, which stops the formatting.
struct Bounded(usize);

impl Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = self.0.checked_sub(s.len()).ok_or(std::fmt::Error)?;
        Ok(())
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    match nnu_artifacts::pickle::from_slice(data) {
        Ok(v) => {
            let _ = v.type_name();
            let _ = write!(Bounded(64 << 10), "{v}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

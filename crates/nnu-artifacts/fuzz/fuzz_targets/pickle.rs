//! Any byte string: the pickle reader returns Ok or Err, never panics, never hangs; whatever decodes renders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = nnu_artifacts::pickle::from_slice(data) {
        let _ = v.to_string();
    }
});

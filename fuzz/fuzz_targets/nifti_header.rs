//! cargo-fuzz target `nifti_header`: the body is `bodies/nifti_header.rs`, shared with the stable smoke test.
#![no_main]

#[path = "../bodies/nifti_header.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));

//! cargo-fuzz target `nifti_file`: the body is `bodies/nifti_file.rs`, shared with the stable smoke test.
#![no_main]

#[path = "../bodies/nifti_file.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));

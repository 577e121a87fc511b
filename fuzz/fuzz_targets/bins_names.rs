//! cargo-fuzz target `bins_names`: the body is `bodies/bins_names.rs`, shared with the stable smoke test.
#![no_main]

#[path = "../bodies/bins_names.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));

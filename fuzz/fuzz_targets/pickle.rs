//! cargo-fuzz target `pickle`: the body is `bodies/pickle.rs`, shared with the stable smoke test.
#![no_main]

#[path = "../bodies/pickle.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));

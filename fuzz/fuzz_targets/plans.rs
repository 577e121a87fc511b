//! cargo-fuzz target `plans`: the body is `bodies/plans.rs`, shared with the stable smoke test.
#![no_main]

#[path = "../bodies/plans.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));

//! Smoke run of the `bins_names` fuzz target on the stable toolchain (see `docs/fuzzing.md`): every
//! regression input of `fuzz/regressions/bins_names/`, every seed, then a few thousand fixed-seed mutations
//! through the body cargo-fuzz runs (`fuzz/bodies/bins_names.rs`), which also checks that whatever parses
//! formats back to the same value.

#[path = "../../../fuzz/bodies/bins_names.rs"]
mod bins_names_body;
#[path = "../../../fuzz/smoke.rs"]
mod smoke;

#[test]
fn bins_names_target_smoke() {
    smoke::smoke(
        "bins_names",
        bins_names_body::run,
        10_000,
        0x6a09_e667_f3bc_c909,
        4096,
    );
}

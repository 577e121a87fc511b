//! Smoke run of the `pickle` and `plans` fuzz targets on the stable toolchain (see `docs/fuzzing.md`): every
//! regression input of `fuzz/regressions/`, every seed, then a few thousand fixed-seed mutations through the
//! same bodies cargo-fuzz runs (`fuzz/bodies/*.rs`). A body panics on a bug; bad input must only give errors.

#[path = "../../../fuzz/bodies/pickle.rs"]
mod pickle_body;
#[path = "../../../fuzz/bodies/plans.rs"]
mod plans_body;
#[path = "../../../fuzz/smoke.rs"]
mod smoke;

#[test]
fn pickle_target_smoke() {
    smoke::smoke(
        "pickle",
        pickle_body::run,
        3000,
        0x9e37_79b9_7f4a_7c15,
        64 << 10,
    );
}

#[test]
fn plans_target_smoke() {
    smoke::smoke(
        "plans",
        plans_body::run,
        3000,
        0xd1b5_4a32_d192_ed03,
        64 << 10,
    );
}

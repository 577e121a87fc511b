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
        10_000,
        0x9e37_79b9_7f4a_7c15,
        64 << 10,
    );
}

#[test]
fn plans_target_smoke() {
    smoke::smoke(
        "plans",
        plans_body::run,
        5000,
        0xd1b5_4a32_d192_ed03,
        64 << 10,
    );
}

fn regression(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        smoke::root()
            .join("fuzz/regressions")
            .join(target)
            .join(name),
    )
    .expect("regression")
}

/// Found by review while writing the targets: two dict keys that are distinct chains of 40 nested tuples,
/// each level `(t, t)` from the memo, made `key_eq` exponential (2^40 comparisons).
#[test]
fn nested_shared_tuple_keys_compare_in_linear_time() {
    let v = nnu_artifacts::pickle::from_slice(&regression("pickle", "tuple_key_fanout.pkl"))
        .expect("decodes");
    let d = v.as_dict().expect("dict");
    // The keys are equal, so the second value replaces the first, as in Python.
    assert_eq!(d.entries.len(), 1);
    assert_eq!(d.entries[0].1.as_i64(), Some(2));
}

/// Found by review: a damaged `num_classes` sized the default `all_classes` (`1..=num_classes`): a capacity
/// overflow panic for 2^62, gigabytes for 10^9.
#[test]
fn huge_num_classes_is_an_error() {
    let err = nnu_artifacts::Plans::from_json_slice(&regression("plans", "huge_num_classes.json"))
        .expect_err("refused");
    assert!(err.to_string().contains("num_classes"), "{err}");
}

/// Found by review: the error for a wrong-typed value rendered the whole value; `[l, l]` nested 40 times
/// from the memo renders to 2^40 items.
#[test]
fn error_messages_render_only_a_prefix() {
    let data = regression("plans", "shared_fanout_in_error.pkl");
    let err = nnu_artifacts::Plans::from_pickle_slice(&data).expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("num_stages") && msg.len() < 300, "{msg}");
}

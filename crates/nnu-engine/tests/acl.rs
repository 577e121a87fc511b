//! The Ascend backend (cargo feature `acl`) against the C test double of libascendcl.so
//! (`crates/nnu-acl/tests/fake_acl/fake_acl.c`): description, runs through strided views, shape checks,
//! the compute time, and execution errors. Values are exact (the fake model computes `(c + 1) * x` for
//! the final head). Run with `cargo test -p nnu-engine --features acl` (`cargo test --workspace` enables
//! the feature through `nnu-infer`).

#![cfg(feature = "acl")]

#[path = "../../nnu-acl/tests/common/mod.rs"]
mod common;

use common::{fake_model, input, options, MODEL};
use ndarray::{s, Array5};
use nnu_acl::{DataType, Runtime};
use nnu_engine::{AclBackend, Backend};

#[test]
fn backend_loads_describes_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::init(&options()).unwrap();
    assert_eq!(rt.device_count().unwrap(), 4);
    let model = fake_model(dir.path(), "m.om", MODEL);
    let mut b = AclBackend::load(&rt, 1, &model).unwrap();
    assert_eq!(
        (
            b.name(),
            b.num_classes(),
            b.patch_size(),
            b.input_channels(),
            b.max_batch()
        ),
        ("acl", 3, [4, 4, 4], 1, 1)
    );
    let info = b.runner().info();
    assert_eq!(info.inputs[0].name, "image");
    assert_eq!(info.inputs[0].dims, vec![1, 1, 4, 4, 4]);
    assert_eq!(info.inputs[0].size, 64 * 4);
    assert_eq!(info.inputs[0].dtype, DataType::Float32);
    assert_eq!(info.outputs.len(), 2);
    assert_eq!(info.outputs[0].name, "class");
    assert_eq!(info.outputs[1].size, 3 * 64 * 4);

    // A non-contiguous view (every other voxel of a larger array) goes through the copy path.
    let big = Array5::from_shape_fn((1, 1, 8, 4, 4), |(_, _, z, y, x)| {
        (z * 16 + y * 4 + x) as f32 - 7.5
    });
    let view = big.slice(s![.., .., ..;2, .., ..]);
    let out = b.run(view).unwrap();
    assert_eq!(out.shape(), &[1, 3, 4, 4, 4]);
    for ((_, c, z, y, x), v) in out.indexed_iter() {
        assert_eq!(*v, (c + 1) as f32 * view[[0, 0, z, y, x]], "class {c}");
    }
    // The device's execution is timed apart from the copies.
    assert!(b.compute_time().is_some());
    // Wrong shapes are refused before touching the device.
    assert!(b.run(Array5::<f32>::zeros((2, 1, 4, 4, 4)).view()).is_err());
    assert!(b.run(Array5::<f32>::zeros((1, 1, 4, 4, 5)).view()).is_err());
}

#[test]
fn execution_errors_carry_the_call_code_and_recent_message() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::init(&options()).unwrap();
    // An execution failure (the fake's "aicore exception" on a chosen input value).
    let failing = fake_model(dir.path(), "f.om", &format!("{MODEL}\nfail_value 7"));
    let mut b = AclBackend::load(&rt, 2, &failing).unwrap();
    let mut x = input(0.0);
    assert!(b.run(x.view()).is_ok());
    x[[0, 0, 0, 0, 0]] = 7.0;
    let e = b.run(x.view()).unwrap_err().to_string();
    assert!(
        e.contains("aclmdlExecute failed with error 507011") && e.contains("aicore exception"),
        "{e}"
    );
}

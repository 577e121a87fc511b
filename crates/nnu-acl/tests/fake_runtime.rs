//! nnu-acl against the C test double of libascendcl.so: loading, description, buffer sizes, datasets,
//! copies both ways, fp16 conversion and error paths. Values are exact (the fake model computes
//! `(c + 1) * x + head` in f32, or in f16 on values exactly representable there). The backend on top is
//! tested in `nnu-engine` (`tests/acl.rs`), the multi-device run over tile files in `nnu-pipeline`
//! (`tests/infer_acl.rs`), both against the same test double.

mod common;

use std::path::PathBuf;

use common::{fake_model, input, options, MODEL};
use nnu_acl::{AclError, DataType, Runner, Runtime};

#[test]
fn fp16_models_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::init(&options()).unwrap();
    let model = fake_model(
        dir.path(),
        "h.om",
        &MODEL.replace("dtype float", "dtype float16"),
    );
    let mut r = Runner::new(&rt, 0, &model).unwrap();
    assert_eq!(r.info().inputs[0].dtype, DataType::Float16);
    assert_eq!(r.info().inputs[0].size, 64 * 2);
    let x = input(-3.0);
    r.set_input(0, x.as_slice().unwrap(), false).unwrap();
    r.execute().unwrap();
    let mut out = Vec::new();
    r.output(1, &mut out).unwrap();
    assert_eq!(out.len(), 3 * 64);
    for c in 0..3 {
        for i in 0..64 {
            assert_eq!(
                out[c * 64 + i],
                (c + 1) as f32 * x.as_slice().unwrap()[i] + 1.0
            );
        }
    }
    // Too much data for the input is a size error naming the input.
    let e = r.set_input(0, &[0.0; 65], false).unwrap_err();
    assert!(
        matches!(
            e,
            AclError::Size {
                expected: 128,
                got: 130,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn acl_errors_carry_the_call_code_and_recent_message() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::init(&options()).unwrap();
    let model = fake_model(dir.path(), "m.om", MODEL);
    match Runner::new(&rt, 9, &model) {
        Err(AclError::Call {
            call,
            code,
            context,
            message,
        }) => {
            assert_eq!((call, code), ("aclrtSetDevice", 107001));
            assert_eq!(context, "device 9");
            assert!(message.contains("invalid device id"), "{message}");
        }
        other => panic!("expected an aclrtSetDevice error, got {other:?}"),
    }
    let missing = dir.path().join("missing.om");
    let e = Runner::new(&rt, 0, &missing).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("aclmdlLoadFromFile failed with error 100003"),
        "{text}"
    );
    assert!(
        text.contains("missing.om on device 0") && text.contains("cannot open model file"),
        "{text}"
    );
    let bad = fake_model(dir.path(), "bad.om", "patch 4 4");
    assert!(matches!(
        Runner::new(&rt, 0, &bad),
        Err(AclError::Call {
            call: "aclmdlLoadFromFile",
            ..
        })
    ));

    // A different library while the runtime is up.
    match Runtime::init(&nnu_acl::RuntimeOptions {
        library: Some(PathBuf::from("/elsewhere/libascendcl.so")),
        config: None,
    }) {
        Err(AclError::OtherLibrary { .. }) => {}
        other => panic!("expected OtherLibrary, got {other:?}"),
    }
}

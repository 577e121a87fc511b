//! Process-wide lifecycle against the C test double, in its own test binary (one test, so no other test
//! holds the runtime): library lookup errors, missing symbols, init/finalize, and that every AscendCL
//! object is released (after a multi-device run too: `nnu-pipeline`'s `tests/infer_acl.rs`).

mod common;

use common::{fake_lib, fake_model, options, Probe};
use nnu_acl::{AclError, Runner, Runtime, RuntimeOptions};

#[test]
fn lookup_symbols_init_finalize_and_no_leaks() {
    let dir = tempfile::tempdir().unwrap();
    match Runtime::init(&RuntimeOptions {
        library: Some(dir.path().join("nowhere/libascendcl.so")),
        config: None,
    }) {
        Err(AclError::NotFound { tried }) => assert_eq!(tried.len(), 1),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // A library with only some of the symbols.
    let src = dir.path().join("partial.c");
    std::fs::write(&src, "int aclInit(const char *c) { (void)c; return 0; }\n").unwrap();
    let partial = dir.path().join("libpartial.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    assert!(std::process::Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&partial)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    match Runtime::init(&RuntimeOptions {
        library: Some(partial.clone()),
        config: None,
    }) {
        Err(AclError::MissingSymbols { path, symbols }) => {
            assert_eq!(path, partial);
            assert!(symbols.contains(&"aclmdlExecute") && !symbols.contains(&"aclInit"));
        }
        other => panic!("expected MissingSymbols, got {other:?}"),
    }

    let probe = Probe::new();
    assert_eq!(probe.live_objects(), 0);
    {
        let rt = Runtime::init(&options()).unwrap();
        assert_eq!(rt.library_path(), fake_lib());
        let model = fake_model(
            dir.path(),
            "m.om",
            "batch 1\nchannels 1\npatch 4 4 4\nclasses 2\nheads 5",
        );
        // What nnu_engine::AclBackend holds.
        let mut b = Runner::new(&rt, 0, &model).unwrap();
        // device context + stream + model + description + 6 buffers + 2 datasets + 6 data buffers
        assert_eq!(probe.live_objects(), 1 + 1 + 1 + 1 + 6 + 2 + 6);
        let run = |b: &mut Runner| {
            b.set_input(0, &[1.0; 64], true).unwrap();
            b.execute().unwrap();
            b.output(0, &mut Vec::new()).unwrap();
        };
        run(&mut b);
        // The runner can move to another thread and run there.
        let b = std::thread::spawn(move || {
            run(&mut b);
            b
        })
        .join()
        .unwrap();
        drop(b);
        assert_eq!(probe.live_objects(), 0);
        // A second handle shares the initialisation.
        let rt2 = Runtime::init(&options()).unwrap();
        drop(rt);
        assert_eq!(rt2.device_count().unwrap(), 4);
    }
    // All handles gone: aclFinalize ran, so a new init calls aclInit again (the fake refuses a second
    // aclInit without aclFinalize, so this also checks that finalize happened).
    let rt = Runtime::init(&options()).unwrap();
    drop(rt);
}

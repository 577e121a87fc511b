//! nnu-acl against the C test double of libascendcl.so: loading, description, buffer sizes, datasets,
//! copies both ways, fp16 conversion, error paths and multi-device scheduling. Values are exact (the fake
//! model computes `(c + 1) * x + head` in f32, or in f16 on values exactly representable there).

mod common;

use std::path::PathBuf;

use common::{fake_model, options, Probe};
use ndarray::{s, Array5};
use nnu_acl::{
    run_tiles, tiles_from_dir, AclBackend, AclError, DataType, DriverOptions, DumpLayout, Heads,
    Runner, Runtime,
};
use nnu_bins::{DumpIndex, DumpNaming, MappedBin};
use nnu_engine::Backend;

const MODEL: &str = "batch 1\nchannels 1\npatch 4 4 4\nclasses 3\nheads 2\ndtype float";

fn input(seed: f32) -> Array5<f32> {
    Array5::from_shape_fn((1, 1, 4, 4, 4), |(_, _, z, y, x)| {
        seed + (z * 16 + y * 4 + x) as f32 * 0.25
    })
}

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
    // Wrong shapes are refused before touching the device.
    assert!(b.run(Array5::<f32>::zeros((2, 1, 4, 4, 4)).view()).is_err());
    assert!(b.run(Array5::<f32>::zeros((1, 1, 4, 4, 5)).view()).is_err());
}

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

    // A different library while the runtime is up.
    match Runtime::init(&nnu_acl::RuntimeOptions {
        library: Some(PathBuf::from("/elsewhere/libascendcl.so")),
        config: None,
    }) {
        Err(AclError::OtherLibrary { .. }) => {}
        other => panic!("expected OtherLibrary, got {other:?}"),
    }
}

#[test]
fn tiles_run_on_four_devices_with_dumps_like_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::init(&options()).unwrap();
    let model = fake_model(dir.path(), "m.om", MODEL);
    let bins = dir.path().join("input_bins");
    std::fs::create_dir(&bins).unwrap();
    let n = 41;
    for i in 0..n {
        let x = input(i as f32);
        nnu_bins::write_f32_file(
            &bins.join(format!("case_{i}_0_4_0_4_0_4_0.bin")),
            x.as_slice().unwrap(),
        )
        .unwrap();
    }
    let tiles = tiles_from_dir(&bins).unwrap();
    let probe = Probe::new();
    let before: Vec<i64> = (0..4).map(|d| probe.exec_count(d)).collect();
    let out = dir.path().join("result");
    let mut opts = DriverOptions::new(&model, vec![0, 1, 2, 3], &out);
    opts.heads = Heads::All;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let report = run_tiles(&rt, &tiles, &opts, &|_| {
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(report.tiles(), n);
    assert_eq!(done.into_inner(), n);
    assert_eq!(report.devices.len(), 4);
    for (d, r) in report.devices.iter().enumerate() {
        assert_eq!(r.device, d as i32);
        assert!(r.tiles > 0, "device {d} got no tile: {report:?}");
        // One warm-up execution per device, then one timed execution per tile.
        assert!(probe.exec_count(d as i32) - before[d] > r.tiles as i64);
        assert_eq!(r.latencies.len(), r.tiles);
        assert_eq!(r.execute, r.latencies.iter().sum());
    }
    assert!(report.throughput() > 0.0);

    // Every tile's dumps exist once, in its device's folder, with the benchmark numbering.
    let index = DumpIndex::scan(&[&out], None).unwrap();
    assert_eq!(index.folders().len(), 4);
    assert_eq!(index.len(), n);
    assert!(index.duplicates().is_empty());
    for i in 0..n {
        let t = nnu_bins::TileName::parse(&format!("case_{i}_0_4_0_4_0_4_0.bin")).unwrap();
        let final_head = index.open(&t, 3).unwrap();
        let x = input(i as f32);
        for c in 0..3 {
            for v in 0..64 {
                assert_eq!(
                    final_head.as_slice()[c * 64 + v],
                    (c + 1) as f32 * x.as_slice().unwrap()[v]
                );
            }
        }
        let second = final_head
            .path()
            .with_file_name(format!("case_{i}_0_4_0_4_0_4_0_2.bin"));
        assert_eq!(
            MappedBin::open(&second).unwrap().as_slice()[0],
            x.as_slice().unwrap()[0] + 1.0
        );
    }

    // A second run skips everything (resume).
    let again = run_tiles(&rt, &tiles, &opts, &|_| {}).unwrap();
    assert_eq!(again.tiles(), 0, "{again:?}");
    assert_eq!(again.devices.iter().map(|d| d.skipped).sum::<usize>(), n);

    // ais_bench numbering in one flat folder, final head only.
    let flat = dir.path().join("bs1");
    let mut o2 = DriverOptions::new(&model, vec![3, 1], &flat);
    o2.naming = DumpNaming::AisBench;
    o2.layout = DumpLayout::Flat;
    run_tiles(&rt, &tiles[..5], &o2, &|_| {}).unwrap();
    let names: Vec<String> = std::fs::read_dir(&flat)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 5);
    assert!(
        names.iter().all(|n| n.ends_with("_0_4_0_4_0_4_0_0.bin")),
        "{names:?}"
    );
}

#[test]
fn driver_errors_name_the_device_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::init(&options()).unwrap();
    let model = fake_model(dir.path(), "f.om", &format!("{MODEL}\nfail_value 7"));
    let bins = dir.path().join("in");
    std::fs::create_dir(&bins).unwrap();
    for i in 0..12 {
        nnu_bins::write_f32_file(
            &bins.join(format!("c_{i:02}_0_4_0_4_0_4_0.bin")),
            input(i as f32 + 0.5).as_slice().unwrap(),
        )
        .unwrap();
    }
    nnu_bins::write_f32_file(
        &bins.join("c_99_0_4_0_4_0_4_0.bin"),
        input(7.0).as_slice().unwrap(),
    )
    .unwrap();
    let tiles = tiles_from_dir(&bins).unwrap();
    let opts = DriverOptions::new(&model, vec![0, 1], dir.path().join("out"));
    let e = run_tiles(&rt, &tiles, &opts, &|_| {}).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, AclError::Worker { .. }), "{text}");
    assert!(
        text.starts_with("device ") && text.contains("aclmdlExecute") && text.contains("507011"),
        "{text}"
    );
    // The tile that failed is named.
    assert!(
        text.contains("c_99_0_4_0_4_0_4_0.bin: aclmdlExecute"),
        "{text}"
    );

    // A tile of the wrong size.
    nnu_bins::write_f32_file(&bins.join("c_99_0_4_0_4_0_4_0.bin"), &[1.0; 10]).unwrap();
    let e = run_tiles(&rt, &tiles, &opts, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("c_99_0_4_0_4_0_4_0.bin as input 0") && e.contains("40 bytes given"),
        "{e}"
    );

    let dup = DriverOptions::new(&model, vec![1, 1], dir.path().join("out"));
    assert!(matches!(
        run_tiles(&rt, &tiles, &dup, &|_| {}),
        Err(AclError::Devices { .. })
    ));
    let none = DriverOptions::new(&model, vec![], dir.path().join("out"));
    assert!(matches!(
        run_tiles(&rt, &tiles, &none, &|_| {}),
        Err(AclError::Devices { .. })
    ));
}

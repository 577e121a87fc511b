//! The multi-device run ([`InferPlan::run_devices`]) on Ascend NPUs without hardware: `.om` models on the
//! C test double of libascendcl.so (`crates/nnu-acl/tests/fake_acl/fake_acl.c`), whose model computes
//! `(c + 1) * x` for the final head, so every dump is checked exactly. Scheduling over four devices,
//! one warm-up per device, resume, both dump numberings, errors naming the device and tile, and that
//! every AscendCL object is released. One test, so no other test of this binary holds the runtime while
//! the objects are counted. Run with `cargo test -p nnu-pipeline --features acl` (`cargo test
//! --workspace` enables the feature through `nnu-infer`).

#![cfg(feature = "acl")]

#[path = "../../nnu-acl/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{fake_lib, fake_model, input, Probe, MODEL};
use nnu_bins::{DumpIndex, DumpNaming, MappedBin, TileName};
use nnu_pipeline::infer::{load_acl_devices, Device, InferInput, InferOptions, InferPlan};
use nnu_pipeline::PipelineError;

fn load(model: &Path, devices: &[i32]) -> Vec<Device> {
    load_acl_devices(model, devices, Some(fake_lib())).unwrap()
}

#[test]
fn tiles_run_on_four_devices_resume_and_release_everything() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Probe::new();
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
    let out = dir.path().join("result");
    let options = InferOptions::new(Some(out.clone()), DumpNaming::Benchmark);
    let tiles = InferInput::from_path(&bins);
    {
        let mut devices = load(&model, &[0, 1, 2, 3]);
        let before: Vec<i64> = (0..4).map(|d| probe.exec_count(d)).collect();
        let plan = InferPlan::new(&tiles, &options, devices[0].backend.as_ref()).unwrap();
        let done = AtomicUsize::new(0);
        let summary = plan
            .run_devices(&mut devices, &|d, total| {
                assert_eq!(total, n);
                done.fetch_max(d, Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(done.into_inner(), n);
        assert_eq!((summary.processed, summary.calls), (n, n));
        assert!(summary.failed.is_empty());
        let per_device = summary.devices.as_ref().expect("per-device figures");
        assert_eq!(per_device.devices.len(), 4);
        for (d, r) in per_device.devices.iter().enumerate() {
            assert_eq!(r.device, d as i32);
            assert!(r.processed > 0, "device {d} got no tile: {summary:?}");
            // One warm-up execution per device, then one timed execution per tile.
            assert_eq!(
                probe.exec_count(d as i32) - before[d],
                r.processed as i64 + 1
            );
            assert!(r.latency_ms.is_some());
        }
        assert_eq!(
            per_device
                .devices
                .iter()
                .map(|d| d.processed)
                .sum::<usize>(),
            n
        );
        assert!(per_device.total_throughput_per_s > 0.0 && per_device.wall_throughput_per_s > 0.0);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(json["devices"].as_array().map(Vec::len), Some(4));
        assert_eq!(json["processed"], n);

        // Every tile's final head exists once, in the one dump folder, with the benchmark numbering.
        let index = DumpIndex::scan(&[&out], None).unwrap();
        assert_eq!(index.len(), n);
        assert!(index.duplicates().is_empty());
        for i in 0..n {
            let t = TileName::parse(&format!("case_{i}_0_4_0_4_0_4_0.bin")).unwrap();
            let final_head = index.open(&t, 3).unwrap();
            assert!(final_head
                .path()
                .ends_with(format!("case_{i}_0_4_0_4_0_4_0_1.bin")));
            let x = input(i as f32);
            for c in 0..3 {
                for v in 0..64 {
                    assert_eq!(
                        final_head.as_slice()[c * 64 + v],
                        (c + 1) as f32 * x.as_slice().unwrap()[v]
                    );
                }
            }
        }

        // A second run skips everything (resume).
        let plan = InferPlan::new(&tiles, &options, devices[0].backend.as_ref()).unwrap();
        assert_eq!((plan.tasks().len(), plan.skipped()), (0, n));
        let again = plan.run_devices(&mut devices, &|_, _| {}).unwrap();
        assert_eq!((again.processed, again.skipped), (0, n));

        // ais_bench numbering in another folder, on devices 3 and 1, five tiles from a .info file.
        let info = dir.path().join("five.info");
        let lines: String = (0..5)
            .map(|i| format!("{i} input_bins/case_{i}_0_4_0_4_0_4_0.bin 4 4\n"))
            .collect();
        std::fs::write(&info, lines).unwrap();
        let flat = dir.path().join("bs1");
        let mut two = load(&model, &[3, 1]);
        let o2 = InferOptions::new(Some(flat.clone()), DumpNaming::AisBench);
        let plan =
            InferPlan::new(&InferInput::from_path(&info), &o2, two[0].backend.as_ref()).unwrap();
        plan.run_devices(&mut two, &|_, _| {}).unwrap();
        let dumps: Vec<String> = std::fs::read_dir(&flat)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "summary.json")
            .collect();
        assert_eq!(dumps.len(), 5, "{dumps:?}");
        assert!(
            dumps.iter().all(|n| n.ends_with("_0_4_0_4_0_4_0_0.bin")),
            "{dumps:?}"
        );
    }
    assert_eq!(probe.live_objects(), 0);

    // A device that fails on one tile: the error names the device, the tile and the call, the other
    // workers stop, and every object is still released.
    {
        let failing = fake_model(dir.path(), "f.om", &format!("{MODEL}\nfail_value 7"));
        let bins = dir.path().join("in");
        std::fs::create_dir(&bins).unwrap();
        for i in 0..12 {
            nnu_bins::write_f32_file(
                &bins.join(format!("c_{i:02}_0_4_0_4_0_4_0.bin")),
                input(i as f32 + 0.5).as_slice().unwrap(),
            )
            .unwrap();
        }
        let bad = bins.join("c_99_0_4_0_4_0_4_0.bin");
        nnu_bins::write_f32_file(&bad, input(7.0).as_slice().unwrap()).unwrap();
        let tiles = InferInput::from_path(&bins);
        let options = InferOptions::new(Some(dir.path().join("out")), DumpNaming::Benchmark);
        let mut devices = load(&failing, &[0, 1]);
        let plan = InferPlan::new(&tiles, &options, devices[0].backend.as_ref()).unwrap();
        let e = plan.run_devices(&mut devices, &|_, _| {}).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PipelineError::Device { .. }), "{text}");
        assert!(
            text.starts_with("device ")
                && text.contains("aclmdlExecute")
                && text.contains("507011"),
            "{text}"
        );
        // The tile that failed is named.
        assert!(
            text.contains("c_99_0_4_0_4_0_4_0.bin: acl: inference failed: aclmdlExecute"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");

        // A tile of the wrong size is named in the summary; the others run.
        nnu_bins::write_f32_file(&bad, &[1.0; 10]).unwrap();
        let summary = plan.run_devices(&mut devices, &|_, _| {}).unwrap();
        assert_eq!((summary.processed, summary.failed.len()), (12, 1));
        let err = &summary.failed[0].error;
        assert!(
            err.contains("c_99_0_4_0_4_0_4_0.bin") && err.contains("40 bytes"),
            "{err}"
        );
        assert!(MappedBin::open(dir.path().join("out/c_00_0_4_0_4_0_4_0_1.bin")).is_ok());

        // Device lists that cannot run.
        let mut twice = load(&failing, &[1, 1]);
        let e = plan.run_devices(&mut twice, &|_, _| {}).unwrap_err();
        assert!(matches!(e, PipelineError::Devices(_)), "{e}");
        assert!(e.to_string().contains("a device is listed twice"), "{e}");
        let e = plan.run_devices(&mut [], &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("no device given"), "{e}");
        let e = load_acl_devices(&failing, &[0, 9], Some(fake_lib())).unwrap_err();
        assert!(
            e.to_string().starts_with("--device 9: no such device"),
            "{e}"
        );
    }
    assert_eq!(probe.live_objects(), 0);
}

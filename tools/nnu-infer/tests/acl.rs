//! `nnu-infer --backend acl` end to end, without hardware: the binary loads the C test double of
//! libascendcl.so (`crates/nnu-acl/tests/fake_acl/fake_acl.c`, built here with `cc`). Its fake model
//! computes, for output `h` and class `c`, `(c + 1) * input + h`, so every dumped value is checked exactly.

#![cfg_attr(not(feature = "acl"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fake model: one input (1, 1, 4, 4, 4), two outputs (1, 3, 4, 4, 4), f32 (format in fake_acl.c).
const MODEL: &str = "FAKEOM\nbatch 1\nchannels 1\npatch 4 4 4\nclasses 3\nheads 2\ndtype float\n";
const VOXELS: usize = 64;
const CLASSES: usize = 3;

/// Builds the test double once per test binary into `$CARGO_TARGET_TMPDIR`.
#[cfg(feature = "acl")]
fn fake_lib() -> PathBuf {
    static LIB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../crates/nnu-acl/tests/fake_acl/fake_acl.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake_acl-nnu-infer");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("libascendcl.so");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-lpthread")
            .status()
            .unwrap_or_else(|e| {
                panic!("these tests need a C compiler to build the AscendCL test double: {cc}: {e}")
            });
        assert!(status.success(), "{cc} failed to build {}", src.display());
        out
    })
    .clone()
}

/// Runs the binary with `args`, without the library override from the caller's environment.
fn nnu_infer(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nnu-infer"));
    for a in args {
        cmd.arg(a);
    }
    cmd.env_remove("NNU_ACL_LIB").env_remove("FAKE_ACL_DEVICES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run nnu-infer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Input `i`: `i - 3 + 0.25 * voxel`.
fn tile(i: usize) -> Vec<f32> {
    (0..VOXELS)
        .map(|v| i as f32 - 3.0 + v as f32 * 0.25)
        .collect()
}

fn tile_name(i: usize) -> String {
    format!("case_{}_0_4_0_4_0_4_{}", i / 8, i % 8)
}

/// `n` tiles in `dir/bins`, and the fake model `dir/NAME`.
fn setup(dir: &Path, n: usize, name: &str, model: &str) -> (PathBuf, PathBuf) {
    let bins = dir.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    for i in 0..n {
        nnu_bins::write_f32_file(&bins.join(format!("{}.bin", tile_name(i))), &tile(i)).unwrap();
    }
    let om = dir.join(name);
    std::fs::write(&om, model).unwrap();
    (bins, om)
}

fn read_f32(path: &Path) -> Vec<f32> {
    nnu_bins::read_f32_file(path).unwrap_or_else(|e| panic!("{e}"))
}

fn summary(dir: &Path) -> serde_json::Value {
    let p = dir.join("summary.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Every dump of `0..n` in `out` has the final head's exact values under `suffix` numbering, and the
/// folder holds nothing else but `summary.json`.
fn check_dumps(out: &Path, n: usize, suffix: u32) {
    let mut expected: Vec<String> = (0..n)
        .map(|i| format!("{}_{suffix}.bin", tile_name(i)))
        .collect();
    expected.push("summary.json".into());
    expected.sort();
    assert_eq!(names(out), expected);
    for i in 0..n {
        let got = read_f32(&out.join(format!("{}_{suffix}.bin", tile_name(i))));
        assert_eq!(got.len(), CLASSES * VOXELS, "tile {i}");
        let x = tile(i);
        for c in 0..CLASSES {
            for v in 0..VOXELS {
                assert_eq!(
                    got[c * VOXELS + v],
                    (c + 1) as f32 * x[v],
                    "tile {i} class {c}"
                );
            }
        }
    }
}

#[cfg(feature = "acl")]
#[test]
fn tiles_on_two_devices_with_both_numberings_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let n = 11;
    let (bins, om) = setup(dir.path(), n, "m.om", MODEL);
    let lib = fake_lib();
    let out = dir.path().join("result");
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"--backend",
        &"acl",
        &"--model",
        &om,
        &"--input",
        &bins,
        &"--output",
        &out,
        &"--device",
        &"0,1",
        &"--acl-lib",
        &lib,
    ];
    let o = nnu_infer(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("[INFO] device 0:") && stdout.contains("[INFO] device 1:"),
        "{stdout}"
    );
    check_dumps(&out, n, 1);
    let s = summary(&out);
    assert_eq!(s["backend"], "acl");
    assert_eq!(
        (s["inputs"].as_u64(), s["processed"].as_u64()),
        (Some(n as u64), Some(n as u64))
    );
    assert_eq!(
        (s["skipped"].as_u64(), s["calls"].as_u64()),
        (Some(0), Some(n as u64))
    );
    assert_eq!(s["output_numbering"], 1);
    assert_eq!(s["input_shape"], serde_json::json!([1, 1, 4, 4, 4]));
    assert_eq!(s["output_shape"], serde_json::json!([1, 3, 4, 4, 4]));
    let l = &s["latency_ms"];
    let f = |k: &str| l[k].as_f64().unwrap();
    assert!(f("min") <= f("median") && f("median") <= f("p99") && f("p99") <= f("max"));
    let devices = s["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(
        (devices[0]["device"].as_i64(), devices[1]["device"].as_i64()),
        (Some(0), Some(1))
    );
    let per_device: u64 = devices
        .iter()
        .map(|d| d["processed"].as_u64().unwrap())
        .sum();
    assert_eq!(per_device, n as u64);
    let total: f64 = devices
        .iter()
        .map(|d| d["throughput_per_s"].as_f64().unwrap())
        .sum();
    assert!((s["total_throughput_per_s"].as_f64().unwrap() - total).abs() < 1e-9 * total.max(1.0));
    assert!(s["wall_throughput_per_s"].as_f64().unwrap() > 0.0);

    // A second run finds every dump complete and runs nothing.
    let o = nnu_infer(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{n} already done (complete dumps), skipped")));
    let s = summary(&out);
    assert_eq!(
        (s["processed"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(n as u64))
    );
    check_dumps(&out, n, 1);

    // A truncated dump is redone; --overwrite redoes everything.
    std::fs::write(out.join(format!("{}_1.bin", tile_name(4))), b"short").unwrap();
    let o = nnu_infer(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["processed"].as_u64(), Some(1));
    check_dumps(&out, n, 1);
    let mut again = args.clone();
    again.push(&"--overwrite");
    let o = nnu_infer(&again, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["processed"].as_u64(), Some(n as u64));
    check_dumps(&out, n, 1);

    // ais_bench numbering, from a .info file with paths relative to its folder, on devices 3 and 1,
    // with the library from $NNU_ACL_LIB.
    let info = dir.path().join("tiles.info");
    let lines: String = (0..n)
        .map(|i| format!("{i} bins/{}.bin 4 4\n", tile_name(i)))
        .collect();
    std::fs::write(&info, lines).unwrap();
    let out0 = dir.path().join("bs1");
    let o = nnu_infer(
        &[
            &"--backend",
            &"acl",
            &"--model",
            &om,
            &"--input",
            &info,
            &"--output",
            &out0,
            &"--device",
            &"3,1",
            &"--output-numbering",
            &"0",
        ],
        &[("NNU_ACL_LIB", &lib)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    check_dumps(&out0, n, 0);
    let s = summary(&out0);
    assert_eq!(s["output_numbering"], 0);
    let ids: Vec<i64> = s["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 1]);

    // --loop on one device: random inputs, no dumps.
    let o = nnu_infer(
        &[
            &"--backend",
            &"acl",
            &"--model",
            &om,
            &"--loop",
            &"3",
            &"--device",
            &"2",
            &"--acl-lib",
            &lib,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("processed: 3"));
}

/// Exit status non-zero, one line on stderr starting with `error: ` and containing every `needle`.
fn assert_one_line_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected a failure, got: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.starts_with("error: "), "{e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e}");
    }
}

#[cfg(feature = "acl")]
#[test]
fn errors_name_the_file_or_device_and_leave_no_partial_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let n = 9;
    let (bins, om) = setup(dir.path(), n, "fails.om", &format!("{MODEL}fail_value 5\n"));
    let lib = fake_lib();
    let out = dir.path().join("result");
    let run = |model: &Path, devices: &str, lib: &Path| {
        nnu_infer(
            &[
                &"--backend",
                &"acl",
                &"--model",
                &model,
                &"--input",
                &bins,
                &"--output",
                &out,
                &"--device",
                &devices,
                &"--acl-lib",
                &lib,
            ],
            &[],
        )
    };

    // Nothing is written for errors found before the run.
    let missing = dir.path().join("missing.om");
    assert_one_line_error(&run(&missing, "0", &lib), &["missing.om"]);
    for (devices, needle) in [
        ("0,x", "\"x\" is not a device id"),
        ("0,1,0", "device 0 is listed twice"),
        ("0,9", "--device 9: no such device"),
        ("", "--device"),
    ] {
        assert_one_line_error(&run(&om, devices, &lib), &[needle]);
    }
    let absent = dir.path().join("no/libascendcl.so");
    assert_one_line_error(&run(&om, "0", &absent), &["no/libascendcl.so"]);
    let not_a_library = dir.path().join("libascendcl.so");
    std::fs::write(&not_a_library, "not an ELF file").unwrap();
    assert_one_line_error(&run(&om, "0", &not_a_library), &["libascendcl.so"]);
    assert!(!out.exists(), "the output folder was created");

    // The device fails on tile 8 (its first value is 5): the error names the device, the tile and the
    // call; the dumps written before are complete, and no temporary file or summary is left.
    let o = run(&om, "0,1", &lib);
    let bad = format!("{}.bin", tile_name(8));
    assert_one_line_error(&o, &["device ", &bad, "aclmdlExecute", "507011"]);
    for name in names(&out) {
        assert!(name.ends_with("_1.bin") && !name.starts_with('.'), "{name}");
        let len = std::fs::metadata(out.join(&name)).unwrap().len();
        assert_eq!(len, (CLASSES * VOXELS * 4) as u64, "{name}");
    }
    assert!(!out.join(format!("{}_1.bin", tile_name(8))).exists());

    // Options of the other backend are refused.
    let o = nnu_infer(
        &[
            &"--model",
            &om,
            &"--input",
            &bins,
            &"--output",
            &out,
            &"--device",
            &"1",
        ],
        &[],
    );
    assert_one_line_error(&o, &["--device"]);
    let o = nnu_infer(
        &[
            &"--backend",
            &"acl",
            &"--model",
            &om,
            &"--loop",
            &"2",
            &"--device",
            &"0,1",
            &"--acl-lib",
            &lib,
        ],
        &[],
    );
    assert_one_line_error(&o, &["--loop runs on one device"]);
}

#[cfg(not(feature = "acl"))]
#[test]
fn without_the_feature_acl_says_how_to_build_it() {
    let o = nnu_infer(
        &[&"--backend", &"acl", &"--model", &"m.om", &"--loop", &"1"],
        &[],
    );
    assert_one_line_error(
        &o,
        &["built without the `acl` cargo feature", "--features acl"],
    );
}

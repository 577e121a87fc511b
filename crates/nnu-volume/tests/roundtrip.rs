//! Files we write: read back by us (exact), and by SimpleITK and nibabel (geometry within 1e-6, voxel
//! values exact) in a cross-check that needs Python and is therefore `#[ignore]`d: run it with
//! `cargo test -p nnu-volume --test roundtrip -- --ignored` where the venv is present.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array3;
use nnu_volume::{
    read_header, read_volume, read_volume_as, write_volume, Geometry, Voxel, WriteOptions,
};

fn oblique() -> Geometry {
    let (s, c) = (0.3f64.sin(), 0.3f64.cos());
    // LPS direction with a flipped z axis and an in-plane rotation
    Geometry {
        spacing: [0.7676, 0.7676, 5.0],
        origin: [-172.5, 180.25, -330.0],
        direction: [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, -1.0],
    }
}

fn geometries() -> Vec<(&'static str, Geometry)> {
    vec![
        ("identity", Geometry::default()),
        (
            "flip_xy",
            Geometry {
                direction: [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
                ..Geometry::default()
            },
        ),
        ("oblique", oblique()),
        (
            "permuted",
            Geometry {
                spacing: [1.5, 2.5, 3.5],
                origin: [1.0, 2.0, 3.0],
                direction: [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            },
        ),
    ]
}

fn assert_geometry_close(a: &Geometry, b: &Geometry, tol: f64, what: &str) {
    let pairs = a
        .spacing
        .iter()
        .zip(&b.spacing)
        .chain(a.origin.iter().zip(&b.origin))
        .chain(a.direction.iter().zip(&b.direction));
    for (x, y) in pairs {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: {a:?} vs {b:?}"
        );
    }
}

fn roundtrip<T: Voxel>(
    dir: &Path,
    name: &str,
    data: &Array3<T>,
    g: &Geometry,
    level: u32,
) -> PathBuf {
    let p = dir.join(name);
    write_volume(
        &p,
        data.view(),
        g,
        &WriteOptions::default().compression_level(level),
    )
    .expect("write");
    let back = read_volume_as::<T>(&p).expect("read back");
    assert_eq!(&back.data, data, "{name}");
    // header fields are f32: geometry survives to f32 precision
    assert_geometry_close(&back.geometry, g, 1e-6, name);
    p
}

#[test]
fn all_writable_types_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shape = (5, 7, 9);
    let g = oblique();
    roundtrip(
        dir.path(),
        "u8.nii.gz",
        &Array3::<u8>::from_shape_fn(shape, |(z, y, x)| ((z + y + x) % 3) as u8),
        &g,
        1,
    );
    roundtrip(
        dir.path(),
        "i8.nii",
        &Array3::<i8>::from_shape_fn(shape, |(z, y, x)| (z * 9 + y) as i8 - x as i8),
        &g,
        0,
    );
    roundtrip(
        dir.path(),
        "i16.nii.gz",
        &Array3::<i16>::from_shape_fn(shape, |(z, y, x)| (z * 700) as i16 - (y * x) as i16 - 1024),
        &g,
        9,
    );
    roundtrip(
        dir.path(),
        "u16.nii.gz",
        &Array3::<u16>::from_shape_fn(shape, |(z, y, x)| (z * 10000 + y * 7 + x) as u16),
        &g,
        6,
    );
    roundtrip(
        dir.path(),
        "i32.nii.gz",
        &Array3::<i32>::from_shape_fn(shape, |(z, y, x)| (z * 100000) as i32 - (y * x) as i32),
        &g,
        1,
    );
    roundtrip(
        dir.path(),
        "u32.nii",
        &Array3::<u32>::from_shape_fn(shape, |(z, y, x)| (z * 100000 + y + x) as u32),
        &g,
        1,
    );
    roundtrip(
        dir.path(),
        "f32.nii.gz",
        &Array3::<f32>::from_shape_fn(shape, |(z, y, x)| {
            z as f32 * 0.1 - y as f32 / 3.0 + x as f32 * 1e-5
        }),
        &g,
        1,
    );
    roundtrip(
        dir.path(),
        "f64.nii.gz",
        &Array3::<f64>::from_shape_fn(shape, |(z, y, x)| {
            z as f64 * 0.1 - y as f64 / 3.0 + x as f64 * 1e-9
        }),
        &g,
        1,
    );
}

#[test]
fn geometry_survives_for_every_orientation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Array3::<i16>::from_shape_fn((3, 4, 5), |(z, y, x)| (z * 20 + y * 5 + x) as i16);
    for (name, g) in geometries() {
        let p = roundtrip(dir.path(), &format!("{name}.nii.gz"), &a, &g, 1);
        let h = read_header(&p).expect("header");
        assert_eq!(
            h.xform,
            nnu_volume::XformSource::Sform,
            "{name}: ITK reads our sform (code 1)"
        );
    }
}

#[test]
fn non_contiguous_views_are_written_in_array_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Array3::<i16>::from_shape_fn((6, 5, 4), |(z, y, x)| (z * 100 + y * 10 + x) as i16);
    let t = a.slice(ndarray::s![..;2, ..;-1, ..]);
    let p = dir.path().join("view.nii.gz");
    write_volume(&p, t, &Geometry::default(), &WriteOptions::default()).expect("write");
    let back = read_volume_as::<i16>(&p).expect("read");
    assert_eq!(back.data, t.to_owned());
}

#[test]
fn large_volume_spans_several_gzip_members() {
    // > 4 MiB of voxels: several parallel members, inflated in parallel on read
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Array3::<i16>::from_shape_fn((40, 256, 256), |(z, y, x)| {
        ((z * 31 + y * 17 + x * 7) % 2000) as i16 - 1000
    });
    let p = roundtrip(dir.path(), "big.nii.gz", &a, &oblique(), 1);
    let f = read_volume(&p).expect("f32");
    assert_eq!(f.data[[39, 255, 255]], f32::from(a[[39, 255, 255]]));
    // also readable by a plain single-stream gzip decoder
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).expect("open")),
        &mut plain,
    )
    .expect("plain gzip");
    assert_eq!(plain.len(), 352 + a.len() * 2);
}

#[test]
fn gzip_output_is_identical_for_any_thread_count() {
    // Three 4 MiB members: the bytes must not depend on how rayon schedules them.
    let a = Array3::<i16>::from_shape_fn((64, 256, 300), |(z, y, x)| {
        ((z * 131 + y * 7 + x * x) % 3000) as i16 - 1024
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let p = dir.path().join(format!("t{threads}.nii.gz"));
        pool.install(|| write_volume(&p, a.view(), &oblique(), &WriteOptions::default()))
            .expect("write");
        files.push(std::fs::read(&p).expect("read"));
    }
    assert!(files[0].len() > 1000);
    assert!(
        files.iter().all(|f| *f == files[0]),
        "output depends on the thread count"
    );
    // `gzip -t` accepts the multi-member file, when gzip is installed
    match Command::new("gzip")
        .arg("-t")
        .arg(dir.path().join("t1.nii.gz"))
        .output()
    {
        Ok(o) => assert!(
            o.status.success(),
            "gzip -t: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        // `.ci/run` fails on this marker: CI has gzip, so there the check always runs.
        Err(e) => eprintln!("NNU-TEST-SKIPPED: the gzip -t check (gzip not runnable: {e})"),
    }
}

#[test]
fn parallel_streaming_and_plain_reads_agree() {
    // Our indexed members, and the same NIfTI bytes (with scl_slope/scl_inter set) as one gzip stream and
    // uncompressed: each takes its own decoding path; exact reads report the first inexact value.
    let a = Array3::<i16>::from_shape_fn((33, 211, 307), |(z, y, x)| {
        ((z * 977 + y * 31 + x * 3) % 4001) as i16 - 2000
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("ours.nii.gz");
    write_volume(&ours, a.view(), &oblique(), &WriteOptions::default()).expect("write");
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&ours).expect("open")),
        &mut raw,
    )
    .expect("inflate");
    // scl_slope 0.5, scl_inter -3 (float32 fields at bytes 112 and 116)
    raw[112..116].copy_from_slice(&0.5f32.to_le_bytes());
    raw[116..120].copy_from_slice(&(-3.0f32).to_le_bytes());
    let plain = dir.path().join("plain.nii");
    let single = dir.path().join("single.nii.gz");
    std::fs::write(&plain, &raw).expect("write");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut enc, &raw).expect("gzip");
    std::fs::write(&single, enc.finish().expect("gzip")).expect("write");
    let want = a.mapv(|v| (f64::from(v) * 0.5 - 3.0) as f32);
    for p in [&plain, &single] {
        assert_eq!(read_volume(p).expect("read").data, want, "{}", p.display());
        let err = read_volume_as::<i16>(p).unwrap_err();
        assert!(
            matches!(err, nnu_volume::VolumeError::ValueOutOfRange { value, .. } if value == -1001.5),
            "{err}"
        );
    }
    assert_eq!(read_volume(&ours).expect("read").data, a.mapv(f32::from));
    assert_eq!(read_volume_as::<i16>(&ours).expect("read").data, a);
}

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("NNU_PYTHON").map(PathBuf::from),
        Some(PathBuf::from("/work/venv/bin/python")),
    ];
    for c in candidates.into_iter().flatten() {
        let ok = Command::new(&c)
            .args(["-c", "import SimpleITK, nibabel"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(c);
        }
    }
    None
}

const CHECK: &str = r#"
import json, sys
import numpy as np, SimpleITK as sitk, nibabel as nib
out = {}
for p in sys.argv[1:]:
    im = sitk.ReadImage(p)
    a = sitk.GetArrayFromImage(im)
    n = nib.load(p)
    out[p] = {"spacing": im.GetSpacing(), "origin": im.GetOrigin(), "direction": im.GetDirection(),
              "sum": float(a.astype(np.float64).sum()), "first": float(a.flat[0]), "last": float(a.flat[-1]),
              "shape": list(a.shape), "affine": n.affine.tolist(),
              "nib_sum": float(np.asanyarray(n.dataobj).astype(np.float64).sum())}
print(json.dumps(out))
"#;

#[test]
#[ignore = "needs a Python with SimpleITK and nibabel (NNU_PYTHON or /work/venv): cargo test -- --ignored"]
fn simpleitk_and_nibabel_read_our_files() {
    let py = python()
        .expect("no Python with SimpleITK and nibabel (set NNU_PYTHON or provide /work/venv)");
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Array3::<i16>::from_shape_fn((20, 300, 301), |(z, y, x)| {
        ((z * 31 + y * 17 + x * 7) % 2000) as i16 - 1000
    });
    let labels = a.mapv(|v| (v.rem_euclid(3)) as u8);
    let mut files = Vec::new();
    for (name, g) in geometries() {
        let p = dir.path().join(format!("{name}.nii.gz"));
        write_volume(&p, a.view(), &g, &WriteOptions::default()).expect("write");
        files.push((p, g, a.mapv(f64::from)));
        let p = dir.path().join(format!("{name}_labels.nii"));
        write_volume(&p, labels.view(), &g, &WriteOptions::default()).expect("write");
        files.push((p, g, labels.mapv(f64::from)));
    }
    let out = Command::new(&py)
        .arg("-c")
        .arg(CHECK)
        .args(files.iter().map(|f| &f.0))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let nums = |x: &serde_json::Value| -> Vec<f64> {
        x.as_array()
            .expect("array")
            .iter()
            .map(|n| n.as_f64().expect("f64"))
            .collect()
    };
    for (p, g, data) in &files {
        let r = &v[p.to_string_lossy().as_ref()];
        let sitk = Geometry {
            spacing: nums(&r["spacing"]).try_into().expect("3"),
            origin: nums(&r["origin"]).try_into().expect("3"),
            direction: nums(&r["direction"]).try_into().expect("9"),
        };
        assert_geometry_close(&sitk, g, 1e-6, &p.to_string_lossy());
        // our reader reports exactly what SimpleITK reports
        let ours = read_header(p).expect("header").geometry;
        assert_geometry_close(&ours, &sitk, 1e-12, "reader vs SimpleITK");
        let affine: Vec<f64> = r["affine"]
            .as_array()
            .expect("affine")
            .iter()
            .flat_map(nums)
            .collect();
        let want: Vec<f64> = g.ras_affine().iter().flatten().copied().collect();
        for (x, y) in affine.iter().zip(&want) {
            assert!(
                (x - y).abs() <= 1e-4,
                "nibabel affine {affine:?} vs {want:?}"
            );
        }
        assert_eq!(nums(&r["shape"]), vec![20.0, 300.0, 301.0]);
        assert_eq!(r["sum"].as_f64(), Some(data.sum()));
        assert_eq!(r["nib_sum"].as_f64(), Some(data.sum()));
        assert_eq!(r["first"].as_f64(), Some(data[[0, 0, 0]]));
        assert_eq!(r["last"].as_f64(), Some(data[[19, 299, 300]]));
    }
}

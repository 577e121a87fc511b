//! nnu-volume: read and write of a 512 x 512 x 480 int16 CT phantom as `.nii.gz` (about 240 MiB of voxels).
//!
//! `cargo bench -p nnu-benches --bench nifti`. The phantom comes from `nnu-synth` (seed 0, 0.78 x 0.78 x 1 mm).
//! The files are kept in `target/bench-data/nifti/` so that `scripts/bench/nifti_vs_sitk.py` can time
//! SimpleITK on the same bytes:
//! - `phantom_ours.nii.gz`: written by `write_volume` (level 1, parallel gzip members),
//! - `phantom_single.nii.gz`: the same NIfTI bytes as one gzip stream at level 6 (zlib's default, what
//!   SimpleITK's writer produces), so the reader's sequential path is measured too.
//!
//! Reading includes the cast to `f32` (what `read_volume` returns); the files are in the page cache, so
//! this measures decompression and decoding, not the disk.
//!
//! Measured 2026-11-27 on the shared 2-core development VM while other jobs kept the load average at 7-9
//! (so parallel paths got little of the second core; treat the numbers as rough). nnu-volume (criterion mean)
//! vs SimpleITK 2.5.7 (best of 3, `scripts/bench/nifti_vs_sitk.py`) on the same files:
//!
//! | operation                                   | nnu-volume | SimpleITK                               |
//! |---------------------------------------------|-----------:|-----------------------------------------|
//! | read `phantom_ours.nii.gz` to f32           |  2.18 s    | 1.71-1.99 s (ReadImage + astype(f32))   |
//! | read `phantom_single.nii.gz` to f32         |  2.13-2.31 s | 3.16-4.07 s (ReadImage + astype(f32)) |
//! | read `phantom.nii` (uncompressed) to f32    |  1.09 s    | 1.23-2.57 s (ReadImage + astype(f32))   |
//! | write `.nii.gz`, default level              |  1.56 s (level 1, 80.5 MB) | 4.62 s (55.5 MB) |
//! | write `.nii.gz`, level 6                    |  4.24 s (55.5 MB) | 4.62 s                           |
//! | generate the phantom (`nnu-synth`)          |  4.8 s     |                                         |
//!
//! SimpleITK's `compressionLevel=1` changes nothing (same 55.5 MB in 4.4 s): ITK's NIfTI writer ignores it.

use std::io::Write;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nnu_synth::{generate, PhantomSpec};
use nnu_volume::{read_volume, write_volume, WriteOptions};

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/nifti");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nifti(c: &mut Criterion) {
    let spec = PhantomSpec::new([480, 512, 512], [1.0, 0.78, 0.78], 0);
    let t = std::time::Instant::now();
    let phantom = generate(&spec).unwrap();
    eprintln!(
        "phantom 512x512x480 generated in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let dir = data_dir();
    let ours = dir.join("phantom_ours.nii.gz");
    let single = dir.join("phantom_single.nii.gz");
    let raw = dir.join("phantom.nii");
    let img = &phantom.image;
    write_volume(
        &ours,
        img.data.view(),
        &img.geometry,
        &WriteOptions::default(),
    )
    .unwrap();
    write_volume(
        &raw,
        img.data.view(),
        &img.geometry,
        &WriteOptions::default(),
    )
    .unwrap();
    let bytes = std::fs::read(&raw).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&bytes).unwrap();
    std::fs::write(&single, enc.finish().unwrap()).unwrap();
    for p in [&ours, &single, &raw] {
        eprintln!(
            "{}: {} bytes",
            p.display(),
            std::fs::metadata(p).unwrap().len()
        );
    }

    let mut g = c.benchmark_group("nifti_512x512x480_i16");
    g.throughput(Throughput::Bytes(img.data.len() as u64 * 2));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(10));
    g.bench_function("read_ours_parallel_members", |b| {
        b.iter(|| read_volume(&ours).unwrap())
    });
    g.bench_function("read_single_stream_level6", |b| {
        b.iter(|| read_volume(&single).unwrap())
    });
    g.bench_function("read_uncompressed", |b| {
        b.iter(|| read_volume(&raw).unwrap())
    });
    let out = dir.join("phantom_bench_out.nii.gz");
    for level in [1u32, 6] {
        let opts = WriteOptions::default().compression_level(level);
        g.bench_function(format!("write_gz_level{level}"), |b| {
            b.iter(|| write_volume(&out, img.data.view(), &img.geometry, &opts).unwrap())
        });
        eprintln!(
            "level {level}: {} bytes",
            std::fs::metadata(&out).unwrap().len()
        );
    }
    g.finish();
    std::fs::remove_file(&out).ok();

    let mut g = c.benchmark_group("synth");
    g.sample_size(10);
    g.bench_function("phantom_512x512x480", |b| {
        b.iter(|| generate(&spec).unwrap())
    });
    g.finish();
}

criterion_group!(benches, nifti);
criterion_main!(benches);

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
//! this measures decompression and decoding, not the disk. `read_ours_parallel_members` takes the parallel
//! path (members indexed by their size fields), `read_single_stream_level6` the pipelined one (inflate on
//! one thread, convert on another), `read_uncompressed` the mapped file converted in parallel chunks.
//!
//! Measured 2026-11-27 on the shared 2-core development VM (AMD EPYC, 23 GB) while other jobs kept the
//! load average between 6 and 13, so every number moves by a factor of two from run to run; compare only
//! numbers taken in the same minutes. Criterion means (04:39-04:45 UTC, load average 8.5 rising to 13):
//!
//! | operation                                   | nnu-volume                 |
//! |---------------------------------------------|---------------------------:|
//! | read `phantom_ours.nii.gz` to f32           | 1.41 s                     |
//! | read `phantom_single.nii.gz` to f32         | 1.32 s                     |
//! | read `phantom.nii` (uncompressed) to f32    | 0.43 s                     |
//! | write `.nii.gz`, default level (1)          | 2.09 s (80.5 MB)           |
//! | write `.nii.gz`, level 6                    | 4.86 s (55.5 MB)           |
//! | generate the phantom (`nnu-synth`)          | 5.07 s                     |
//!
//! Against SimpleITK 2.5.7 the fair comparison interleaves the two on the same load:
//! `scripts/bench/nifti_vs_sitk.py 7` alternates one SimpleITK run (`ReadImage`, `GetArrayFromImage`,
//! `astype(float32)`; `WriteImage(useCompression=True)`) with one nnu-volume run (the `nifti_timing`
//! example) per file and round. Medians of 7 rounds at 04:51 UTC, load average 9.3-9.7:
//!
//! | operation                                   | SimpleITK | nnu-volume | SimpleITK / nnu-volume |
//! |---------------------------------------------|----------:|-----------:|-----------------------:|
//! | read `phantom_ours.nii.gz` to f32           |  5.42 s   |  0.97 s    | 5.6x                   |
//! | read `phantom_single.nii.gz` to f32         |  4.64 s   |  1.00 s    | 4.6x                   |
//! | read `phantom.nii` to f32                   |  3.36 s   |  0.24 s    | 13.9x                  |
//! | write `.nii.gz`, default level              |  5.38 s (55.5 MB) | 1.94 s (80.5 MB) | 2.8x     |
//!
//! At a lighter load (average 6, back to back, medians of 5) SimpleITK read the single-stream file in
//! 0.98 s and nnu-volume in 0.50 s (2.0x), our file 0.50 s (SimpleITK 1.0-2.4 s), the uncompressed one in
//! 0.14 s (2.2 s). The single stream cannot be inflated in parallel: its time is zlib-rs's inflate speed
//! on one core (about 1 GB/s of output; miniz_oxide and zune-inflate were slower on this file). Before the
//! decoder wrote straight into the output (and mapped the file, and asked for huge pages for the output)
//! the same reads took 2.2 s, 2.1-2.3 s and 1.1 s at a similar load. SimpleITK's `compressionLevel=1`
//! changes nothing (same 55.5 MB in 4.4 s): ITK's NIfTI writer ignores it.

use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nnu_benches::{data_dir, liver_ct_spec};
use nnu_synth::generate;
use nnu_volume::{read_volume, write_volume, WriteOptions};

fn nifti(c: &mut Criterion) {
    let spec = liver_ct_spec();
    let t = std::time::Instant::now();
    let phantom = generate(&spec).unwrap();
    eprintln!(
        "phantom 512x512x480 generated in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let dir = data_dir("nifti");
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

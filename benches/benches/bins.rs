//! nnu-bins: encode (write) and decode (map + view) of one 128^3 f32 tile, the recipe's unit of exchange.
//!
//! `cargo bench -p nnu-benches --bench bins`. Files go to a temporary folder (usually tmpfs or page cache),
//! so this measures the codec and the atomic write path, not the disk.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{s, Array4};
use nnu_bins::{MappedBin, Mirror, TileWriter};

fn bins(c: &mut Criterion) {
    const P: usize = 128;
    // A padded volume a little larger than one tile, so the tile is a non-contiguous slice as in practice.
    let vol = Array4::from_shape_fn((1, P + 8, P + 8, P + 8), |(_, z, y, x)| {
        (z * 7 + y * 3 + x) as f32 * 1e-3
    });
    let tile = vol.slice(s![.., 4..4 + P, 4..4 + P, 4..4 + P]);
    let contiguous = tile.to_owned();
    let dir = std::env::temp_dir().join(format!("nnu-bench-bins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("case_0_128_0_128_0_128_0.bin");
    let mut writer = TileWriter::new();

    let mut g = c.benchmark_group("bins_tile_128");
    g.throughput(Throughput::Bytes((P * P * P * 4) as u64));
    g.sample_size(20);
    g.bench_function("encode_contiguous_m0", |b| {
        b.iter(|| {
            writer
                .write(&path, contiguous.view(), Mirror::NONE)
                .unwrap()
        })
    });
    g.bench_function("encode_slice_m0", |b| {
        b.iter(|| writer.write(&path, tile, Mirror::NONE).unwrap())
    });
    let m7 = Mirror::new(7).unwrap();
    g.bench_function("encode_slice_m7", |b| {
        b.iter(|| writer.write(&path, tile, m7).unwrap())
    });
    writer.write(&path, tile, Mirror::NONE).unwrap();
    g.bench_function("decode_map_and_sum", |b| {
        b.iter(|| {
            let bin = MappedBin::open_shape(&path, &[1, P, P, P]).unwrap();
            let v = bin.view4([1, P, P, P]).unwrap();
            v.sum()
        })
    });
    g.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bins);
criterion_main!(benches);

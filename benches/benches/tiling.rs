//! nnu-tiling: merge cost of one 128^3 tile with 3 classes and 8 mirrors (the network excluded), tile
//! extraction, the weight division at the end, and the Gaussian map.
//!
//! `cargo bench -p nnu-benches --bench tiling`. The merge is measured on a grid of three tiles along z
//! (image 256 x 128 x 128, so Gaussian weighting applies); each iteration adds the 8 mirrors of the middle
//! tile to a fresh aggregator (created outside the timing). Compare with the network's time per patch
//! (about 70 s per 128^3 patch on the 2-core CPU, so 8 mirrors take about 560 s).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ndarray::Array4;
use nnu_tiling::{
    extract_tile, gaussian_importance_map, Aggregator, AggregatorOptions, Mirror, MirrorSet,
    TileGrid,
};

const P: usize = 128;
const CLASSES: usize = 3;

fn logits(seed: usize) -> Array4<f32> {
    Array4::from_shape_fn((CLASSES, P, P, P), |(c, z, y, x)| {
        (((c * 31 + z * 7 + y * 3 + x + seed) % 97) as f32) * 0.05 - 2.0
    })
}

fn tiling(c: &mut Criterion) {
    let grid = TileGrid::new([2 * P, P, P], [P, P, P], 0.5).unwrap();
    assert_eq!(grid.len(), 3);
    let options = AggregatorOptions {
        mirrors: MirrorSet::all(),
        use_gaussian: true,
    };
    let outputs: Vec<Array4<f32>> = (0..8).map(logits).collect();

    let mut g = c.benchmark_group("tiling_128");
    g.sample_size(10);
    g.bench_function("merge_tile_3classes_8mirrors", |b| {
        b.iter_batched(
            || Aggregator::new(CLASSES, grid.clone(), options).unwrap(),
            |mut agg| {
                for (m, out) in Mirror::ALL.into_iter().zip(&outputs) {
                    agg.add(1, m, out.view()).unwrap();
                }
                agg
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("merge_tile_3classes_1mirror", |b| {
        let options = AggregatorOptions {
            mirrors: MirrorSet::identity_only(),
            use_gaussian: true,
        };
        b.iter_batched(
            || Aggregator::new(CLASSES, grid.clone(), options).unwrap(),
            |mut agg| {
                agg.add(1, Mirror::IDENTITY, outputs[0].view()).unwrap();
                agg
            },
            BatchSize::PerIteration,
        )
    });

    let image = Array4::from_shape_fn((1, 2 * P, P, P), |(_, z, y, x)| {
        (z * 7 + y * 3 + x) as f32 * 1e-3
    });
    let tile = grid.tile(1).unwrap();
    let mut buf = vec![0.0f32; P * P * P];
    g.bench_function("extract_tile_m7", |b| {
        b.iter(|| extract_tile(image.view(), &grid, &tile, Mirror::ALL[7], &mut buf).unwrap())
    });

    // finish(): weights recomputed in tile order, division, no crop (256 x 128 x 128, 3 classes).
    g.bench_function("finish_256x128x128", |b| {
        b.iter_batched(
            || {
                let mut agg = Aggregator::new(
                    CLASSES,
                    grid.clone(),
                    AggregatorOptions {
                        mirrors: MirrorSet::identity_only(),
                        use_gaussian: true,
                    },
                )
                .unwrap();
                for (t, out) in outputs.iter().enumerate().take(3) {
                    agg.add(t, Mirror::IDENTITY, out.view()).unwrap();
                }
                agg
            },
            |agg| agg.finish().unwrap(),
            BatchSize::PerIteration,
        )
    });

    g.bench_function("gaussian_map_uncached", |b| {
        b.iter(|| gaussian_importance_map([P, P, P]).unwrap())
    });
    g.finish();
}

criterion_group!(benches, tiling);
criterion_main!(benches);

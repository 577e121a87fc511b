//! nnu-metrics on a liver-size label pair (512 x 512 x 480 u8, (z, y, x) = (480, 512, 512)).
//!
//! The pair is the analytic phantom of `scripts/bench/evaluate_vs_nnunet.py` (integer ellipsoid tests,
//! so both produce the same voxels): label 1 a liver-like ellipsoid, label 2 three tumour spheres; the
//! prediction has a slightly larger liver and shifted tumours. Compare
//! `evaluate/confusion+metrics` with the script's nnU-Net `Evaluator.evaluate` time.

use criterion::{criterion_group, criterion_main, Criterion};
use nnu_benches::label_phantom;
use nnu_metrics::{case_scores, confusion_counts, surface_metrics, SurfaceOptions};

fn bench_metrics(c: &mut Criterion) {
    let reference = label_phantom(0, 0);
    let test = label_phantom(3, 2);
    let labels = [0i64, 1, 2];
    let mut group = c.benchmark_group("evaluate");
    group.sample_size(10);
    group.bench_function("confusion+metrics 480x512x512 labels 0,1,2", |b| {
        b.iter(|| {
            let counts = confusion_counts(reference.view(), test.view(), &labels).unwrap();
            case_scores(&labels, &counts, None, None, None)
        })
    });
    group.bench_function("surface hd95+assd+nsd 480x512x512 labels 1,2", |b| {
        b.iter(|| {
            surface_metrics(
                reference.view(),
                test.view(),
                &[1, 2],
                [1.0, 0.8, 0.8],
                &SurfaceOptions::default(),
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_metrics);
criterion_main!(benches);

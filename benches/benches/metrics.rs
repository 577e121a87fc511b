//! nnu-metrics on a liver-size label pair (512 x 512 x 480 u8, (z, y, x) = (480, 512, 512)).
//!
//! The pair is the analytic phantom of `scripts/bench/evaluate_vs_nnunet.py` (integer ellipsoid tests,
//! so both produce the same voxels): label 1 a liver-like ellipsoid, label 2 three tumour spheres; the
//! prediction has a slightly larger liver and shifted tumours. Compare
//! `evaluate/confusion+metrics` with the script's nnU-Net `Evaluator.evaluate` time.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array3, Axis, Zip};
use nnu_metrics::{case_scores, confusion_counts, surface_metrics, SurfaceOptions};

const SHAPE: (usize, usize, usize) = (480, 512, 512);

/// `((p - c) / r)^2 summed <= 1`, evaluated exactly in integers.
fn inside(p: [i64; 3], c: [i64; 3], r: [i64; 3]) -> bool {
    let r2 = [r[0] * r[0], r[1] * r[1], r[2] * r[2]];
    let d = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
    d[0] * d[0] * r2[1] * r2[2] + d[1] * d[1] * r2[0] * r2[2] + d[2] * d[2] * r2[0] * r2[1]
        <= r2[0] * r2[1] * r2[2]
}

fn phantom(liver_grow: i64, tumour_shift: i64) -> Array3<u8> {
    let liver = (
        [240, 270, 230],
        [150 + liver_grow, 170 + liver_grow, 190 + liver_grow],
    );
    let tumours = [
        ([200, 250, 200], 30),
        ([290, 320, 280], 18),
        ([250, 200, 330], 9),
    ];
    let mut seg = Array3::<u8>::zeros(SHAPE);
    Zip::indexed(seg.view_mut().lanes_mut(Axis(2))).par_for_each(|(z, y), mut row| {
        for (x, v) in row.iter_mut().enumerate() {
            let p = [z as i64, y as i64, x as i64];
            if inside(p, liver.0, liver.1) {
                *v = 1;
            }
            for (c, r) in tumours {
                if inside(
                    p,
                    [c[0] + tumour_shift, c[1], c[2] + tumour_shift],
                    [r, r, r],
                ) {
                    *v = 2;
                }
            }
        }
    });
    seg
}

fn bench_metrics(c: &mut Criterion) {
    let reference = phantom(0, 0);
    let test = phantom(3, 2);
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

//! nnu-preprocessing on a realistic CT volume: (z, y, x) = (200, 256, 256) f32 resampled to (250, 300, 300).
//!
//! The input is the analytic phantom of `scripts/bench/preprocess_vs_nnunet.py` (air outside a cylinder, a
//! smooth tissue pattern with integer texture inside), which times nnU-Net 1.7.1's `resample_data_or_seg` on
//! the same arrays. Benches:
//! - `resample/order3_3d`, `resample/order1_3d`: one 3-D resize (skimage.transform.resize path);
//! - `resample/order3_sepz`, `resample/order1_sepz`: separate z (in-plane per slice, order 0 along z);
//! - `resample/order3_zonly`: order 3 to (250, 256, 256), only z changes (target in-plane spacing equal to the
//!   image's);
//! - `normalize/ct`: CT clipping and z-scoring of the resampled volume;
//! - `case/preprocess`: crop + resample (order 3) + CT normalisation of the whole case;
//! - `case/export_3class`: 3 class probabilities (250, 300, 300) back to (200, 256, 256), argmax, paste.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{Array4, Zip};
use nnu_benches::{ct_phantom, CT_SHAPE};
use nnu_preprocessing::normalize::normalize_channel;
use nnu_preprocessing::resample::{resample_channel, ResamplePlan};
use nnu_preprocessing::{
    export_segmentation, preprocess_case, ExportOptions, IntensityProperties, ItkGeometry,
    Normalization, Order, PreprocessParams,
};

const OUT: [usize; 3] = [250, 300, 300];

fn ct() -> Normalization {
    Normalization::Ct {
        stats: IntensityProperties {
            mean: 99.4,
            sd: 39.4,
            percentile_00_5: -17.0,
            percentile_99_5: 201.0,
        },
        use_nonzero_mask: false,
    }
}

fn bench(c: &mut Criterion) {
    let input = ct_phantom();
    let mut g = c.benchmark_group("preprocessing");
    g.sample_size(10);
    let plan_3d = ResamplePlan {
        new_shape: OUT,
        separate_z_axis: None,
    };
    let plan_sepz = ResamplePlan {
        new_shape: OUT,
        separate_z_axis: Some(0),
    };
    for (name, plan, order) in [
        ("resample/order3_3d", plan_3d, Order::Cubic),
        ("resample/order1_3d", plan_3d, Order::Linear),
        ("resample/order3_sepz", plan_sepz, Order::Cubic),
        ("resample/order1_sepz", plan_sepz, Order::Linear),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| resample_channel(input.view(), &plan, order).unwrap())
        });
    }
    let plan_zonly = ResamplePlan {
        new_shape: [OUT[0], CT_SHAPE.1, CT_SHAPE.2],
        separate_z_axis: None,
    };
    g.bench_function("resample/order3_zonly", |b| {
        b.iter(|| resample_channel(input.view(), &plan_zonly, Order::Cubic).unwrap())
    });
    let resampled = resample_channel(input.view(), &plan_3d, Order::Cubic).unwrap();
    g.bench_function("normalize/ct", |b| {
        b.iter_batched_ref(
            || resampled.clone(),
            |d| normalize_channel(d.view_mut(), &ct(), None, 0).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    // spacing (1.2, 0.9, 0.9) -> (0.96, 0.768, 0.768) gives (250, 300, 300)
    let params = PreprocessParams::new([0.96, 0.768, 0.768], vec![ct()]);
    let geometry = ItkGeometry::from_spacing_zyx([1.2, 0.9, 0.9]);
    g.bench_function("case/preprocess", |b| {
        b.iter_batched(
            || vec![input.clone()],
            |ch| preprocess_case(ch, &geometry, &params).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    let (_, props) = preprocess_case(vec![input.clone()], &geometry, &params).unwrap();
    let mut probs = Array4::<f32>::zeros((3, OUT[0], OUT[1], OUT[2]));
    Zip::indexed(&mut probs).par_for_each(|(c, z, y, x), v| {
        let s = ((z as f32 * 0.03 + c as f32).sin()
            + (y as f32 * 0.02).cos() * (x as f32 * 0.025 * c as f32).sin())
        .exp();
        *v = s;
    });
    g.bench_function("case/export_3class", |b| {
        b.iter(|| {
            export_segmentation(probs.view(), &props, &params, &ExportOptions::default()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

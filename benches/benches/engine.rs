//! Per-patch latency of the tract backend.
//!
//! - The small reference networks (`fixtures/reference/{unet,unetpp}-small`, 32^3 patches): the 8 mirrors
//!   of one tile run one by one (batch 1), with 1 and 2 threads; throughput is reported per patch.
//!   `NNU_BENCH_BATCHED=1` adds the same 8 patches as one batch of 8, which tract 0.23.9 runs 20-60 times
//!   slower (minutes per sample), hence off by default.
//! - The full Task003 UNet++ (128^3, base 32, 5 poolings) when `NNU_BENCH_FULL=/path/model.onnx` is set
//!   (make it with `nnu-export-onnx --random-weights`); a single patch, all cores. Takes minutes.

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ndarray::ArrayView5;
use nnu_benches::{random_batch, reference_onnx};
use nnu_engine::{Backend, TractBackend, TractOptions};

const MIRRORS: usize = 8;

fn run_one_by_one(backend: &mut TractBackend, input: ArrayView5<f32>) {
    for m in 0..input.shape()[0] {
        let patch = input.slice(ndarray::s![m..m + 1, .., .., .., ..]);
        std::hint::black_box(backend.run(patch).expect("run"));
    }
}

fn small_nets(c: &mut Criterion) {
    let batched_too = std::env::var_os("NNU_BENCH_BATCHED").is_some();
    for name in ["unetpp-small", "unet-small"] {
        let Some(model) = reference_onnx(name) else {
            continue;
        };
        let mut group = c.benchmark_group(format!("engine/{name}"));
        group.throughput(Throughput::Elements(MIRRORS as u64));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(8));
        for threads in [1, 2] {
            let opts = TractOptions::default().threads(threads);
            let mut single = TractBackend::load(&model, &opts).expect("load");
            let input = random_batch(MIRRORS, single.input_channels(), single.patch_size());
            group.bench_function(BenchmarkId::new("batch1x8", format!("{threads}t")), |b| {
                b.iter(|| run_one_by_one(&mut single, input.view()))
            });
            drop(single);
            if !batched_too {
                continue;
            }
            let mut batched =
                TractBackend::load(&model, &opts.clone().max_batch(MIRRORS)).expect("load");
            group.bench_function(BenchmarkId::new("batch8", format!("{threads}t")), |b| {
                b.iter(|| std::hint::black_box(batched.run(input.view()).expect("run")))
            });
        }
        group.finish();
    }
}

fn full_net(c: &mut Criterion) {
    let Some(model) = std::env::var_os("NNU_BENCH_FULL") else {
        eprintln!("skipping the full UNet++: set NNU_BENCH_FULL=/path/to/model.onnx");
        return;
    };
    let mut backend = TractBackend::load(&model, &TractOptions::default()).expect("load");
    let input = random_batch(1, backend.input_channels(), backend.patch_size());
    let mut group = c.benchmark_group("engine/full-unetpp");
    group.throughput(Throughput::Elements(1));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    group.bench_function("batch1", |b| {
        b.iter(|| std::hint::black_box(backend.run(input.view()).expect("run")))
    });
    group.finish();
}

criterion_group!(benches, small_nets, full_net);
criterion_main!(benches);

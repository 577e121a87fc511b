//! Cost of exporting the full Task003 networks (128^3, base 32, 5 poolings; about 46 M parameters
//! for UNet++, 31 M for Generic_UNet): graph construction from an in-memory state_dict plus
//! protobuf encoding, and synthetic He-init weight generation (what `nnu-export-onnx
//! --random-weights` does before that). The checkpoint reading itself is nnu-artifacts' concern.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nnu_onnx_export::{
    export_model, synthetic_state_dict, ExportOptions, Family, NetworkSpec, SyntheticConfig,
};

fn task003(c: &mut Criterion) {
    let cfg = SyntheticConfig::default();
    for (label, family) in [("unetpp", Family::UnetPlusPlus), ("unet", Family::Unet)] {
        let spec = NetworkSpec::task003_fullres(family);
        let weights = synthetic_state_dict(&spec, &cfg).expect("synthetic weights");
        let mut group = c.benchmark_group(format!("export/task003_{label}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        group.throughput(Throughput::Bytes(4 * weights.num_parameters() as u64));
        group.bench_function("synthetic_weights", |b| {
            b.iter(|| synthetic_state_dict(&spec, &cfg).expect("synthetic weights"))
        });
        group.bench_function("build_and_encode", |b| {
            b.iter_batched(
                || weights.clone(),
                |w| {
                    let m = export_model(&spec, w, &ExportOptions::default()).expect("export");
                    std::hint::black_box(m.to_bytes().len())
                },
                criterion::BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, task003);
criterion_main!(benches);

//! nnu-artifacts: decoding a plans pickle and loading a whole checkpoint (zip + pickle + tensor gather).
//!
//! `cargo bench -p nnu-benches --bench artifacts`. Uses the committed planner plans and, when present,
//! the reference UNet++ checkpoint in `fixtures/reference/` (2.4 MB, 188 tensors); both come from the page
//! cache after the first iteration, so this measures decoding, not the disk.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nnu_artifacts::{pickle, Checkpoint, Plans};

fn artifacts(c: &mut Criterion) {
    let root = nnu_benches::workspace_root();
    let plans_path =
        root.join("fixtures/artifacts/planner/Task501_PhantomCT/nnUNetPlansv2.1_plans_3D.pkl");
    let plans_bytes = std::fs::read(&plans_path).expect("fixture plans");
    let mut g = c.benchmark_group("artifacts");
    g.throughput(Throughput::Bytes(plans_bytes.len() as u64));
    g.bench_function("pickle_plans_3d", |b| {
        b.iter(|| pickle::from_slice(&plans_bytes).expect("plans"))
    });
    g.bench_function("typed_plans_3d", |b| {
        b.iter(|| Plans::from_pickle_slice(&plans_bytes).expect("plans"))
    });
    let ckpt = root.join("fixtures/reference/unetpp-small/fold_0/model_final_checkpoint.model");
    if ckpt.is_file() {
        let size = std::fs::metadata(&ckpt).map(|m| m.len()).unwrap_or(0);
        g.throughput(Throughput::Bytes(size));
        g.sample_size(30);
        g.bench_function("checkpoint_unetpp_small", |b| {
            b.iter(|| Checkpoint::load(&ckpt).expect("checkpoint"))
        });
        g.bench_function("checkpoint_unetpp_small_to_f32", |b| {
            b.iter(|| {
                let c = Checkpoint::load(&ckpt).expect("checkpoint");
                c.state_dict.iter().map(|t| t.to_f32().len()).sum::<usize>()
            })
        });
    } else {
        eprintln!("skipped checkpoint benches: {} is absent", ckpt.display());
    }
    g.finish();
}

criterion_group!(benches, artifacts);
criterion_main!(benches);

//! Per-sample time of the native backend on batches (the 8 mirrors of a tile, as the pipeline sends
//! them), one sample after the other against whole samples per thread
//! (`NativeOptions::samples_in_parallel`), on the same model in one sitting; prints medians and the ratio.
//!
//! ```text
//! cargo build --release -p nnu-engine --example batch_bench
//! target/release/examples/batch_bench MODEL.onnx [batch=8] [repeats=7] [threads=2]
//! ```

use std::time::Instant;

use ndarray::Array5;
use nnu_engine::{Backend, NativeBackend, NativeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .ok_or("usage: batch_bench MODEL.onnx [batch] [repeats] [threads]")?;
    let batch: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let repeats: usize = args.get(3).map_or(Ok(7), |s| s.parse())?;
    let threads: usize = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let mut medians = Vec::new();
    for parallel in [false, true] {
        let opts = NativeOptions::default()
            .threads(threads)
            .max_batch(batch)
            .samples_in_parallel(parallel);
        let mut backend = NativeBackend::load(model, &opts)?;
        let [z, y, x] = backend.patch_size();
        let c = backend.input_channels();
        let input = Array5::from_shape_fn((batch, c, z, y, x), |(n, c, z, y, x)| {
            (((n * 7 + c * 13 + z * 31 + y * 17 + x) % 101) as f32) * 0.02 - 1.0
        });
        let mut times = Vec::new();
        for r in 0..=repeats {
            let t = Instant::now();
            backend.run(input.view())?;
            if r > 0 {
                times.push(t.elapsed().as_secs_f64() / batch as f64);
            }
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "{}: {:.3} ms per sample (median of {repeats} batches of {batch}, {threads} threads; planned {:.1} MB per worker)",
            if parallel {
                "samples in parallel"
            } else {
                "one after the other"
            },
            med * 1e3,
            backend.planned_bytes() as f64 / 1e6
        );
        medians.push(med);
    }
    println!(
        "ratio (one after the other / in parallel): {:.2}x",
        medians[0] / medians[1]
    );
    Ok(())
}

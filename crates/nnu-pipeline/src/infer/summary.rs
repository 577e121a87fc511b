//! What a run reports: latencies as `ais_bench` summarises them, failures, throughput.

use nnu_numerics::percentile_linear;

use super::*;

/// Latency figures of the timed backend calls, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Fastest call.
    pub min: f64,
    /// Mean over calls.
    pub mean: f64,
    /// Median (numpy's `median`).
    pub median: f64,
    /// 99th percentile (numpy's `percentile(.., 99)`, linear interpolation).
    pub p99: f64,
    /// Slowest call.
    pub max: f64,
}

impl LatencyMs {
    /// The figures of a list of latencies in milliseconds (in any order); `None` when it is empty. Other
    /// drivers of a backend (the multi-device ACL path of `nnu-infer`) use it to report like [`InferPlan`].
    pub fn from_ms(latencies: &[f64]) -> Option<LatencyMs> {
        let mut sorted = latencies.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        Some(LatencyMs {
            min: first,
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            median: percentile_linear(sorted.clone(), 50.0),
            p99: percentile_linear(sorted.clone(), 99.0),
            max: last,
        })
    }
}

/// An input that could not be run (missing, short or unreadable); its dump is not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedInput {
    /// The input tile.
    pub input: PathBuf,
    /// What is wrong with it (one line, naming the file).
    pub error: String,
}

/// What a run did and how fast, written as `summary.json` and printed like `ais_bench`'s summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferSummary {
    /// Backend name.
    pub backend: String,
    /// Inputs listed (processed + skipped).
    pub inputs: usize,
    /// Inputs run in this invocation (failed ones excluded).
    pub processed: usize,
    /// Inputs skipped because their dump was complete.
    pub skipped: usize,
    /// Inputs per backend call.
    pub batch_size: usize,
    /// Timed backend calls.
    pub calls: usize,
    /// Input shape of one patch `(1, C, P, P, P)`.
    pub input_shape: [usize; 5],
    /// Dump shape of one patch `(1, classes, P, P, P)`.
    pub output_shape: [usize; 5],
    /// Dump numbering: 1 (`benchmark`) or 0 (`ais_bench`).
    pub output_numbering: u32,
    /// Latency of one backend call (a whole batch), warm-up excluded; `None` when nothing ran.
    pub latency_ms: Option<LatencyMs>,
    /// Inputs per second of compute time (`1000 * processed / sum of latencies`).
    pub throughput_per_s: f64,
    /// Wall time of the run, reading and writing included, in seconds.
    pub wall_s: f64,
    /// Inputs that could not be read; the run went on without them. A caller should treat a non-empty list
    /// as a failed run (`nnu-infer` exits non-zero) after the others' dumps are written.
    pub failed: Vec<FailedInput>,
}

impl InferSummary {
    pub(super) fn new(
        backend: &str,
        plan: &InferPlan,
        batch: usize,
        latencies: &[f64],
        wall_s: f64,
        failed: Vec<FailedInput>,
    ) -> Self {
        let processed = plan.tasks.len() - failed.len();
        let sum: f64 = latencies.iter().sum();
        let latency_ms = LatencyMs::from_ms(latencies);
        InferSummary {
            backend: backend.to_string(),
            inputs: plan.tasks.len() + plan.skipped,
            processed,
            skipped: plan.skipped,
            batch_size: batch,
            calls: latencies.len(),
            input_shape: plan.input_shape,
            output_shape: plan.output_shape,
            output_numbering: plan.naming.first_index(),
            latency_ms,
            throughput_per_s: if sum > 0.0 {
                processed as f64 * 1e3 / sum
            } else {
                0.0
            },
            wall_s,
            failed,
        }
    }
}

impl fmt::Display for InferSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "[INFO] backend: {}  batch size: {}  input {:?}  output {:?}",
            self.backend, self.batch_size, self.input_shape, self.output_shape
        )?;
        writeln!(
            f,
            "[INFO] inputs: {}  processed: {}  skipped (complete dumps): {}",
            self.inputs, self.processed, self.skipped
        )?;
        if let Some(l) = &self.latency_ms {
            writeln!(
                f,
                "[INFO] compute time (ms): min = {:.3}, max = {:.3}, mean = {:.3}, median = {:.3}, percentile(99%) = {:.3}",
                l.min, l.max, l.mean, l.median, l.p99
            )?;
        }
        write!(
            f,
            "[INFO] throughput (1000*processed/sum(compute time)): {:.3}/s  wall time: {:.3} s",
            self.throughput_per_s, self.wall_s
        )?;
        if !self.failed.is_empty() {
            write!(
                f,
                "\n[WARN] {} input(s) could not be run:",
                self.failed.len()
            )?;
            for failure in &self.failed {
                write!(f, "\n[WARN]   {}", failure.error)?;
            }
        }
        Ok(())
    }
}

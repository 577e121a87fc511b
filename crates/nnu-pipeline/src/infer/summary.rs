//! What a run reports: latencies as `ais_bench` summarises them, failures, throughput, and per device on
//! several devices. One summary type and one printer for every backend.

use nnu_numerics::percentile_linear;

use std::time::Duration;

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
    /// A run on several devices ([`InferPlan::run_devices`]): each device's figures and their total,
    /// written after the fields above; `None` (and absent from `summary.json`) for a run on one backend.
    #[serde(flatten)]
    pub devices: Option<DevicesSummary>,
}

/// What one device of a multi-device run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSummary {
    /// Device id.
    pub device: i32,
    /// Tiles it ran.
    pub processed: usize,
    /// Latency of its backend calls (on an NPU the device's execution, copies excluded), warm-up
    /// excluded; `None` when it ran nothing.
    pub latency_ms: Option<LatencyMs>,
    /// Tiles per second of compute time (`1000 * processed / sum of latencies`), as for the whole run.
    pub throughput_per_s: f64,
    /// Tiles per second over the time its worker was busy (reading, copies and writing included).
    pub wall_throughput_per_s: f64,
    /// Time to open the device and load the model, in seconds.
    pub setup_s: f64,
    /// Time from the model loaded to the worker's last tile, in seconds.
    pub busy_s: f64,
}

impl DeviceSummary {
    /// The figures of `device`, which ran `processed` tiles in backend calls of `latencies`, was busy
    /// for `busy` and took `setup` to load its model.
    pub fn new(
        device: i32,
        processed: usize,
        latencies: &[Duration],
        busy: Duration,
        setup: Duration,
    ) -> Self {
        let ms: Vec<f64> = latencies.iter().map(|l| l.as_secs_f64() * 1e3).collect();
        DeviceSummary {
            device,
            processed,
            latency_ms: LatencyMs::from_ms(&ms),
            throughput_per_s: per_second_ms(processed, ms.iter().sum()),
            wall_throughput_per_s: per_second_ms(processed, busy.as_secs_f64() * 1e3),
            setup_s: setup.as_secs_f64(),
            busy_s: busy.as_secs_f64(),
        }
    }
}

/// The per-device part of a multi-device run's summary (`summary.json` adds its fields to
/// [`InferSummary`]'s, whose `throughput_per_s` is then per device-equivalent: `1000 * processed / sum
/// of all latencies`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicesSummary {
    /// Per device, in the order given.
    pub devices: Vec<DeviceSummary>,
    /// Sum of the devices' compute throughputs: tiles per second of the devices together.
    pub total_throughput_per_s: f64,
    /// Tiles per second over the wall time of the multi-device run, model loading included.
    pub wall_throughput_per_s: f64,
}

impl DevicesSummary {
    /// The devices' figures and their total, for `processed` tiles in `wall` (model loading included).
    pub fn new(devices: Vec<DeviceSummary>, processed: usize, wall: Duration) -> Self {
        DevicesSummary {
            total_throughput_per_s: devices.iter().map(|d| d.throughput_per_s).sum(),
            wall_throughput_per_s: per_second_ms(processed, wall.as_secs_f64() * 1e3),
            devices,
        }
    }
}

/// `n` per second over `ms` milliseconds; 0 when no time passed.
fn per_second_ms(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
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
            throughput_per_s: per_second_ms(processed, latencies.iter().sum()),
            wall_s,
            failed,
            devices: None,
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
        if let Some(devices) = &self.devices {
            write!(f, "\n{devices}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DevicesSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.devices {
            write!(f, "[INFO] device {}: processed {}", d.device, d.processed)?;
            if let Some(l) = &d.latency_ms {
                write!(
                    f,
                    "  compute time (ms): min = {:.3}, mean = {:.3}, median = {:.3}, percentile(99%) = {:.3}",
                    l.min, l.mean, l.median, l.p99
                )?;
            }
            writeln!(
                f,
                "  throughput: {:.3}/s (compute), {:.3}/s (busy)  set-up {:.3} s",
                d.throughput_per_s, d.wall_throughput_per_s, d.setup_s
            )?;
        }
        write!(
            f,
            "[INFO] total on {} device(s): {:.3}/s (sum of compute throughputs), {:.3}/s (wall, model loading included)",
            self.devices.len(),
            self.total_throughput_per_s,
            self.wall_throughput_per_s
        )
    }
}

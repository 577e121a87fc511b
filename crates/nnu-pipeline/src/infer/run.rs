//! Running a plan: one loop for every backend. Each worker (one backend: the CPU one, or one per NPU)
//! takes the next batch of tasks until none is left, so a faster device takes more; dumps are written
//! atomically and the backend calls timed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::*;

/// One backend of a multi-device run ([`InferPlan::run_devices`]) and how long it took to load.
pub struct Device {
    /// Device id, as reported in the summary and in errors (`device N: ...`).
    pub id: i32,
    /// The model loaded on that device.
    pub backend: Box<dyn Backend>,
    /// Time to open the device and load the model (reported as the device's set-up).
    pub setup: Duration,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("backend", &self.backend.name())
            .field("setup", &self.setup)
            .finish()
    }
}

/// The tasks not yet taken, shared by the workers of a run.
struct Queue {
    next: AtomicUsize,
    /// Set by a worker that failed: the others stop after their current batch.
    stop: AtomicBool,
}

/// What one worker did.
struct WorkerRun {
    /// Inputs it ran (failed ones excluded).
    processed: usize,
    /// The time of each backend call, warm-up excluded.
    latencies: Vec<Duration>,
    failed: Vec<FailedInput>,
    /// From its start to its last batch, reading and writing included.
    busy: Duration,
}

fn to_ms(latencies: &[Duration]) -> Vec<f64> {
    latencies.iter().map(|l| l.as_secs_f64() * 1e3).collect()
}

impl InferPlan {
    /// Runs every task through `backend` in batches of up to [`Backend::max_batch`] inputs, writes the
    /// dumps and `summary.json`, and returns the summary. `progress(done, total)` is called after each
    /// batch. On an error the dumps written so far stay (a rerun resumes after them).
    pub fn run(
        &self,
        backend: &mut dyn Backend,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<InferSummary, PipelineError> {
        let started = Instant::now();
        self.create_output_dir()?;
        let total = self.tasks.len();
        let mut done = 0;
        let worker = self.work(backend, 0, &Queue::new(), &mut |n| {
            done += n;
            progress(done, total);
        })?;
        let latencies = to_ms(&worker.latencies);
        let summary = InferSummary::new(
            backend.name(),
            self,
            backend.max_batch().max(1),
            &latencies,
            started.elapsed().as_secs_f64(),
            worker.failed,
        );
        self.write_summary(&summary)?;
        Ok(summary)
    }

    /// Runs every task on several devices at once, one worker thread per device each taking the next
    /// batch (so faster devices take more), with [`InferPlan::run`]'s rules for inputs, dumps, warm-up
    /// and timing; the summary adds each device's figures and the devices' total throughput
    /// ([`DevicesSummary`]). The first error stops every worker and is returned naming its device;
    /// `progress(done, total)` is called from the workers after each batch.
    pub fn run_devices(
        &self,
        devices: &mut [Device],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<InferSummary, PipelineError> {
        let ids: Vec<i32> = devices.iter().map(|d| d.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let reason = if ids.is_empty() {
            Some("no device given")
        } else if sorted.len() != ids.len() {
            Some("a device is listed twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PipelineError::Devices(format!(
                "bad device list {ids:?}: {reason}"
            )));
        }
        let started = Instant::now();
        self.create_output_dir()?;
        let total = self.tasks.len();
        let queue = Queue::new();
        let done = AtomicUsize::new(0);
        let first_error: Mutex<Option<PipelineError>> = Mutex::new(None);
        let fail = |e: PipelineError| {
            queue.stop.store(true, Ordering::Relaxed);
            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
        };
        let runs: Vec<Option<WorkerRun>> = std::thread::scope(|s| {
            let handles: Vec<_> = devices
                .iter_mut()
                .enumerate()
                .map(|(k, device)| {
                    let (queue, done, fail) = (&queue, &done, &fail);
                    let id = device.id;
                    let handle = s.spawn(move || {
                        let mut on_batch =
                            |n: usize| progress(done.fetch_add(n, Ordering::Relaxed) + n, total);
                        match self.work(device.backend.as_mut(), k, queue, &mut on_batch) {
                            Ok(run) => Some(run),
                            Err(e) => {
                                fail(PipelineError::Device {
                                    device: id,
                                    source: Box::new(e),
                                });
                                None
                            }
                        }
                    });
                    (id, handle)
                })
                .collect();
            handles
                .into_iter()
                .map(|(device, handle)| {
                    handle.join().unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        fail(PipelineError::WorkerPanic { device, message });
                        None
                    })
                })
                .collect()
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let run_wall = started.elapsed();
        let mut latencies = Vec::new();
        let mut failed = Vec::new();
        let mut per_device = Vec::with_capacity(devices.len());
        // Every worker without a run stored its error, returned above.
        for (device, run) in devices.iter().zip(runs.into_iter().flatten()) {
            latencies.extend(to_ms(&run.latencies));
            per_device.push(DeviceSummary::new(
                device.id,
                run.processed,
                &run.latencies,
                run.busy,
                device.setup,
            ));
            failed.extend(run.failed);
        }
        // The devices loaded their models in parallel before the run: the longest set-up.
        let setup = devices.iter().map(|d| d.setup).max().unwrap_or_default();
        let first = &devices[0].backend;
        let mut summary = InferSummary::new(
            first.name(),
            self,
            first.max_batch().max(1),
            &latencies,
            started.elapsed().as_secs_f64(),
            failed,
        );
        summary.devices = Some(DevicesSummary::new(
            per_device,
            summary.processed,
            run_wall + setup,
        ));
        self.write_summary(&summary)?;
        Ok(summary)
    }

    fn create_output_dir(&self) -> Result<(), PipelineError> {
        match &self.output_dir {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e)),
            None => Ok(()),
        }
    }

    fn write_summary(&self, summary: &InferSummary) -> Result<(), PipelineError> {
        if let Some(dir) = &self.output_dir {
            let path = dir.join(SUMMARY_FILE);
            let json = serde_json::to_string_pretty(summary)
                .map_err(|e| input_err(&path, format!("cannot serialise the summary: {e}")))?;
            write_atomic(&path, json.as_bytes())?;
        }
        Ok(())
    }

    /// The loop of one worker: takes the next batch of tasks from `queue` until none is left (or another
    /// worker failed), warms the backend up before its first batch (none when it gets no task), and
    /// reports each batch's size to `progress`. Worker `k`'s random inputs come from seed `seed + k`.
    fn work(
        &self,
        backend: &mut dyn Backend,
        k: usize,
        queue: &Queue,
        progress: &mut dyn FnMut(usize),
    ) -> Result<WorkerRun, PipelineError> {
        let busy_start = Instant::now();
        let [_, c, z, y, x] = self.input_shape;
        let batch = backend.max_batch().max(1);
        let total = self.tasks.len();
        let mut warmups = self.warmup;
        let mut rng = XorShift::new(self.seed.wrapping_add(k as u64));
        let mut latencies = Vec::with_capacity(total.div_ceil(batch));
        let mut processed = 0;
        let mut failed = Vec::new();
        while !queue.stop.load(Ordering::Relaxed) {
            let start = queue.next.fetch_add(batch, Ordering::Relaxed);
            if start >= total {
                break;
            }
            let chunk = &self.tasks[start..(start + batch).min(total)];
            if warmups > 0 {
                let zeros = Array5::<f32>::zeros((batch.min(total), c, z, y, x));
                for _ in 0..warmups {
                    backend.run(zeros.view())?;
                }
                warmups = 0;
            }
            // Inputs are memory-mapped; a batch of one is passed without a copy. An input that cannot be
            // read (missing, short, unreadable) is reported in the summary and skipped; the others run.
            let mut maps = Vec::with_capacity(chunk.len());
            let mut tasks = Vec::with_capacity(chunk.len());
            for task in chunk {
                match &task.input {
                    // open_shape checks the size against the shape, so view5 below cannot fail.
                    Some(p) => match MappedBin::open_shape(p, &self.input_shape) {
                        Ok(m) => {
                            maps.push(m);
                            tasks.push(task);
                        }
                        Err(e) => failed.push(FailedInput {
                            input: p.clone(),
                            error: e.to_string(),
                        }),
                    },
                    None => tasks.push(task),
                }
            }
            if tasks.is_empty() {
                progress(chunk.len());
                continue;
            }
            let owned;
            let view: ArrayView5<f32> = if maps.len() == 1 && tasks.len() == 1 {
                maps[0].view5(self.input_shape)?
            } else {
                let mut b = Array5::<f32>::zeros((tasks.len(), c, z, y, x));
                let mut maps = maps.iter();
                for (i, task) in tasks.iter().enumerate() {
                    let mut dst = b.slice_mut(s![i..i + 1, .., .., .., ..]);
                    match (&task.input, maps.next()) {
                        (Some(_), Some(m)) => dst.assign(&m.view5(self.input_shape)?),
                        _ => dst.iter_mut().for_each(|v| *v = rng.uniform()),
                    }
                }
                owned = b;
                owned.view()
            };
            let t0 = Instant::now();
            let logits = backend.run(view).map_err(|source| {
                let inputs: Vec<PathBuf> = tasks.iter().filter_map(|t| t.input.clone()).collect();
                if inputs.is_empty() {
                    PipelineError::Engine(source)
                } else {
                    PipelineError::Run { inputs, source }
                }
            })?;
            latencies.push(backend.compute_time().unwrap_or_else(|| t0.elapsed()));
            let got = logits.shape();
            if got[0] != tasks.len() || got[1..] != self.output_shape[1..] {
                return Err(PipelineError::Shape(format!(
                    "{} returned {got:?} for a batch of {}, expected ({}, {:?})",
                    backend.name(),
                    tasks.len(),
                    tasks.len(),
                    &self.output_shape[1..]
                )));
            }
            for (i, task) in tasks.iter().enumerate() {
                if let Some(out) = &task.output {
                    let one = logits.slice(s![i..i + 1, .., .., .., ..]);
                    write_array(out, one)?;
                }
            }
            processed += tasks.len();
            progress(chunk.len());
        }
        Ok(WorkerRun {
            processed,
            latencies,
            failed,
            busy: busy_start.elapsed(),
        })
    }
}

impl Queue {
    fn new() -> Self {
        Queue {
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

/// xorshift64*: deterministic random inputs without a dependency.
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-2, 2).
    pub(super) fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 random bits
        bits as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }
}

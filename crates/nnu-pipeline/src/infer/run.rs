//! Running a plan: batches through the backend, dumps written atomically, latencies timed.

use super::*;

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
        if let Some(dir) = &self.output_dir {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
        let [_, c, z, y, x] = self.input_shape;
        let batch = backend.max_batch().max(1);
        let total = self.tasks.len();
        if !self.tasks.is_empty() {
            let zeros = Array5::<f32>::zeros((batch.min(total), c, z, y, x));
            for _ in 0..self.warmup {
                backend.run(zeros.view())?;
            }
        }
        let mut rng = XorShift::new(self.seed);
        let mut latencies_ms = Vec::with_capacity(total.div_ceil(batch));
        let mut done = 0;
        let mut failed = Vec::new();
        for chunk in self.tasks.chunks(batch) {
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
                done += chunk.len();
                progress(done, total);
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
            let logits = backend.run(view)?;
            latencies_ms.push(t0.elapsed().as_secs_f64() * 1e3);
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
            done += chunk.len();
            progress(done, total);
        }
        let summary = InferSummary::new(
            backend.name(),
            self,
            batch,
            &latencies_ms,
            started.elapsed().as_secs_f64(),
            failed,
        );
        if let Some(dir) = &self.output_dir {
            let path = dir.join(SUMMARY_FILE);
            let json = serde_json::to_string_pretty(&summary)
                .map_err(|e| input_err(&path, format!("cannot serialise the summary: {e}")))?;
            write_atomic(&path, json.as_bytes())?;
        }
        Ok(summary)
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

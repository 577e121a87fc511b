//! `--backend acl`: an `.om` model on one or more Ascend devices through [`nnu_acl::run_tiles`].
//!
//! The inputs, the dump names, the resume rule and the same-folder check are [`InferPlan`]'s, so a tract
//! run and an ACL run over the same tiles write the same file names into the same folder. Every device
//! writes into DUMP_DIR itself (`ais_bench --output_dirname` style; the post-processing reads it as it reads
//! `benchmark`'s `dumpOutput_deviceN/` folders). The summary is [`InferSummary`] over all tiles, plus
//! per-device figures and the total throughput of the devices together.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nnu_acl::{run_tiles, AclBackend, DriverOptions, DumpLayout, Heads, Runtime, RuntimeOptions};
use nnu_engine::Backend;
use nnu_pipeline::infer::{
    InferInput, InferOptions, InferPlan, InferSummary, LatencyMs, SUMMARY_FILE,
};
use serde::Serialize;

use crate::AnyResult;

/// Environment variable naming the `libascendcl.so` to load when `--acl-lib` is not given.
pub const LIBRARY_ENV: &str = "NNU_ACL_LIB";

/// Parses `--device`: comma-separated non-negative ids, none twice.
pub fn parse_devices(text: &str) -> AnyResult<Vec<i32>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let id = part
            .parse::<i32>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| format!("--device {text}: {part:?} is not a device id"))?;
        if out.contains(&id) {
            return Err(format!("--device {text}: device {id} is listed twice").into());
        }
        out.push(id);
    }
    Ok(out)
}

/// The runtime, the devices checked against it, and the model loaded on the first device (its shapes
/// plan the run; it is freed before the workers load their own copies).
pub struct Session {
    rt: Runtime,
    devices: Vec<i32>,
    model: PathBuf,
    first: AclBackend,
}

impl Session {
    /// Loads AscendCL (`library`, else `$NNU_ACL_LIB`, else CANN's usual places), checks that every device
    /// exists, and loads `model` on the first. Nothing is written.
    pub fn open(model: &Path, devices: &[i32], library: Option<PathBuf>) -> AnyResult<Session> {
        if !model.is_file() {
            return Err(format!("{}: no such model file", model.display()).into());
        }
        let library = library.or_else(|| {
            std::env::var_os(LIBRARY_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let rt = Runtime::init(&RuntimeOptions {
            library,
            config: None,
        })
        .map_err(|e| match e {
            nnu_acl::AclError::NotFound { .. } => {
                format!("{e}; or give --acl-lib PATH or ${LIBRARY_ENV}").into()
            }
            e => Box::<dyn std::error::Error>::from(e),
        })?;
        let count = rt.device_count()?;
        for &d in devices {
            if u32::try_from(d).map_or(true, |d| d >= count) {
                return Err(format!(
                    "--device {d}: no such device; AscendCL ({}) sees {count} device(s){}",
                    rt.library_path().display(),
                    if count > 0 {
                        format!(", ids 0..{}", count - 1)
                    } else {
                        String::new()
                    }
                )
                .into());
            }
        }
        let first = AclBackend::load(&rt, devices[0], model)?;
        Ok(Session {
            rt,
            devices: devices.to_vec(),
            model: model.to_path_buf(),
            first,
        })
    }

    /// The backend on the first device (for `--loop`).
    pub fn first_backend(&mut self) -> &mut AclBackend {
        &mut self.first
    }

    /// Runs the tiles of `input` that lack a complete dump on every device at once, writes the dumps
    /// and `summary.json`, and returns the summary.
    pub fn run_files(self, input: &InferInput, options: &InferOptions) -> AnyResult<AclSummary> {
        let started = Instant::now();
        let plan = InferPlan::new(input, options, &self.first)?;
        crate::report_skipped(plan.skipped());
        let [z, y, x] = self.first.patch_size();
        let input_shape = [1, self.first.input_channels(), z, y, x];
        let output_shape = [1, self.first.num_classes(), z, y, x];
        drop(self.first);
        let out_dir = options
            .output_dir
            .clone()
            .ok_or("an output folder is required for file inputs")?;
        let tiles: Vec<PathBuf> = plan
            .tasks()
            .iter()
            .filter_map(|t| t.input.clone())
            .collect();

        let mut devices: Vec<DeviceSummary> = self
            .devices
            .iter()
            .map(|&device| DeviceSummary::new(device, &[], Duration::ZERO, Duration::ZERO))
            .collect();
        let mut run_wall = Duration::ZERO;
        let mut all_ms = Vec::new();
        if !tiles.is_empty() {
            let mut opts = DriverOptions::new(&self.model, self.devices.clone(), &out_dir);
            opts.naming = options.naming;
            opts.layout = DumpLayout::Flat;
            opts.heads = Heads::FinalOnly;
            // The plan already left out complete dumps (or, with --overwrite, kept them).
            opts.skip_existing = false;
            let bar = crate::progress_bar(tiles.len());
            let done = AtomicU64::new(0);
            let report = run_tiles(&self.rt, &tiles, &opts, &|_| {
                bar.set_position(done.fetch_add(1, Ordering::Relaxed) + 1)
            });
            bar.finish_and_clear();
            let report = report?;
            run_wall = report.wall;
            devices = report
                .devices
                .iter()
                .map(|d| DeviceSummary::new(d.device, &d.latencies, d.busy, d.setup))
                .collect();
            all_ms = report
                .devices
                .iter()
                .flat_map(|d| d.latencies.iter().map(|l| l.as_secs_f64() * 1e3))
                .collect();
        }
        let processed: usize = devices.iter().map(|d| d.processed).sum();
        let sum_ms: f64 = all_ms.iter().sum();
        let summary = AclSummary {
            summary: InferSummary {
                backend: "acl".into(),
                inputs: processed + plan.skipped(),
                processed,
                skipped: plan.skipped(),
                batch_size: 1,
                calls: all_ms.len(),
                input_shape,
                output_shape,
                output_numbering: options.naming.first_index(),
                latency_ms: LatencyMs::from_ms(&all_ms),
                throughput_per_s: per_second_ms(processed, sum_ms),
                wall_s: started.elapsed().as_secs_f64(),
                // run_tiles stops every device at the first failing tile and returns that error.
                failed: Vec::new(),
            },
            total_throughput_per_s: devices.iter().map(|d| d.throughput_per_s).sum(),
            wall_throughput_per_s: per_second_ms(processed, run_wall.as_secs_f64() * 1e3),
            devices,
        };
        std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
        let path = out_dir.join(SUMMARY_FILE);
        let json = serde_json::to_string_pretty(&summary)
            .map_err(|e| format!("{}: cannot serialise the summary: {e}", path.display()))?;
        nnu_bins::write_atomic(&path, json.as_bytes())?;
        Ok(summary)
    }
}

fn per_second_ms(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
}

/// What one device did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSummary {
    /// Device id.
    pub device: i32,
    /// Tiles it ran.
    pub processed: usize,
    /// Latency of its `aclmdlExecute` calls, warm-up excluded; `None` when it ran nothing.
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
    fn new(device: i32, latencies: &[Duration], busy: Duration, setup: Duration) -> Self {
        let ms: Vec<f64> = latencies.iter().map(|l| l.as_secs_f64() * 1e3).collect();
        DeviceSummary {
            device,
            processed: ms.len(),
            latency_ms: LatencyMs::from_ms(&ms),
            throughput_per_s: per_second_ms(ms.len(), ms.iter().sum()),
            wall_throughput_per_s: per_second_ms(ms.len(), busy.as_secs_f64() * 1e3),
            setup_s: setup.as_secs_f64(),
            busy_s: busy.as_secs_f64(),
        }
    }
}

/// The summary of a multi-device run, written as `summary.json`: [`InferSummary`]'s fields over all the
/// tiles (its `throughput_per_s` is per device-equivalent: `1000 * processed / sum of all latencies`),
/// then `devices`, and the throughput of the devices together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AclSummary {
    /// Figures over all tiles of all devices.
    #[serde(flatten)]
    pub summary: InferSummary,
    /// Per device, in the order given to `--device`.
    pub devices: Vec<DeviceSummary>,
    /// Sum of the devices' compute throughputs: tiles per second of the devices together.
    pub total_throughput_per_s: f64,
    /// Tiles per second over the wall time of the multi-device run (model loading included).
    pub wall_throughput_per_s: f64,
}

impl fmt::Display for AclSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists() {
        assert_eq!(parse_devices("0").unwrap(), vec![0]);
        assert_eq!(parse_devices("3, 1,2").unwrap(), vec![3, 1, 2]);
        for bad in ["", "0,", "a", "-1", "0,,1", "1.5"] {
            let e = parse_devices(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--device {bad}:")), "{e}");
        }
        let e = parse_devices("0,1,0").unwrap_err().to_string();
        assert_eq!(e, "--device 0,1,0: device 0 is listed twice");
    }

    #[test]
    fn device_figures() {
        let ms = |v: u64| Duration::from_millis(v);
        let d = DeviceSummary::new(2, &[ms(10), ms(30), ms(20)], ms(100), ms(5));
        assert_eq!((d.device, d.processed), (2, 3));
        assert!((d.throughput_per_s - 50.0).abs() < 1e-9);
        assert!((d.wall_throughput_per_s - 30.0).abs() < 1e-9);
        let l = d.latency_ms.expect("latencies");
        assert!((l.median - 20.0).abs() < 1e-9 && (l.min - 10.0).abs() < 1e-9);
        let idle = DeviceSummary::new(0, &[], Duration::ZERO, Duration::ZERO);
        assert_eq!(
            (idle.processed, idle.latency_ms, idle.throughput_per_s),
            (0, None, 0.0)
        );
    }
}

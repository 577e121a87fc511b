//! Multi-device driver: runs a list of tile files on several devices at once, writing dumps like
//! `benchmark` / `ais_bench`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nnu_bins::{write_f32_file, DumpNaming, MappedBin};

use crate::error::{AclError, Result};
use crate::model::Runner;
use crate::runtime::Runtime;

/// Where the dumps go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpLayout {
    /// `OUT/dumpOutput_deviceD/`, one folder per device, like `benchmark`.
    PerDevice,
    /// `OUT/` directly, like `ais_bench --output_dirname`.
    Flat,
}

/// Which outputs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heads {
    /// Only output 0, the final head: a fifth of the disk of a five-head export, and all the merge needs.
    FinalOnly,
    /// Every output, as `benchmark` does.
    All,
}

/// Options of [`run_tiles`].
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// The `.om` model (loaded once per device).
    pub model: PathBuf,
    /// Device ids, one worker thread each.
    pub devices: Vec<i32>,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Output numbering. Default `benchmark` (`_1` = final head).
    pub naming: DumpNaming,
    /// Folder layout. Default one folder per device.
    pub layout: DumpLayout,
    /// Outputs to write. Default the final head only.
    pub heads: Heads,
    /// Skip tiles whose final-head dump already exists with the right size in the dump folder of any of
    /// [`DriverOptions::devices`] (resume). Default true.
    pub skip_existing: bool,
    /// Untimed executions on a zero input before a worker's first tile (default 1, as `ais_bench` warms
    /// up), so the first tile's latency does not include the device's first-run cost. None are run by a
    /// worker that has no tile to run.
    pub warmup: usize,
}

impl DriverOptions {
    /// Options with the defaults above.
    pub fn new(model: impl Into<PathBuf>, devices: Vec<i32>, out_dir: impl Into<PathBuf>) -> Self {
        DriverOptions {
            model: model.into(),
            devices,
            out_dir: out_dir.into(),
            naming: DumpNaming::Benchmark,
            layout: DumpLayout::PerDevice,
            heads: Heads::FinalOnly,
            skip_existing: true,
            warmup: 1,
        }
    }

    /// The dump folder of `device`.
    pub fn dump_dir(&self, device: i32) -> PathBuf {
        match self.layout {
            DumpLayout::PerDevice => self.out_dir.join(format!("dumpOutput_device{device}")),
            DumpLayout::Flat => self.out_dir.clone(),
        }
    }
}

/// What one device did.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceReport {
    /// Device id.
    pub device: i32,
    /// Tiles run.
    pub tiles: usize,
    /// Tiles skipped because their dump existed.
    pub skipped: usize,
    /// Time spent in `aclmdlExecute` (device compute plus the runtime's overhead), warm-up excluded.
    pub execute: Duration,
    /// The time of each tile's `aclmdlExecute`, in the order run (the latencies `ais_bench` reports).
    pub latencies: Vec<Duration>,
    /// Time from the worker's start (model loaded) to its last tile, reading and writing included.
    pub busy: Duration,
    /// Time to open the device and load the model.
    pub setup: Duration,
}

impl DeviceReport {
    /// Tiles per second over [`DeviceReport::busy`].
    pub fn throughput(&self) -> f64 {
        per_second(self.tiles, self.busy)
    }
}

/// What [`run_tiles`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct DriverReport {
    /// Per device, in the order given.
    pub devices: Vec<DeviceReport>,
    /// Wall time of the whole run, set-up included.
    pub wall: Duration,
}

impl DriverReport {
    /// Tiles run on all devices.
    pub fn tiles(&self) -> usize {
        self.devices.iter().map(|d| d.tiles).sum()
    }

    /// Total tiles per second over the wall time.
    pub fn throughput(&self) -> f64 {
        per_second(self.tiles(), self.wall)
    }
}

fn per_second(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// The input files listed in a `.info` file (`INDEX PATH W H`), in order.
pub fn tiles_from_info(info: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    Ok(nnu_bins::info::read_info(info)?
        .into_iter()
        .map(|e| PathBuf::from(e.path))
        .collect())
}

/// The `.bin` files of a folder, sorted by name.
pub fn tiles_from_dir(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    Ok(nnu_bins::info::list_bins(dir)?)
}

/// Runs every tile of `tiles` through the model, one worker thread per device, each taking the next
/// unprocessed tile (so faster devices take more). For an input `DIR/STEM.bin` it writes
/// `dump_dir(device)/STEM_K.bin` (f32) per selected output, atomically. `on_tile(device)` is called after
/// each tile (for a progress bar). The first error stops every worker and is returned, naming the device.
pub fn run_tiles(
    rt: &Runtime,
    tiles: &[PathBuf],
    opts: &DriverOptions,
    on_tile: &(dyn Fn(i32) + Sync),
) -> Result<DriverReport> {
    if opts.devices.is_empty() {
        return Err(AclError::Devices {
            devices: opts.devices.clone(),
            reason: "no device given",
        });
    }
    let mut sorted = opts.devices.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != opts.devices.len() {
        return Err(AclError::Devices {
            devices: opts.devices.clone(),
            reason: "a device is listed twice",
        });
    }
    for &d in &opts.devices {
        let dir = opts.dump_dir(d);
        std::fs::create_dir_all(&dir).map_err(|e| nnu_bins::BinsError::Io {
            path: dir,
            source: e,
        })?;
    }
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<(i32, AclError)>> = Mutex::new(None);
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> =
            opts.devices
                .iter()
                .map(|&device| {
                    let (next, stop, first_error) = (&next, &stop, &first_error);
                    let rt = rt.clone();
                    let h = s.spawn(move || {
                        match worker(&rt, device, tiles, opts, next, stop, on_tile) {
                            Ok(r) => Some(r),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                let mut slot =
                                    first_error.lock().unwrap_or_else(|p| p.into_inner());
                                slot.get_or_insert((device, e));
                                None
                            }
                        }
                    });
                    (device, h)
                })
                .collect();
        handles
            .into_iter()
            .map(|(device, h)| match h.join() {
                Ok(r) => Ok(r),
                Err(p) => {
                    stop.store(true, Ordering::Relaxed);
                    let message = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(AclError::WorkerPanic { device, message })
                }
            })
            .collect::<Vec<_>>()
    });
    if let Some((device, e)) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(AclError::Worker {
            device,
            source: Box::new(e),
        });
    }
    let mut devices = Vec::with_capacity(reports.len());
    for r in reports {
        // A worker without a report stored its error, returned above.
        devices.extend(r?);
    }
    Ok(DriverReport {
        devices,
        wall: start.elapsed(),
    })
}

fn worker(
    rt: &Runtime,
    device: i32,
    tiles: &[PathBuf],
    opts: &DriverOptions,
    next: &AtomicUsize,
    stop: &AtomicBool,
    on_tile: &(dyn Fn(i32) + Sync),
) -> Result<DeviceReport> {
    let t0 = Instant::now();
    let mut runner = Runner::new(rt, device, &opts.model)?;
    let setup = t0.elapsed();
    let dir = opts.dump_dir(device);
    let outputs: Vec<usize> = match opts.heads {
        Heads::FinalOnly => vec![0],
        Heads::All => (0..runner.info().outputs.len()).collect(),
    };
    let out_bytes: Vec<u64> = runner
        .info()
        .outputs
        .iter()
        .map(|t| t.elements().unwrap_or(0) as u64 * 4)
        .collect();
    let in_elems = runner.info().inputs[0].elements().unwrap_or(0);
    let mut report = DeviceReport {
        device,
        tiles: 0,
        skipped: 0,
        execute: Duration::ZERO,
        latencies: Vec::new(),
        busy: Duration::ZERO,
        setup,
    };
    let busy_start = Instant::now();
    let mut out = Vec::new();
    let mut warmups = opts.warmup;
    while !stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = tiles.get(i) else { break };
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.strip_suffix(".bin").unwrap_or(n).to_string())
            .ok_or_else(|| AclError::Model {
                path: path.clone(),
                reason: "the tile file name is not UTF-8".into(),
            })?;
        let final_name = opts.naming.file_name(&stem, 0);
        let done = |d: &i32| {
            std::fs::metadata(opts.dump_dir(*d).join(&final_name))
                .is_ok_and(|m| m.len() == out_bytes[0])
        };
        if opts.skip_existing && opts.devices.iter().any(done) {
            report.skipped += 1;
            on_tile(device);
            continue;
        }
        let tile = MappedBin::open(path)?;
        if tile.as_slice().len() != in_elems {
            return Err(AclError::Size {
                what: format!("{} as input 0 of {}", path.display(), opts.model.display()),
                expected: in_elems * 4,
                got: tile.as_slice().len() * 4,
            });
        }
        if warmups > 0 {
            let zeros = vec![0.0f32; in_elems];
            runner.set_input(0, &zeros, false)?;
            for _ in 0..warmups {
                runner.execute()?;
            }
            warmups = 0;
        }
        let for_tile = |e: AclError| AclError::Tile {
            path: path.clone(),
            source: Box::new(e),
        };
        runner
            .set_input(0, tile.as_slice(), false)
            .map_err(for_tile)?;
        let te = Instant::now();
        runner.execute().map_err(for_tile)?;
        let took = te.elapsed();
        report.execute += took;
        report.latencies.push(took);
        // Final head last, so an existing `_first` dump means the tile is complete.
        for &k in outputs.iter().rev() {
            runner.output(k, &mut out).map_err(for_tile)?;
            write_f32_file(&dir.join(opts.naming.file_name(&stem, k as u32)), &out)?;
        }
        report.tiles += 1;
        on_tile(device);
    }
    report.busy = busy_start.elapsed();
    Ok(report)
}

//! The bins path run over the cases of an input, as `nnu-preprocess` runs it: every case's tile bins
//! (v1 or nnunetv2), after a disk budget that refuses a case whose tiles alone need more disk than
//! there is; or, for a v1 model, every case's preprocessed volume as `CASE.npy` and `CASE.json`. A case
//! another live run works on is left to it; a failure is its case's alone.
//!
//! # Example
//!
//! ```no_run
//! use nnu_pipeline::bins_run::PreprocessJob;
//! use nnu_pipeline::run::ProgressSink;
//!
//! let job = PreprocessJob::new("Task003_Liver/nnUNetTrainerV2__nnUNetPlansv2.1", "imagesTs", "bins");
//! let all_done = job.run(&mut ProgressSink)?;
//! # Ok::<(), nnu_pipeline::PipelineError>(())
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nnu_tiling::MirrorSet;

use crate::bins::{
    human_bytes, is_case_tile, preprocess_to_npy, BinsOptions, DiskBudget, SHAPE_FILE_LOCK_TIMEOUT,
};
use crate::bins_v2::BinsModel;
use crate::cases::{discover_cases, Case};
use crate::run::{report_failures, run_cases, with_case_lock, CaseProgress, Locked};
use crate::stages::is_case_lock;
use crate::PipelineError;

/// What a preprocessing run is asked to do (`nnu-preprocess`'s command line).
#[derive(Debug, Clone)]
pub struct PreprocessJob {
    /// The model folder: nnU-Net v1 (`plans.pkl`) or nnunetv2 (`plans.json`, `dataset.json`).
    pub model_dir: PathBuf,
    /// nnunetv2: the configuration of `plans.json` (default: the one the folder's name ends with).
    pub configuration: Option<String>,
    /// nnunetv2: the checkpoint whose mirroring axes decide the mirrors.
    pub checkpoint: String,
    /// nnunetv2: the fold whose checkpoint decides the mirrors (default: the first).
    pub fold: Option<usize>,
    /// The images ([`discover_cases`]).
    pub input: PathBuf,
    /// The output folder for the bins (or `.npy` files).
    pub out_dir: PathBuf,
    /// Write `CASE.npy` and `CASE.json` instead of tile bins (v1 models).
    pub npy: bool,
    /// `all_shape.txt` to update (default: `out_dir/all_shape.txt`).
    pub shape_file: Option<PathBuf>,
    /// Only these cases (empty: every case).
    pub cases: Vec<String>,
    /// Only the unmirrored tile of each window (default: the model's mirrors).
    pub disable_tta: bool,
    /// Sliding-window step as a fraction of the patch size.
    pub step_size: f64,
    /// Rewrite tiles that exist.
    pub overwrite: bool,
    /// How long to wait for another run's lock on `all_shape.txt` before the case fails.
    pub lock_timeout: Duration,
}

impl PreprocessJob {
    /// A job with nnU-Net's defaults: step 0.5, the model's mirrors, every case, `checkpoint_final.pth`.
    pub fn new(
        model_dir: impl Into<PathBuf>,
        input: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        PreprocessJob {
            model_dir: model_dir.into(),
            configuration: None,
            checkpoint: "checkpoint_final.pth".into(),
            fold: None,
            input: input.into(),
            out_dir: out_dir.into(),
            npy: false,
            shape_file: None,
            cases: Vec::new(),
            disable_tta: false,
            step_size: crate::cli::DEFAULT_STEP_SIZE,
            overwrite: false,
            lock_timeout: SHAPE_FILE_LOCK_TIMEOUT,
        }
    }

    /// Runs the job: opens the model, lists the cases, prepares the output folder (removing this
    /// run's cases' temporaries of a killed run), then writes every case, printing a line per case,
    /// the disk budget, the closing summary and the failed cases on standard error. `Ok(true)` when
    /// every case was done (or already done), `Ok(false)` when some failed; `Err` when nothing could be
    /// done (the model, the input, the output folder, the disk as a whole).
    pub fn run(self, progress: &mut dyn CaseProgress) -> Result<bool, PipelineError> {
        let model = BinsModel::open(
            &self.model_dir,
            self.configuration.as_deref(),
            &self.checkpoint,
        )?;
        let mut cases = discover_cases(&self.input)?;
        if !self.cases.is_empty() {
            cases.retain(|c| self.cases.contains(&c.name));
        }
        let out = &self.out_dir;
        crate::prepare_output_dir(out)?;
        let shape_file = self
            .shape_file
            .clone()
            .unwrap_or_else(|| out.join("all_shape.txt"));
        let shape_lock = shape_file
            .file_name()
            .map(|n| format!(".{}.lock", n.to_string_lossy()));
        // Temporaries of a killed run, for this run's cases only (other shards may be writing theirs).
        crate::remove_stale_temps(out, |f| {
            shape_lock.as_deref() == Some(f)
                || cases.iter().any(|c| {
                    is_case_tile(f, &c.name)
                        || is_case_lock(f, &c.name)
                        || f == format!("{}.npy", c.name)
                        || f == format!("{}.json", c.name)
                })
        });
        if self.npy {
            let BinsModel::V1(model) = &model else {
                return Err(PipelineError::Input {
                    path: self.model_dir.clone(),
                    msg: "--npy writes nnU-Net v1's preprocessed volumes; for an nnunetv2 model write \
                          tile bins (without --npy) or predict with nnu-predict"
                        .into(),
                });
            };
            let failures = run_cases(
                &cases,
                |case| case.name.clone(),
                |case| {
                    match with_case_lock(out, &case.name, || preprocess_to_npy(case, model, out))? {
                        Locked::Done(()) => eprintln!("{}: written", case.name),
                        Locked::Busy { pid } => held(&case.name, pid),
                    }
                    Ok(())
                },
            );
            return Ok(report_failures(&failures));
        }
        let mirrors = if self.disable_tta {
            MirrorSet::identity_only()
        } else {
            let folds: Vec<usize> = self.fold.into_iter().collect();
            model.default_mirrors(&folds)?
        };
        // A case whose header alone needs more disk than there is (a huge or lying header) fails here,
        // alone; a case whose header cannot be read fails in its own run below. The others go on.
        let mut budget = DiskBudget::new(out, self.overwrite);
        let mut runnable: Vec<&Case> = Vec::with_capacity(cases.len());
        let mut failures = run_cases(
            &cases,
            |case| case.name.clone(),
            |case| {
                budget.admit_estimate(
                    case,
                    model.estimate_case_bytes(case, self.step_size, mirrors.len()),
                )?;
                runnable.push(*case);
                Ok(())
            },
        );
        eprintln!(
            "{} case(s); tiles need at most {}; {} free",
            cases.len(),
            human_bytes(budget.need),
            budget.free.map_or("unknown".into(), human_bytes)
        );
        budget.check_total(out)?;
        let bins_opts = BinsOptions {
            step_size: self.step_size,
            mirrors,
            overwrite: self.overwrite,
            shape_lock_timeout: self.lock_timeout,
        };
        let t0 = Instant::now();
        let (mut ok, mut skipped) = (0, 0);
        failures.extend(run_cases(
            runnable,
            |case| case.name.clone(),
            |case| {
                let r = with_case_lock(out, &case.name, || {
                    let mut tiles = |d: usize, t: usize| progress.tiles(case, d, t);
                    model.preprocess_to_bins(case, out, &shape_file, &bins_opts, &mut tiles)
                });
                progress.end(case, r.is_ok());
                match &r {
                    Ok(Locked::Busy { pid }) => {
                        skipped += 1;
                        held(&case.name, *pid);
                    }
                    Ok(Locked::Done(r)) if r.skipped => skipped += 1,
                    Ok(Locked::Done(r)) => {
                        ok += 1;
                        eprintln!(
                            "{}: {} tiles, {} bins written",
                            case.name,
                            r.record.num_tiles(),
                            r.written,
                        );
                    }
                    Err(_) => {}
                }
                r.map(|_| ())
            },
        ));
        eprintln!(
            "{}",
            crate::cli::summary_line(t0.elapsed().as_secs_f64(), ok, failures.len(), skipped)
        );
        Ok(report_failures(&failures))
    }
}

/// The line for a case another live run is working on (same output folder): it is left to that run.
fn held(name: &str, pid: u32) {
    eprintln!("{name}: skipped, another run (pid {pid}) is working on it");
}

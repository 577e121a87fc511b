//! The bins path run over the cases of an input. [`PreprocessJob`], as `nnu-preprocess` runs it: every
//! case's tile bins (v1 or nnunetv2), after a disk budget that refuses a case whose tiles alone need more
//! disk than there is; or, for a v1 model, every case's preprocessed volume as `CASE.npy` and
//! `CASE.json`. [`PostprocessJob`], as `nnu-postprocess` runs it: every case's dumps merged into its
//! outputs. A case another live run works on is left to it; a failure is its case's alone.
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
use crate::stages::{is_case_file, PredictOptions};
use crate::PipelineError;
use nnu_bins::{read_all_shape, DumpIndex};

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

/// What a postprocessing run is asked to do (`nnu-postprocess`'s command line): the dumps of the tiles
/// that [`PreprocessJob`] wrote merged into each case's outputs.
#[derive(Debug, Clone)]
pub struct PostprocessJob {
    /// The model folder, as given to the preprocessing.
    pub model_dir: PathBuf,
    /// nnunetv2: the configuration, as given to the preprocessing.
    pub configuration: Option<String>,
    /// nnunetv2: the checkpoint whose mirroring axes decide the mirrors.
    pub checkpoint: String,
    /// nnunetv2: the fold whose checkpoint decides the mirrors (default: the first).
    pub fold: Option<usize>,
    /// The images that were preprocessed ([`discover_cases`]); each line of `shape_file` is matched to
    /// its case by name.
    pub input: PathBuf,
    /// The dump folders (or their parent).
    pub dumps: Vec<PathBuf>,
    /// `all_shape.txt` written by the preprocessing (with the cases' `CASE.json` beside it).
    pub shape_file: PathBuf,
    /// The output folder.
    pub out_dir: PathBuf,
    /// The tiles were written without mirrors.
    pub disable_tta: bool,
    /// Also write the probabilities (v1 `CASE_probabilities.npy`; v2 `CASE.npz` and `CASE.pkl`).
    pub save_probabilities: bool,
    /// Also write `CASE.png` previews.
    pub preview: bool,
}

impl PostprocessJob {
    /// Runs the job: opens the model, reads `all_shape.txt` and indexes the dumps, checks that no output
    /// would replace an input, prepares the output folder, then merges every case of `all_shape.txt`
    /// ([`BinsModel::postprocess_from_dumps`]), printing a line per case, the closing summary and the
    /// failed cases on standard error; for an nnunetv2 model, its `dataset.json` and `plans.json` go beside
    /// the outputs once a case is written. `Ok(true)` when every case was written, `Ok(false)` when some
    /// failed; `Err` when nothing could be done (the model, the input, the dumps, the output folder).
    pub fn run(self) -> Result<bool, PipelineError> {
        let model = BinsModel::open(
            &self.model_dir,
            self.configuration.as_deref(),
            &self.checkpoint,
        )?;
        let cases = discover_cases(&self.input)?;
        let records = read_all_shape(&self.shape_file)?;
        let dumps = DumpIndex::scan(&self.dumps, None)?;
        if let Some((first, second)) = dumps.duplicates().first() {
            eprintln!(
                "warning: {} dump(s) found in two folders, the first is used: {} and {}",
                dumps.duplicates().len(),
                first.display(),
                second.display()
            );
        }
        crate::run::check_outputs_not_inputs(&cases, &self.out_dir, |dir, name| {
            model.output_paths(dir, name)
        })?;
        crate::prepare_output_dir(&self.out_dir)?;
        crate::remove_stale_temps(&self.out_dir, |f| {
            records.iter().any(|r| is_case_file(f, &r.case))
        });
        let opts = PredictOptions {
            mirrors: if self.disable_tta {
                nnu_tiling::MirrorSet::identity_only()
            } else {
                let folds: Vec<usize> = self.fold.into_iter().collect();
                model.default_mirrors(&folds)?
            },
            save_probabilities: self.save_probabilities,
            preview: self.preview,
            overwrite: true,
            max_memory: crate::stages::available_memory(),
            ..PredictOptions::default()
        };
        let t0 = std::time::Instant::now();
        let total = records.len();
        eprintln!("{total} case(s) -> {}", self.out_dir.display());
        let (mut k, mut held) = (0, 0);
        let failures = run_cases(
            &records,
            |record| record.case.clone(),
            |record| {
                // One line per case with the count, rate and ETA: progress in a terminal and in a log alike.
                k += 1;
                let progress = crate::cli::progress_line("done", k, total, "cases", t0.elapsed());
                let case = cases
                    .iter()
                    .find(|c| c.name == record.case)
                    .ok_or_else(|| PipelineError::Input {
                        path: self.shape_file.clone(),
                        msg: format!("listed there, but no image under {}", self.input.display()),
                    })?;
                // A case another live run is writing (same output folder) is left to it.
                let done = with_case_lock(&self.out_dir, &case.name, || {
                    model.postprocess_from_dumps(
                        case,
                        record,
                        &self.shape_file,
                        &dumps,
                        &self.out_dir,
                        &opts,
                    )
                })?;
                match done {
                    Locked::Done(()) => eprintln!(
                        "{}: written to {} ({progress})",
                        case.name,
                        self.out_dir.join(format!("{}.nii.gz", case.name)).display()
                    ),
                    Locked::Busy { pid } => {
                        held += 1;
                        eprintln!(
                            "{}: skipped, another run (pid {pid}) is working on it ({progress})",
                            case.name
                        );
                    }
                }
                Ok(())
            },
        );
        if total > failures.len() + held {
            // nnunetv2 models: dataset.json and plans.json beside the outputs, as nnUNetv2_predict leaves them.
            match model.finish_output(&self.out_dir) {
                Ok(notes) => notes.iter().for_each(|n| eprintln!("warning: {n}")),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(false);
                }
            }
        }
        eprintln!(
            "{}",
            crate::cli::summary_line(
                t0.elapsed().as_secs_f64(),
                total - failures.len() - held,
                failures.len(),
                held
            )
        );
        Ok(report_failures(&failures))
    }
}

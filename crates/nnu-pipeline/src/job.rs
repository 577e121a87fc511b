//! A prediction run over the cases of an input, as `nnu-predict` runs it: the model folder opened (v1
//! or nnunetv2, told apart by what it holds), the cases listed (a fold's validation cases, a shard),
//! the outputs checked not to replace an input, the networks loaded (a cascade's previous stage too),
//! then every case predicted in turn, a failure isolated to its case. (Cargo feature `tract` or
//! `native`.)
//!
//! # Example
//!
//! ```no_run
//! use nnu_pipeline::job::PredictJob;
//! use nnu_pipeline::run::ProgressSink;
//!
//! let job = PredictJob::new("Task003_Liver/nnUNetTrainerV2__nnUNetPlansv2.1", "imagesTs", "out");
//! let mut predictor = job.open()?;
//! eprintln!("{}", predictor.description());
//! let all_done = predictor.run(&mut ProgressSink);
//! # Ok::<(), nnu_pipeline::PipelineError>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use nnu_engine::Backend;
use nnu_tiling::MirrorSet;

use crate::cascade::{describe_v1, describe_v2, v1_prev_source, v2_prev_source, CascadeOptions};
use crate::cases::{discover_cases, Case, Shard};
use crate::model::ModelSpec;
use crate::predict::{predict_case_cascade, CaseReport, V1PrevSource};
use crate::run::{
    check_outputs_not_inputs, load_cpu_backends, report_failures, run_cases, select_fold_cases,
    shard_cases, CaseProgress, CpuBackendOptions,
};
use crate::stages::{is_case_file, output_paths, PredictOptions};
use crate::v2::{is_v2_folder, load_v2_backends, predict_case_v2_cascade, V2Model, V2PrevSource};
use crate::v2_out::V2OutputPaths;
use crate::PipelineError;

/// What a prediction run is asked to do (`nnu-predict`'s command line).
#[derive(Debug, Clone)]
pub struct PredictJob {
    /// The model folder: nnU-Net v1 (`plans.pkl`) or nnunetv2 (`plans.json`, `dataset.json`).
    pub model_dir: PathBuf,
    /// The images: a file, a folder (NIfTI or DICOM series) or a `.txt` list ([`discover_cases`]).
    pub input: PathBuf,
    /// The output folder (created if missing).
    pub out_dir: PathBuf,
    /// v1: one ONNX network instead of each fold's (refused for an nnunetv2 model).
    pub onnx: Option<PathBuf>,
    /// The folds to ensemble (empty: every fold with a network).
    pub folds: Vec<usize>,
    /// nnunetv2: the configuration of `plans.json` (default: the one the folder's name ends with); v1:
    /// checked against what the trainer says the model is.
    pub configuration: Option<String>,
    /// nnunetv2: each fold's checkpoint file.
    pub checkpoint: String,
    /// No test-time mirroring.
    pub disable_tta: bool,
    /// Mirror only along these axes (empty: the model's default, every axis for v1).
    pub mirror_axes: Vec<usize>,
    /// `splits_final.pkl` and the fold whose validation cases are predicted.
    pub splits: Option<(PathBuf, usize)>,
    /// Only this shard of the cases.
    pub shard: Option<Shard>,
    /// How the networks are loaded.
    pub backend: CpuBackendOptions,
    /// A cascade's previous stage (its `folds`, `checkpoint` and `mirrors` are taken from this job).
    pub cascade: CascadeOptions,
    /// The per-case options (its `mirrors` are decided by `disable_tta` and `mirror_axes`).
    pub options: PredictOptions,
}

impl PredictJob {
    /// A job with nnU-Net's defaults: every fold, eight mirrors, step 0.5, `checkpoint_final.pth`, the
    /// automatic CPU backend on every core.
    pub fn new(
        model_dir: impl Into<PathBuf>,
        input: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        PredictJob {
            model_dir: model_dir.into(),
            input: input.into(),
            out_dir: out_dir.into(),
            onnx: None,
            folds: Vec::new(),
            configuration: None,
            checkpoint: "checkpoint_final.pth".into(),
            disable_tta: false,
            mirror_axes: Vec::new(),
            splits: None,
            shard: None,
            backend: CpuBackendOptions::new(crate::run::BackendKind::Auto, threads),
            cascade: CascadeOptions::default(),
            options: PredictOptions::default(),
        }
    }

    /// Opens the model (before the images: a wrong model folder is named first), lists the cases,
    /// checks that no output would replace an input, loads the networks, creates the output folder and
    /// removes the temporaries a killed run left for these cases. Nothing is predicted yet.
    pub fn open(self) -> Result<Predictor, PipelineError> {
        let model_dir = &self.model_dir;
        let v2 = is_v2_folder(model_dir);
        if v2 && self.onnx.is_some() {
            return Err(PipelineError::Input {
                path: model_dir.clone(),
                msg: "--onnx takes one v1 network; for an nnunetv2 model put model.onnx into fold_K/ \
                      (nnu-export-onnx --model) or let the network be built from the checkpoint"
                    .into(),
            });
        }
        let opened = if v2 {
            Opened::V2(V2Model::open(
                model_dir,
                self.configuration.as_deref(),
                &self.checkpoint,
            )?)
        } else {
            Opened::V1(open_v1(model_dir, self.configuration.as_deref())?)
        };
        let mut cases = discover_cases(&self.input)?;
        if let Some((splits, fold)) = &self.splits {
            let (kept, missing) = select_fold_cases(cases, splits, *fold)?;
            if !missing.is_empty() {
                eprintln!(
                    "warning: {} validation case(s) of fold {fold} have no image: {}",
                    missing.len(),
                    missing.join(", ")
                );
            }
            cases = kept;
        }
        let cases = shard_cases(cases, self.shard);
        let mut opts = self.options.clone();
        opts.mirrors = if self.disable_tta {
            MirrorSet::identity_only()
        } else if !self.mirror_axes.is_empty() {
            MirrorSet::from_axes(&self.mirror_axes)?
        } else {
            MirrorSet::all()
        };
        let out_dir = self.out_dir.clone();
        // Before anything is loaded or written: an output must never replace an input.
        check_outputs_not_inputs(&cases, &out_dir, |dir, name| {
            let (seg, prob, png) = output_paths(dir, name);
            if v2 {
                V2OutputPaths::new(dir, name).all()
            } else {
                vec![seg, prob, png]
            }
        })?;
        let mut cascade = CascadeOptions {
            folds: self.folds.clone(),
            checkpoint: self.checkpoint.clone(),
            mirrors: None,
            ..self.cascade.clone()
        };
        let (description, stage) = match opened {
            Opened::V2(model) => {
                let loaded = load_v2_backends(&model, &self.folds, &self.backend)?;
                let tta_default = !self.disable_tta && self.mirror_axes.is_empty();
                if tta_default {
                    opts.mirrors = loaded.default_mirrors()?;
                }
                cascade.mirrors = (!tta_default).then_some(opts.mirrors);
                let prev = v2_prev_source(&model, &cascade, &out_dir, &self.backend)?;
                // the preview legend names the labels as dataset.json does
                opts.preview_options.label_names = model.label_names();
                let description = format!(
                    "nnunetv2 model {} ({}, {} fold(s), {} backend, patch {:?}, {} output(s), mirrors {}){}",
                    model_dir.display(),
                    model.configuration,
                    loaded.backends.len(),
                    loaded.backends.first().map_or("no", |b| b.name()),
                    model.patch,
                    model.heads,
                    opts.mirrors,
                    describe_v2(prev.as_ref())
                );
                let backends = loaded.backends;
                (
                    description,
                    Stage::V2 {
                        model,
                        backends,
                        prev,
                    },
                )
            }
            Opened::V1(model) => {
                let backends =
                    load_cpu_backends(&model, &self.folds, self.onnx.as_deref(), &self.backend)?;
                let prev = v1_prev_source(&model, &cascade, &out_dir, &self.backend)?;
                let description = format!(
                    "model {} ({} fold(s), {} backend, patch {:?}, {} classes){}",
                    model_dir.display(),
                    backends.len(),
                    backends.first().map_or("no", |b| b.name()),
                    model.patch,
                    model.num_classes,
                    describe_v1(prev.as_ref())
                );
                (
                    description,
                    Stage::V1 {
                        model,
                        backends,
                        prev,
                    },
                )
            }
        };
        crate::prepare_output_dir(&out_dir)?;
        // Temporaries of a killed run, for this run's cases only (other shards may be writing theirs).
        crate::remove_stale_temps(&out_dir, |f| cases.iter().any(|c| is_case_file(f, &c.name)));
        Ok(Predictor {
            description: format!(
                "{description}; {} case(s) -> {}",
                cases.len(),
                out_dir.display()
            ),
            cases,
            out_dir,
            opts,
            stage,
        })
    }
}

/// A model folder, opened before the images are listed.
enum Opened {
    /// nnU-Net v1 (plans.pkl).
    V1(ModelSpec),
    /// nnunetv2 (plans.json, dataset.json).
    V2(V2Model),
}

/// Opens a v1 model folder, checking `configuration` (when given) against what its trainer says the
/// model is: a v1 folder is one configuration, decided by its trainer (class and stage).
fn open_v1(model_dir: &Path, configuration: Option<&str>) -> Result<ModelSpec, PipelineError> {
    let model = ModelSpec::open(model_dir)?;
    let is = if model.cascade_classes.is_some() {
        "3d_cascade_fullres"
    } else if model.stage + 1 < model.folder.plans.stages.len() {
        "3d_lowres"
    } else {
        "3d_fullres"
    };
    if let Some(c) = configuration.filter(|&c| c != is) {
        return Err(PipelineError::Input {
            path: model_dir.to_path_buf(),
            msg: format!(
                "-c {c}: this nnU-Net v1 model folder is a {is} model (its trainer decides)"
            ),
        });
    }
    Ok(model)
}

/// The loaded model of a run, with its networks and previous stage.
enum Stage {
    V1 {
        model: ModelSpec,
        backends: Vec<Box<dyn Backend>>,
        prev: Option<V1PrevSource>,
    },
    V2 {
        model: V2Model,
        backends: Vec<Box<dyn Backend>>,
        prev: Option<V2PrevSource>,
    },
}

/// An opened [`PredictJob`]: the model with its networks and the cases to predict.
pub struct Predictor {
    description: String,
    cases: Vec<Case>,
    out_dir: PathBuf,
    opts: PredictOptions,
    stage: Stage,
}

impl Predictor {
    /// One line on the model (its folds, backend, patch, previous stage), the number of cases and the
    /// output folder.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The cases this run predicts, in order.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    /// The output folder.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Predicts one case (skipped when its outputs are complete, unless overwriting) and writes its
    /// outputs.
    pub fn predict(
        &mut self,
        case: &Case,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<CaseReport, PipelineError> {
        match &mut self.stage {
            Stage::V1 {
                model,
                backends,
                prev,
            } => predict_case_cascade(
                case,
                model,
                backends,
                prev.as_mut(),
                &self.out_dir,
                &self.opts,
                progress,
            ),
            Stage::V2 {
                model,
                backends,
                prev,
            } => predict_case_v2_cascade(
                case,
                model,
                backends,
                prev.as_mut(),
                &self.out_dir,
                &self.opts,
                progress,
            ),
        }
    }

    /// Predicts every case in turn ([`run_cases`]: a failure is that case's `error:` line, and the run
    /// goes on), printing a line per case predicted or left to another run, the closing summary line and
    /// the failed cases on standard error. True when every case succeeded.
    pub fn run(&mut self, progress: &mut dyn CaseProgress) -> bool {
        let t0 = Instant::now();
        let (mut skipped, mut model_json_copied) = (0, false);
        let cases = std::mem::take(&mut self.cases);
        let failures = run_cases(
            &cases,
            |case| case.name.clone(),
            |case| {
                let mut r =
                    self.predict(case, &mut |done, total| progress.tiles(case, done, total));
                // As nnUNetv2_predict, the model's dataset.json and plans.json go beside the
                // predictions (nnUNetv2_ensemble and nnUNetv2_apply_postprocessing read them there);
                // copied once a case is done, so a run whose cases all fail leaves nothing.
                if let (Stage::V2 { model, .. }, false, Ok(None)) = (
                    &self.stage,
                    model_json_copied,
                    r.as_ref().map(|r| r.held_by),
                ) {
                    match crate::v2_out::copy_model_json(&model.folder.dir, &self.out_dir) {
                        Ok(notes) => {
                            model_json_copied = true;
                            for note in notes {
                                eprintln!("warning: {note}");
                            }
                        }
                        Err(e) => r = Err(e),
                    }
                }
                progress.end(case, r.is_ok());
                if let Ok(r) = &r {
                    if r.skipped {
                        skipped += 1;
                    }
                    if let Some(line) = case_line(r) {
                        eprintln!("{line}");
                    }
                }
                r
            },
        );
        self.cases = cases;
        eprintln!(
            "{}",
            crate::cli::summary_line(
                t0.elapsed().as_secs_f64(),
                self.cases.len() - failures.len() - skipped,
                failures.len(),
                skipped
            )
        );
        report_failures(&failures)
    }
}

/// The line a run prints for a case: its tiles, passes, time and output; that another run works on it;
/// nothing for a case whose outputs were there.
fn case_line(r: &CaseReport) -> Option<String> {
    match r.held_by {
        Some(pid) => Some(format!(
            "{}: skipped, another run (pid {pid}) is working on it",
            r.name
        )),
        None if r.skipped => None,
        None => Some(format!(
            "{}: {} tiles x {} passes in {:.1} s -> {}",
            r.name,
            r.tiles,
            r.passes / r.tiles.max(1),
            r.seconds,
            r.output.display()
        )),
    }
}

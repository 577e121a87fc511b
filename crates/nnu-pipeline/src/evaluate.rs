//! Scoring a folder of predicted segmentations against references (`nnu-evaluate`): nnU-Net 1.7.1's
//! `evaluate_folder` / `aggregate_scores` around `nnu-metrics`' building blocks. Cases are matched by
//! file name (optionally the validation cases of one fold, [`fold_validation_ids`]), evaluated in
//! parallel, and `summary.json` is written only when every case could be evaluated: a summary of the
//! readable cases only would misstate the score.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use nnu_pipeline::evaluate::{evaluate_folder, EvaluateOptions};
//!
//! let opts = EvaluateOptions::new(Path::new("labelsTs"), Path::new("predictions"));
//! let evaluation = evaluate_folder(&opts, &|done, total| eprintln!("{done}/{total}"))?;
//! if evaluation.failures.is_empty() {
//!     print!("{}", evaluation.table);
//! }
//! # Ok::<(), nnu_pipeline::PipelineError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nnu_metrics::evaluate::{
    case_entry, check_geometry, check_placement, evaluate_case, match_cases, mean_table,
    union_labels, CaseEvaluation,
};
use nnu_metrics::{
    mean_scores, write_summary, SummaryMeta, SurfaceOptions, ASSD_KEY, HD95_KEY, NSD_KEY,
};
use rayon::prelude::*;

use crate::run::fold_validation_ids;
use crate::PipelineError;

/// What to evaluate and how; [`EvaluateOptions::new`] gives `nnu-evaluate`'s defaults.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// Folder with the reference segmentations.
    pub reference: PathBuf,
    /// Folder with the predicted segmentations (file names as in `reference`).
    pub pred: PathBuf,
    /// Labels to evaluate; `None`: every value found in any reference or prediction.
    pub labels: Option<Vec<i64>>,
    /// Where to write summary.json; `None`: `pred/summary.json` (as nnU-Net's evaluate_folder).
    pub output: Option<PathBuf>,
    /// Also compute HD95, ASSD and normalised surface Dice (labels other than 0). Default off.
    pub surface: bool,
    /// Surface voxel connectivity and NSD tolerance (default 1, 1 mm).
    pub surface_options: SurfaceOptions,
    /// Largest accepted spacing difference, mm per axis (default 1e-3).
    pub spacing_tolerance: f64,
    /// Largest accepted origin difference, mm per axis (default 1e-2).
    pub origin_tolerance: f64,
    /// Largest accepted difference of direction cosines (default 1e-4).
    pub direction_tolerance: f64,
    /// An origin or direction mismatch is a warning and the case is scored anyway (default: the case
    /// is an error).
    pub allow_geometry_mismatch: bool,
    /// `splits_final.pkl` (or `.json`) and a fold: evaluate exactly that fold's validation cases.
    pub fold: Option<(PathBuf, usize)>,
    /// Evaluate the matched cases even when some are missing on one side (default: an error).
    pub allow_missing: bool,
    /// Worker threads of the evaluation (`None`: rayon's global pool, all cores by default).
    pub threads: Option<usize>,
    /// dataset.json whose label names head the table; `None`: `reference/../dataset.json` when there is
    /// one (unreadable: a warning; an explicit file that cannot be read is an error).
    pub dataset_json: Option<PathBuf>,
    /// summary.json `name` (default empty).
    pub name: String,
    /// summary.json `description`; `None`: empty, or the surface-metric settings when `surface` is on.
    pub description: Option<String>,
    /// summary.json `author` (default `Fabian`, as nnU-Net writes it).
    pub author: String,
    /// summary.json `task` (default empty).
    pub task: String,
}

impl EvaluateOptions {
    /// `nnu-evaluate`'s defaults for `reference` and `pred`.
    pub fn new(reference: &Path, pred: &Path) -> Self {
        EvaluateOptions {
            reference: reference.to_path_buf(),
            pred: pred.to_path_buf(),
            labels: None,
            output: None,
            surface: false,
            surface_options: SurfaceOptions::default(),
            spacing_tolerance: 1e-3,
            origin_tolerance: 1e-2,
            direction_tolerance: 1e-4,
            allow_geometry_mismatch: false,
            fold: None,
            allow_missing: false,
            threads: None,
            dataset_json: None,
            name: String::new(),
            description: None,
            author: "Fabian".into(),
            task: String::new(),
        }
    }
}

/// What [`evaluate_folder`] did.
#[derive(Debug)]
pub struct Evaluation {
    /// The cases that could not be evaluated, in case order, each naming its file; when there are
    /// any, nothing was written and [`Evaluation::closing_line`] says so.
    pub failures: Vec<String>,
    /// The cases evaluated (matched pairs).
    pub cases: usize,
    /// The summary.json written (when no case failed).
    pub output: PathBuf,
    /// The per-label means as printed by `nnu-evaluate` (empty when some case failed).
    pub table: String,
    pred: PathBuf,
}

impl Evaluation {
    /// `PRED_DIR: 2 of 5 case(s) could not be evaluated (listed above); summary.json not written`, or
    /// `None` when every case was evaluated.
    pub fn closing_line(&self) -> Option<String> {
        (!self.failures.is_empty()).then(|| {
            format!(
                "{}: {} of {} case(s) could not be evaluated (listed above); summary.json not written",
                self.pred.display(),
                self.failures.len(),
                self.cases
            )
        })
    }
}

/// Evaluates every matched case of `opts` in parallel (`progress(done, total)` is called after each
/// case) and
/// writes nnU-Net's summary.json when all of them could be evaluated. Cases missing on one side are
/// listed on standard error (`missing prediction: FILE`); so are geometry warnings. An unusable
/// folder, splits file, fold, label file or output, or missing cases without
/// [`EvaluateOptions::allow_missing`], is an error and nothing is written; cases that cannot be read or
/// do not fit are returned in [`Evaluation::failures`].
pub fn evaluate_folder(
    opts: &EvaluateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Evaluation, PipelineError> {
    match opts.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| nnu_engine::EngineError::ThreadPool {
                threads: n,
                message: e.to_string(),
            })?
            .install(|| evaluate_in_pool(opts, progress)),
        None => evaluate_in_pool(opts, progress),
    }
}

fn evaluate_in_pool(
    opts: &EvaluateOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Evaluation, PipelineError> {
    let names = label_names(opts)?;
    let only = match &opts.fold {
        Some((splits, fold)) => Some(fold_validation_ids(splits, *fold)?),
        None => None,
    };
    let list = match_cases(&opts.reference, &opts.pred, only.as_deref())?;
    for name in &list.missing_predictions {
        eprintln!("missing prediction: {}", opts.pred.join(name).display());
    }
    for name in &list.missing_references {
        eprintln!("missing reference: {}", opts.reference.join(name).display());
    }
    let missing = list.missing_predictions.len() + list.missing_references.len();
    let input_error = |msg: String| PipelineError::Input {
        path: opts.pred.clone(),
        msg,
    };
    if missing > 0 && !opts.allow_missing {
        return Err(input_error(format!(
            "{missing} case(s) missing on one side (listed above); use --allow-missing to evaluate the rest"
        )));
    }
    if list.pairs.is_empty() {
        return Err(input_error("no cases to evaluate".into()));
    }
    let output = opts
        .output
        .clone()
        .unwrap_or_else(|| opts.pred.join("summary.json"));
    let done = AtomicUsize::new(0);
    let results: Vec<Result<CaseEvaluation, String>> = list
        .pairs
        .par_iter()
        .map(|pair| {
            let r = evaluate_pair(&pair.reference, &pair.test, opts);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, list.pairs.len());
            r
        })
        .collect();
    let mut evaluation = Evaluation {
        failures: results
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect(),
        cases: list.pairs.len(),
        output,
        table: String::new(),
        pred: opts.pred.clone(),
    };
    if !evaluation.failures.is_empty() {
        return Ok(evaluation);
    }
    let evaluations: Vec<CaseEvaluation> = results.into_iter().flatten().collect();
    let labels = opts
        .labels
        .clone()
        .unwrap_or_else(|| union_labels(&evaluations));
    let cases: Vec<_> = list
        .pairs
        .iter()
        .zip(&evaluations)
        .map(|(pair, ev)| {
            let (t, r) = (
                pair.test.display().to_string(),
                pair.reference.display().to_string(),
            );
            case_entry(ev, &labels, opts.surface, Some(&t), Some(&r))
        })
        .collect();
    let description = opts.description.clone().unwrap_or_else(|| {
        if opts.surface {
            format!(
                "surface metrics: MedPy 0.5.2 conventions, connectivity {}, NSD tolerance {} mm",
                opts.surface_options.connectivity, opts.surface_options.nsd_tolerance_mm
            )
        } else {
            String::new()
        }
    });
    let meta = SummaryMeta {
        name: opts.name.clone(),
        description,
        author: opts.author.clone(),
        task: opts.task.clone(),
        ..SummaryMeta::default()
    };
    write_summary(&evaluation.output, &cases, &meta)?;
    let columns = [
        ("Dice", "Dice"),
        ("Jaccard", "Jaccard"),
        ("Precision", "Precision"),
        ("Recall", "Recall"),
        (HD95_KEY, "HD95 mm"),
        (ASSD_KEY, "ASSD mm"),
        (NSD_KEY, "NSD"),
    ];
    evaluation.table = mean_table(&mean_scores(&cases), &columns, &names);
    Ok(evaluation)
}

/// The label names of [`EvaluateOptions::dataset_json`], or of `reference/../dataset.json` when that
/// exists (a default that cannot be read is a warning, an explicit file an error).
fn label_names(opts: &EvaluateOptions) -> Result<BTreeMap<i64, String>, PipelineError> {
    if let Some(path) = &opts.dataset_json {
        return Ok(nnu_artifacts::v2::label_names(path)?);
    }
    let beside = opts
        .reference
        .canonicalize()
        .ok()
        .and_then(|r| r.parent().map(|p| p.join("dataset.json")))
        .filter(|p| p.is_file());
    Ok(match beside {
        Some(path) => nnu_artifacts::v2::label_names(&path).unwrap_or_else(|e| {
            eprintln!("warning: label names not shown: {e}");
            Default::default()
        }),
        None => Default::default(),
    })
}

/// One case: both files read, their grids and placement checked, then scored; the error names the
/// file.
fn evaluate_pair(
    reference: &Path,
    test: &Path,
    opts: &EvaluateOptions,
) -> Result<CaseEvaluation, String> {
    let r = nnu_volume::read_labels(reference).map_err(|e| e.to_string())?;
    let t = nnu_volume::read_labels(test).map_err(|e| e.to_string())?;
    let at_test = |e: nnu_metrics::MetricsError| format!("{}: {e}", test.display());
    check_geometry(
        r.shape_zyx(),
        t.shape_zyx(),
        r.geometry.spacing,
        t.geometry.spacing,
        opts.spacing_tolerance,
    )
    .map_err(at_test)?;
    if let Err(e) = check_placement(
        r.geometry.origin,
        t.geometry.origin,
        r.geometry.direction,
        t.geometry.direction,
        opts.origin_tolerance,
        opts.direction_tolerance,
    ) {
        let msg = format!(
            "{}: {e} (reference: {})",
            test.display(),
            reference.display()
        );
        if !opts.allow_geometry_mismatch {
            return Err(msg + "; --allow-geometry-mismatch scores it anyway");
        }
        eprintln!("warning: {msg}");
    }
    // nnU-Net's NiftiEvaluator passes the prediction's spacing, reversed to (z, y, x).
    let surface = opts
        .surface
        .then(|| (t.geometry.spacing_zyx(), &opts.surface_options));
    evaluate_case(
        r.data.view(),
        t.data.view(),
        opts.labels.as_deref(),
        surface,
    )
    .map_err(at_test)
}

//! Batch bookkeeping shared by the tools: selecting cases (fold filter, shard), loading one backend per
//! fold, running every case while isolating failures ([`run_cases`]), and the demo's Dice check.

use std::path::{Path, PathBuf};

use nnu_engine::{Backend, TractBackend, TractOptions};

use crate::cases::{Case, Shard};
use crate::model::ModelSpec;
use crate::PipelineError;

/// Sizes rayon's global thread pool to `threads` (`None`: rayon's default, all cores), for the tools'
/// `--threads`. Does nothing when the global pool already exists.
pub fn init_thread_pool(threads: Option<usize>) {
    if let Some(t) = threads {
        // An error only means the pool was built already; the work then runs on that pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
}

/// Keeps the cases whose names are in the validation set of `fold` of `splits_final.pkl` (the recipe's
/// `create_testset.py`). Returns the kept cases and the validation ids that have no image.
pub fn select_fold_cases(
    cases: Vec<Case>,
    splits_path: &Path,
    fold: usize,
) -> Result<(Vec<Case>, Vec<String>), PipelineError> {
    let splits = nnu_artifacts::Splits::load(splits_path)?;
    let f = splits.folds.get(fold).ok_or_else(|| PipelineError::Input {
        path: splits_path.to_path_buf(),
        msg: format!("fold {fold} does not exist ({} folds)", splits.folds.len()),
    })?;
    let missing: Vec<String> = f
        .val
        .iter()
        .filter(|id| !cases.iter().any(|c| &c.name == *id))
        .cloned()
        .collect();
    let kept = cases
        .into_iter()
        .filter(|c| f.val.contains(&c.name))
        .collect();
    Ok((kept, missing))
}

/// Applies an optional shard to the sorted case list.
pub fn shard_cases(cases: Vec<Case>, shard: Option<Shard>) -> Vec<Case> {
    match shard {
        Some(s) => s.select(cases),
        None => cases,
    }
}

/// Loads one tract backend per fold: `onnx` when given (a single model), else each fold's `model.onnx`.
pub fn load_tract_backends(
    model: &ModelSpec,
    folds: &[usize],
    onnx: Option<&Path>,
    threads: usize,
) -> Result<Vec<Box<dyn Backend>>, PipelineError> {
    let paths: Vec<PathBuf> = match onnx {
        Some(p) => vec![p.to_path_buf()],
        None => model
            .fold_names(folds)?
            .iter()
            .map(|f| model.onnx_for_fold(f))
            .collect::<Result<_, _>>()?,
    };
    let opts = TractOptions::default()
        .threads(threads)
        .patch_size(model.patch)
        .input_channels(model.num_modalities);
    paths
        .iter()
        .map(|p| {
            let backend = TractBackend::load(p, &opts)?;
            if backend.num_classes() != model.num_classes {
                return Err(PipelineError::Input {
                    path: p.clone(),
                    msg: format!(
                        "the network has {} output classes, {} has {} (a model of another task?)",
                        backend.num_classes(),
                        model.folder.plans_path.display(),
                        model.num_classes
                    ),
                });
            }
            Ok(Box::new(backend) as Box<dyn Backend>)
        })
        .collect()
}

/// Refuses a run in which an output file would be one of its input files (`-o` set to the images'
/// folder with MSD naming, where `CASE.nii.gz` is both): `outputs(out_dir, name)` lists the files a case
/// writes. Paths are compared after resolving links; nothing is written. Call it before any case runs.
pub fn check_outputs_not_inputs(
    cases: &[Case],
    out_dir: &Path,
    outputs: impl Fn(&Path, &str) -> Vec<PathBuf>,
) -> Result<(), PipelineError> {
    let resolve = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let out = resolve(out_dir);
    let inputs: Vec<(PathBuf, &Path, &str)> = cases
        .iter()
        .flat_map(|c| c.files.iter().map(move |f| (f, c.name.as_str())))
        .map(|(f, name)| (resolve(f), f.as_path(), name))
        .collect();
    for case in cases {
        for o in outputs(&out, &case.name) {
            let o = resolve(&o);
            if let Some((_, given, owner)) = inputs.iter().find(|(i, _, _)| *i == o) {
                return Err(PipelineError::Input {
                    path: given.to_path_buf(),
                    msg: format!(
                        "the output of case '{}' would overwrite this input (of case '{owner}'); \
                         choose an output folder (-o) other than the images' folder",
                        case.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A failed case in a batch.
#[derive(Debug)]
pub struct Failure {
    /// The case name.
    pub name: String,
    /// What went wrong (file and problem).
    pub error: PipelineError,
}

/// Runs `work` on each item of a batch in order, isolating failures: a case that fails is reported on
/// standard error as `error: NAME: FILE: what is wrong` and listed, and the batch goes on with the next.
/// `name` gives an item's case name. Returns the failures in batch order (empty when every case succeeded);
/// [`report_failures`] prints their closing line. What a successful case prints is up to `work`.
pub fn run_cases<I, T>(
    items: impl IntoIterator<Item = I>,
    name: impl Fn(&I) -> String,
    mut work: impl FnMut(&I) -> Result<T, PipelineError>,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for item in items {
        if let Err(error) = work(&item) {
            let name = name(&item);
            eprintln!("error: {name}: {error}");
            failures.push(Failure { name, error });
        }
    }
    failures
}

/// Prints the closing `failed cases: a, b` line of a batch on standard error (nothing when none failed)
/// and returns true when every case succeeded.
pub fn report_failures(failures: &[Failure]) -> bool {
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|f| f.name.as_str()).collect();
        eprintln!("failed cases: {}", names.join(", "));
    }
    failures.is_empty()
}

/// Dice of each foreground label (1..=`num_labels`) between a predicted and a reference label file; NaN
/// where both are empty (nnU-Net's rule).
pub fn dice_per_label(
    pred: &Path,
    reference: &Path,
    num_labels: u8,
) -> Result<Vec<f64>, PipelineError> {
    let p = nnu_volume::read_labels(pred)?;
    let r = nnu_volume::read_labels(reference)?;
    let labels: Vec<i64> = (1..=num_labels as i64).collect();
    let counts =
        nnu_metrics::confusion_counts(r.data.view(), p.data.view(), &labels).map_err(|e| {
            PipelineError::Input {
                path: pred.to_path_buf(),
                msg: e.to_string(),
            }
        })?;
    Ok(counts.iter().map(nnu_metrics::dice).collect())
}

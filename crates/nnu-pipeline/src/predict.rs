//! The streaming prediction of one case: read, preprocess, tile, infer, merge, export; all in memory, no
//! scratch files. Reproduces nnU-Net 1.7.1 `predict_cases` for 3d_fullres with `do_tta` and `step_size`.
//! The stages themselves are in [`crate::stages`]; this module composes them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nnu_engine::Backend;

use crate::cases::Case;
use crate::model::ModelSpec;
use crate::stages::{
    check_memory, naming_image, output_paths, outputs_complete, predict_folds, prepare_case,
    write_outputs, PredictOptions, PreparedCase,
};
use crate::PipelineError;

/// What happened to one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case name.
    pub name: String,
    /// The segmentation file.
    pub output: PathBuf,
    /// True when the output existed and the case was skipped.
    pub skipped: bool,
    /// The process id of another live run that holds this case's lock (the case was skipped).
    pub held_by: Option<u32>,
    /// Tiles of the sliding window (per fold).
    pub tiles: usize,
    /// Network passes run (tiles x mirrors x folds).
    pub passes: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Shape (z, y, x) of the preprocessed volume.
    pub preprocessed_shape: [usize; 3],
}

/// Predicts one case with one backend per fold (their probabilities are averaged, as nnU-Net ensembles
/// folds) and writes `NAME.nii.gz` (u8 labels in the input's geometry) to `out_dir`, plus the optional
/// probabilities and preview. Skips the case when its segmentation exists, unless `opts.overwrite`.
pub fn predict_case(
    case: &Case,
    model: &ModelSpec,
    backends: &mut [Box<dyn Backend>],
    out_dir: &Path,
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CaseReport, PipelineError> {
    let t0 = Instant::now();
    let mut report = CaseReport::new(&case.name, out_dir);
    let (seg_path, prob_path, png_path) = output_paths(out_dir, &case.name);
    let complete = || outputs_complete(&seg_path, &prob_path, &png_path, opts);
    let Some(_lock) = claim_case(case, out_dir, opts, &complete, &mut report)? else {
        return Ok(report);
    };
    if backends.is_empty() {
        return Err(PipelineError::Input {
            path: model.folder.dir.clone(),
            msg: "no fold to predict with".into(),
        });
    }
    check_memory(case, model, opts)?;
    let PreparedCase {
        data,
        props,
        geometry,
        preview_image,
    } = prepare_case(case, model, opts.preview)?;
    report.preprocessed_shape = [data.shape()[1], data.shape()[2], data.shape()[3]];

    // A buffer that cannot be allocated is this case's error naming its image (not an abort).
    let oom = naming_image(case.first_file()?);
    let (probs, tiles) =
        predict_folds(&data, backends, model.patch, opts, progress).map_err(&oom)?;
    report.tiles = tiles;
    report.passes = tiles * opts.mirrors.len() * backends.len();
    drop(data);
    write_outputs(
        &probs,
        &props,
        model,
        &geometry,
        preview_image.as_ref().map(|a| a.view()),
        out_dir,
        &case.name,
        opts,
    )
    .map_err(&oom)?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

impl CaseReport {
    /// The report of a case not yet run, its output at [`output_paths`] in `out_dir`.
    pub fn new(name: &str, out_dir: &Path) -> Self {
        CaseReport {
            name: name.to_owned(),
            output: output_paths(out_dir, name).0,
            skipped: false,
            held_by: None,
            tiles: 0,
            passes: 0,
            seconds: 0.0,
            preprocessed_shape: [0; 3],
        }
    }
}

/// Decides whether this run works on `case`: `None` (and `report` marked skipped) when its outputs are
/// complete (`complete()`) and `opts.overwrite` is off, or when another live run holds its lock (`report.held_by`);
/// else the case's lock, held until dropped.
pub fn claim_case(
    case: &Case,
    out_dir: &Path,
    opts: &PredictOptions,
    complete: &dyn Fn() -> bool,
    report: &mut CaseReport,
) -> Result<Option<nnu_fsio::CaseLock>, PipelineError> {
    if !opts.overwrite && complete() {
        report.skipped = true;
        return Ok(None);
    }
    // Another run on the same output folder may be working on this case: leave it to that run.
    std::fs::create_dir_all(out_dir).map_err(|e| PipelineError::io(out_dir, e))?;
    let lock = match nnu_fsio::CaseLock::acquire(out_dir, &case.name)? {
        nnu_fsio::Acquired::Held(lock) => lock,
        nnu_fsio::Acquired::Busy(owner) => {
            report.skipped = true;
            report.held_by = Some(owner.pid);
            return Ok(None);
        }
    };
    // That run may have finished it while we waited for the lock.
    if !opts.overwrite && complete() {
        report.skipped = true;
        return Ok(None);
    }
    Ok(Some(lock))
}

//! The streaming prediction of one case: read, preprocess, tile, infer, merge, export; all in memory, no
//! scratch files. Reproduces nnU-Net 1.7.1 `predict_cases` for 3d_fullres with `do_tta` and `step_size`.
//! The stages themselves are in [`crate::stages`]; this module composes them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nnu_engine::Backend;

use crate::cases::Case;
use crate::model::ModelSpec;
use crate::stages::{
    naming_image, output_paths, outputs_complete, predict_folds, prepare_case, write_outputs,
    PredictOptions, PreparedCase,
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
    predict_case_cascade(case, model, backends, None, out_dir, opts, progress)
}

/// An nnU-Net v1 model with its networks loaded (the previous stage of a cascade).
pub struct V1Stage {
    /// The model folder (a `3d_lowres` one for a cascade's previous stage).
    pub model: ModelSpec,
    /// One backend per fold.
    pub backends: Vec<Box<dyn Backend>>,
}

/// Where an nnU-Net v1 cascade stage gets the previous stage's segmentation of each case: a folder of
/// `CASE.nii.gz` files (`predict_simple.py --lowres_segmentations`), or the previous stage predicted in
/// memory before each case, as `predict_simple.py` does without `--lowres_segmentations`
/// ([`crate::cascade::v1_prev_source`] resolves it from the tool's flags).
pub type V1PrevSource = crate::cascade::PrevSource<V1Stage>;

/// [`predict_case`] for any v1 model, a cascade trainer's included: `prev` says where the previous
/// stage's segmentation of each case comes from (required when `model.cascade_classes` is set, ignored
/// otherwise); it is stacked onto the preprocessed images as nnU-Net 1.7.1 does
/// ([`nnu_preprocessing::append_prev_stage_v1`], the uncropped segmentation resized whole).
pub fn predict_case_cascade(
    case: &Case,
    model: &ModelSpec,
    backends: &mut [Box<dyn Backend>],
    prev: Option<&mut V1PrevSource>,
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
    crate::stages::refuse_over_memory(case, opts, || {
        crate::cascade::estimate_peak_memory_v1(case, model, prev.as_deref(), opts)
    })?;
    let PreparedCase {
        data,
        props,
        geometry,
        preview_image,
    } = prepare_case(case, model, opts.preview)?;
    report.preprocessed_shape = [data.shape()[1], data.shape()[2], data.shape()[3]];
    let data = match (&model.cascade_classes, prev) {
        (None, _) => data,
        (Some(_), None) => {
            return Err(PipelineError::Input {
                path: model.folder.dir.clone(),
                msg: "a cascade trainer's model (3d_cascade_fullres): it needs the 3d_lowres segmentation \
                      of each case (--prev-stage DIR, or --lowres-model DIR to predict it first)"
                    .into(),
            })
        }
        (Some(classes), Some(source)) => {
            let seg = prev_stage_seg_v1(source, case, props.original_size_of_raw_data, opts, progress)?;
            let labels = seg.mapv(|v| v as i32);
            drop(seg);
            nnu_preprocessing::append_prev_stage_v1(
                data,
                labels.view(),
                model.params.transpose_forward,
                classes,
            )
            .map_err(|e| PipelineError::Input {
                path: case.first_file().map_or_else(|_| PathBuf::new(), Path::to_path_buf),
                msg: e.to_string(),
            })?
        }
    };

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

/// The previous stage's segmentation of `case` (label values as f32, numpy order of the image, whose
/// shape is `image_shape`): read from the folder (nnU-Net asserts the shapes match) or predicted in
/// memory with the previous stage's model, exported and postprocessed as `predict_cases` writes it.
fn prev_stage_seg_v1(
    source: &mut V1PrevSource,
    case: &Case,
    image_shape: [usize; 3],
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ndarray::Array3<f32>, PipelineError> {
    let first = case.first_file()?;
    match source {
        V1PrevSource::Folder(dir) => {
            let path = crate::cascade::prev_stage_file(dir, case, ".nii.gz", "3d_lowres")?;
            crate::cascade::read_prev_stage(&path, first, image_shape)
        }
        V1PrevSource::Predict { stage, keep } => {
            let PreparedCase {
                data,
                props,
                geometry,
                ..
            } = prepare_case(case, &stage.model, false)?;
            let oom = naming_image(first);
            let (probs, _) = predict_folds(
                &data,
                &mut stage.backends,
                stage.model.patch,
                opts,
                progress,
            )
            .map_err(&oom)?;
            drop(data);
            let mut seg = nnu_preprocessing::export_segmentation(
                probs.view(),
                &props,
                &stage.model.params,
                &nnu_preprocessing::ExportOptions::default(),
            )
            .map_err(PipelineError::from)
            .map_err(&oom)?;
            if opts.postprocess {
                if let Some(pp) = &stage.model.postprocessing {
                    let vpv: f64 = geometry.spacing.iter().product();
                    nnu_preprocessing::export::remove_all_but_largest_component(&mut seg, pp, vpv)?;
                }
            }
            if let Some(dir) = keep {
                crate::cascade::keep_prev_stage(
                    dir,
                    &case.name,
                    &seg,
                    &geometry,
                    opts.compression_level,
                )?;
            }
            Ok(seg.mapv(f32::from))
        }
    }
}

//! The file path to accelerators for nnunetv2 models: a case preprocessed as nnunetv2 does it into the
//! same tile bins and `all_shape.txt` line as a v1 case ([`crate::bins`]), and the dumps of the model's
//! network merged back as nnunetv2 merges its tiles (logits averaged over mirrors, its Gaussian, no
//! softmax before the merge), then exported as `nnu-predict` exports a v2 case. The network the device
//! runs is the fold's `model.onnx` written by `nnu-export-onnx` (3-D, or for a `2d` configuration a true
//! 2-D network fed one `(c, 1, y, x)` tile per slice position).
//!
//! The case's properties (nnunetv2's `properties`: crop box, shapes, spacing) are kept in `CASE.json`
//! beside `all_shape.txt`; the postprocess reads them and the images' headers (for the geometry), and
//! preprocesses the case again only when that file is missing.

use std::path::{Path, PathBuf};

use ndarray::Axis;
use nnu_artifacts::Checkpoint;
use nnu_bins::{DumpIndex, ShapeRecord, TileBounds, TileName};
use nnu_preprocessing::v2::V2CaseProperties;
use nnu_tiling::MirrorSet;

use crate::bins::{
    bin_mirror, bins_err, checked_grid, properties_path, write_case_tiles, BinsOptions, BinsReport,
};
use crate::cases::Case;
use crate::stages::PredictOptions;
use crate::v2::{
    check_channel_count, mirror_order, read_case_channels, read_channel_files, write_case_v2,
    V2Model, V2Window,
};
use crate::v2_out::V2OutputPaths;
use crate::PipelineError;

/// The mirrors nnunetv2 runs by default for `model` with `folds` (as [`V2Model::folds`]): every
/// combination of the first fold's `inference_allowed_mirroring_axes` (read from its checkpoint, without
/// building the network), none when its trainer disabled mirroring, every axis of the network when the
/// fold has only a `model.onnx`. What [`crate::v2::V2Backends::default_mirrors`] gives for the same fold.
pub fn default_mirrors_v2(model: &V2Model, folds: &[usize]) -> Result<MirrorSet, PipelineError> {
    let two_d = matches!(model.window, V2Window::Slices(_));
    let fold = model
        .folds(folds)?
        .into_iter()
        .next()
        .ok_or_else(|| PipelineError::Input {
            path: model.folder.dir.clone(),
            msg: "no fold to take the mirroring from".into(),
        })?;
    let axes = match fold.checkpoint(&model.checkpoint) {
        Some(path) => Checkpoint::load(path)?
            .v2
            .as_ref()
            .and_then(|i| i.inference_allowed_mirroring_axes.clone())
            .map(|axes| {
                let shift = usize::from(two_d);
                axes.into_iter().map(|a| a + shift).collect::<Vec<_>>()
            }),
        None => Some(if two_d { vec![1, 2] } else { vec![0, 1, 2] }),
    };
    Ok(match axes {
        Some(axes) => MirrorSet::from_axes(&axes)?,
        None => MirrorSet::identity_only(),
    })
}

/// The cascade stages need the previous stage's segmentation, which the file path does not carry.
fn refuse_cascade_v2(model: &V2Model) -> Result<(), PipelineError> {
    match &model.cascade {
        Some(c) => Err(PipelineError::Input {
            path: model.folder.dir.clone(),
            msg: format!(
                "configuration {} is a cascade stage: the bins path does not take the {} segmentation; \
                 predict it with nnu-predict --prev-stage DIR",
                model.configuration, c.previous_stage
            ),
        }),
        None => Ok(()),
    }
}

/// An upper bound of the bytes the tiles of `case` will take with `model`, from its header alone (no crop
/// assumed): the planned shape, tiled as the configuration's window, x mirrors x channels x patch x 4.
pub fn estimate_case_bytes_v2(
    case: &Case,
    model: &V2Model,
    step_size: f64,
    mirrors: usize,
) -> Result<u64, PipelineError> {
    let (shape_zyx, geometry) = crate::cases::case_header(case)?;
    let shape =
        nnu_preprocessing::v2::planned_shape_v2(shape_zyx, geometry.spacing_zyx(), &model.params)?;
    let grid = model.window.grid(shape, step_size)?;
    let patch = model.window.patch();
    let per_tile = model.input_channels() * patch.iter().product::<usize>() * 4;
    Ok((grid.len() * mirrors * per_tile) as u64)
}

/// Preprocesses one case as nnunetv2 does ([`crate::v2::v2_preprocess_volumes`]) and writes its tiles x
/// `opts.mirrors` as raw f32 bins into `bin_dir`, in nnunetv2's sliding window (for a `2d` configuration,
/// every slice, `(1, y, x)` tiles), its line into `shape_file` and its properties into `CASE.json` beside
/// it, as [`crate::bins::preprocess_to_bins`] does for a v1 model (kept tiles, atomic files, the lock
/// of `all_shape.txt`, resumable).
pub fn preprocess_to_bins_v2(
    case: &Case,
    model: &V2Model,
    bin_dir: &Path,
    shape_file: &Path,
    opts: &BinsOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BinsReport, PipelineError> {
    refuse_cascade_v2(model)?;
    let first = case.first_file()?;
    check_channel_count(case, model)?;
    let volumes = read_case_channels(case)?;
    let (data, props, _) =
        crate::v2::v2_preprocess_volumes(volumes, &model.params).map_err(|e| match e {
            PipelineError::Preprocess(p) => PipelineError::Input {
                path: first.to_path_buf(),
                msg: p.to_string(),
            },
            e => e,
        })?;
    let (_, z, y, x) = data.dim();
    let grid = model.window.grid([z, y, x], opts.step_size)?;
    write_case_tiles(
        &case.name,
        data.view(),
        &grid,
        bin_dir,
        shape_file,
        &props,
        opts,
        progress,
    )
}

/// nnunetv2's properties of a case as `nnu-preprocess` saved them beside `all_shape.txt`.
#[derive(Debug, Clone)]
pub struct SavedV2Properties {
    /// The file they were read from.
    pub path: PathBuf,
    /// Crop box, shapes and spacing of the case.
    pub props: V2CaseProperties,
}

/// Reads the v2 properties at `path`; `None` when there is no such file, an error naming the file when it
/// is not what [`preprocess_to_bins_v2`] writes (a v1 model's `CASE.json`, for example).
pub fn read_properties_v2(path: &Path) -> Result<Option<SavedV2Properties>, PipelineError> {
    Ok(crate::bins::read_json(
        path,
        "the properties nnu-preprocess writes for an nnunetv2 model",
    )?
    .map(|props| SavedV2Properties {
        path: path.to_path_buf(),
        props,
    }))
}

/// Merges the dumps of one case (the final head of each tile x mirror in `dumps`) as nnunetv2's
/// `predict_sliding_window_return_logits` merges its tiles (each dump flipped back, the mirrors' logits
/// averaged in nnunetv2's order, its Gaussian, [`nnu_tiling::v2::LogitMerge`]), then exports and writes
/// the case as `nnu-predict` does (`NAME.nii.gz`, with `opts.save_probabilities` `NAME.npz` and
/// `NAME.pkl`, with `opts.preview` `NAME.png`; all or nothing). The properties come from `saved`, checked
/// against the images' header (shape and spacing) and the configuration's spacing; without them the case
/// is preprocessed again. Missing, short or non-finite dumps refuse the case, naming the first.
#[allow(clippy::too_many_arguments)]
pub fn postprocess_from_dumps_v2(
    case: &Case,
    model: &V2Model,
    record: &ShapeRecord,
    saved: Option<&SavedV2Properties>,
    dumps: &DumpIndex,
    out_dir: &Path,
    opts: &PredictOptions,
) -> Result<(), PipelineError> {
    refuse_cascade_v2(model)?;
    let first = case.first_file()?;
    crate::stages::refuse_over_memory(case, opts, || {
        crate::v2::estimate_peak_memory_v2(case, model, opts)
    })?;
    let (props, geometry, preview_image) = match saved {
        Some(saved) => {
            let (shape_zyx, geometry) = crate::cases::case_header(case)?;
            check_saved_properties_v2(first, saved, model, shape_zyx, &geometry)?;
            let preview_image = if opts.preview {
                match &case.dicom {
                    Some(series) => Some(nnu_dicom::read_series(series)?.data),
                    None => read_channel_files(&[first])?
                        .into_iter()
                        .next()
                        .map(|v| v.data),
                }
            } else {
                None
            };
            (saved.props.clone(), geometry, preview_image)
        }
        None => {
            check_channel_count(case, model)?;
            let volumes = read_case_channels(case)?;
            let preview_image = match volumes.first() {
                Some(v) if opts.preview => Some(crate::stages::preview_copy(v.data.view(), first)?),
                _ => None,
            };
            let (_, props, geometry) = crate::v2::v2_preprocess_volumes(volumes, &model.params)?;
            (props, geometry, preview_image)
        }
    };
    let p = model.window.patch();
    let grid = checked_grid(
        case,
        record,
        props.shape_after_resampling,
        p,
        opts.mirrors,
        model.heads,
        dumps,
        out_dir,
    )?;
    let oom = crate::stages::naming_image(first);
    let mirrors = mirror_order(opts.mirrors)?;
    let mut merge = model
        .window
        .merge(model.heads, grid.clone(), opts.use_gaussian)
        .map_err(&oom)?;
    for tile in grid.tiles() {
        let bounds = TileBounds::from_start(tile.lb, p).map_err(bins_err)?;
        let mut bins = Vec::with_capacity(mirrors.len());
        for &m in &mirrors {
            let name =
                TileName::new(case.name.clone(), bounds, bin_mirror(m)?).map_err(bins_err)?;
            bins.push((m, dumps.open(&name, model.heads).map_err(bins_err)?));
        }
        let views = bins
            .iter()
            .map(|(m, bin)| {
                let v = bin
                    .view5([1, model.heads, p[0], p[1], p[2]])
                    .map_err(bins_err)?;
                Ok((*m, v.index_axis_move(Axis(0), 0)))
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        merge.add(&tile, &views)?;
    }
    let logits = merge.finish().map_err(PipelineError::from).map_err(&oom)?;
    std::fs::create_dir_all(out_dir).map_err(|e| PipelineError::io(out_dir, e))?;
    write_case_v2(
        logits.view(),
        &props,
        &geometry,
        preview_image.as_ref().map(|a| a.view()),
        model,
        &V2OutputPaths::new(out_dir, &case.name),
        &case.name,
        opts,
    )
    .map_err(&oom)
}

/// Refuses saved properties that do not belong to the case's image as it is now, or to this
/// configuration: the image's shape (transposed) must be the shape before cropping, and its spacing the
/// saved one; the target spacing must be what the configuration makes of that spacing.
fn check_saved_properties_v2(
    first: &Path,
    saved: &SavedV2Properties,
    model: &V2Model,
    shape_zyx: [usize; 3],
    geometry: &nnu_volume::Geometry,
) -> Result<(), PipelineError> {
    let p = &saved.props;
    let tf = model.params.transpose_forward;
    let shape_t = [shape_zyx[tf[0]], shape_zyx[tf[1]], shape_zyx[tf[2]]];
    let spacing = geometry.spacing_zyx();
    if shape_t != p.shape_before_cropping || spacing != p.spacing {
        return Err(PipelineError::Input {
            path: first.to_path_buf(),
            msg: format!(
                "the image changed since nnu-preprocess: shape {shape_zyx:?}, spacing {spacing:?}; {} says \
                 shape {:?} (transposed), spacing {:?}",
                saved.path.display(),
                p.shape_before_cropping,
                p.spacing
            ),
        });
    }
    // The configuration's spacing in the transposed frame; a 2-D one keeps the image's first axis.
    let spacing_t = [spacing[tf[0]], spacing[tf[1]], spacing[tf[2]]];
    let target = match *model.params.spacing.as_slice() {
        [a, b, c] => Some([a, b, c]),
        [b, c] => Some([spacing_t[0], b, c]),
        _ => None,
    };
    if target.is_some_and(|t| t != p.target_spacing) {
        return Err(PipelineError::Input {
            path: saved.path.clone(),
            msg: format!(
                "preprocessed to spacing {:?}, configuration {} resamples this image to {:?} (other model?)",
                p.target_spacing,
                model.configuration,
                target.unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// A model folder opened for the file path: nnU-Net v1 ([`crate::bins`]) or nnunetv2 (this module), told
/// apart by what the folder holds, so that `nnu-preprocess` and `nnu-postprocess` take both.
#[derive(Debug, Clone)]
pub enum BinsModel {
    /// nnU-Net v1 (`plans.pkl`).
    V1(crate::model::ModelSpec),
    /// nnunetv2 (`plans.json`, `dataset.json`), one configuration.
    V2(V2Model),
}

impl BinsModel {
    /// Opens `dir`: an nnunetv2 folder with `configuration` (default `3d_fullres`, as
    /// [`V2Model::open`]) and the checkpoint file name `checkpoint` (for the mirroring axes), else an nnU-Net
    /// v1 folder (`configuration` must then be absent).
    pub fn open(
        dir: &Path,
        configuration: Option<&str>,
        checkpoint: &str,
    ) -> Result<BinsModel, PipelineError> {
        if crate::v2::is_v2_folder(dir) {
            return Ok(BinsModel::V2(V2Model::open(
                dir,
                configuration,
                checkpoint,
            )?));
        }
        if let Some(c) = configuration {
            return Err(PipelineError::Input {
                path: dir.to_path_buf(),
                msg: format!(
                    "-c {c} applies to nnunetv2 model folders; this is an nnU-Net v1 folder (its \
                     configuration is the folder itself)"
                ),
            });
        }
        Ok(BinsModel::V1(crate::model::ModelSpec::open(dir)?))
    }

    /// The mirrors written and merged by default: all eight for v1 (nnU-Net's `do_mirroring`), the
    /// checkpoint's allowed axes of the first of `folds` for v2 ([`default_mirrors_v2`]).
    pub fn default_mirrors(&self, folds: &[usize]) -> Result<MirrorSet, PipelineError> {
        match self {
            BinsModel::V1(_) => Ok(MirrorSet::all()),
            BinsModel::V2(m) => default_mirrors_v2(m, folds),
        }
    }

    /// An upper bound of the bytes of the tiles of `case` ([`crate::bins::estimate_case_bytes`],
    /// [`estimate_case_bytes_v2`]).
    pub fn estimate_case_bytes(
        &self,
        case: &Case,
        step_size: f64,
        mirrors: usize,
    ) -> Result<u64, PipelineError> {
        match self {
            BinsModel::V1(m) => crate::bins::estimate_case_bytes(case, m, step_size, mirrors),
            BinsModel::V2(m) => estimate_case_bytes_v2(case, m, step_size, mirrors),
        }
    }

    /// [`crate::bins::preprocess_to_bins`] or [`preprocess_to_bins_v2`].
    pub fn preprocess_to_bins(
        &self,
        case: &Case,
        bin_dir: &Path,
        shape_file: &Path,
        opts: &BinsOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<BinsReport, PipelineError> {
        match self {
            BinsModel::V1(m) => {
                crate::bins::preprocess_to_bins(case, m, bin_dir, shape_file, opts, progress)
            }
            BinsModel::V2(m) => preprocess_to_bins_v2(case, m, bin_dir, shape_file, opts, progress),
        }
    }

    /// [`crate::bins::postprocess_from_dumps`] or [`postprocess_from_dumps_v2`], with the case's saved
    /// properties read from beside `shape_file` ([`properties_path`]) when they are there.
    #[allow(clippy::too_many_arguments)]
    pub fn postprocess_from_dumps(
        &self,
        case: &Case,
        record: &ShapeRecord,
        shape_file: &Path,
        dumps: &DumpIndex,
        out_dir: &Path,
        opts: &PredictOptions,
    ) -> Result<(), PipelineError> {
        let saved = properties_path(shape_file, &case.name);
        match self {
            BinsModel::V1(m) => {
                let saved = crate::bins::read_properties(&saved)?;
                crate::bins::postprocess_from_dumps(
                    case,
                    m,
                    record,
                    saved.as_ref(),
                    dumps,
                    out_dir,
                    opts,
                )
            }
            BinsModel::V2(m) => {
                let saved = read_properties_v2(&saved)?;
                postprocess_from_dumps_v2(case, m, record, saved.as_ref(), dumps, out_dir, opts)
            }
        }
    }

    /// The files the postprocess writes for case `name` in `dir` (for the check that no output replaces
    /// an input).
    pub fn output_paths(&self, dir: &Path, name: &str) -> Vec<PathBuf> {
        match self {
            BinsModel::V1(_) => {
                let (seg, prob, png) = crate::stages::output_paths(dir, name);
                vec![seg, prob, png]
            }
            BinsModel::V2(_) => V2OutputPaths::new(dir, name).all(),
        }
    }

    /// After cases were written to `out_dir`: for an nnunetv2 model, its `dataset.json` and `plans.json`
    /// beside them, as `nnUNetv2_predict` leaves them ([`crate::v2_out::copy_model_json`]); returns the
    /// warnings to print. Nothing for v1.
    pub fn finish_output(&self, out_dir: &Path) -> Result<Vec<String>, PipelineError> {
        match self {
            BinsModel::V1(_) => Ok(Vec::new()),
            BinsModel::V2(m) => crate::v2_out::copy_model_json(&m.folder.dir, out_dir),
        }
    }
}

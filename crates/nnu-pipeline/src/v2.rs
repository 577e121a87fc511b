//! nnunetv2 models in the pipeline: preprocessing parameters from `plans.json`, reading a case as
//! nnunetv2's `SimpleITKIO` does (no reorientation; spacing reversed to numpy order), and prediction as
//! `nnUNetPredictor` does it: [`V2Model`] (a model folder with one configuration), [`load_v2_backends`]
//! (one network per fold, from `model.onnx` or built in memory from the checkpoint),
//! [`predict_logits_v2`] (sliding window, mirrors, fp16 Gaussian, folds; logits merged in f32 where
//! nnunetv2 accumulates in fp16, see [`nnu_tiling::v2`]) and [`predict_case_v2`] (preprocess, predict,
//! export with `nnu_preprocessing::v2::export_v2`, write).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array3, Array4, Array5, Axis};
use nnu_artifacts::v2::{
    LabelValue, V2Configuration, V2FoldDir, V2ModelFolder, V2Plans, CHECKPOINT_BEST,
    CHECKPOINT_FINAL,
};
#[cfg(feature = "export")]
use nnu_artifacts::Checkpoint;
use nnu_engine::Backend;
use nnu_preprocessing::v2::{
    export_v2, preprocess_case_v2_cascade, V2CaseProperties, V2ExportParams, V2Labels,
    V2Normalization, V2PreprocessParams, V2PrevStage, V2Resampling,
};
use nnu_tiling::v2::{gaussian_importance_map_v2_2d, v2_mirror_order, LogitMerge};
use nnu_tiling::{Mirror, MirrorSet, TileGrid};
use nnu_volume::{stage_volume, Geometry, Volume, WriteOptions};

use crate::cases::Case;
use crate::predict::{claim_case, CaseReport};
#[cfg(feature = "export")]
use crate::run::{open_cpu_backend, CpuBackendOptions, NetworkInput};
use crate::stages::{
    check_backend_input, run_tile_mirrors, saturating_bytes, voxels_as_read_and_planned,
    PredictOptions,
};
use crate::v2_out::{stage_probabilities_npz, stage_properties_pkl, V2OutputPaths};
use crate::{preview, PipelineError};

/// The preprocessing of configuration `cfg` of `plans` (`DefaultPreprocessor` with the configuration's
/// schemes, the plans' foreground intensity properties and `resampling_fn_data`). `plans_path` names the
/// file in errors.
pub fn v2_params(
    plans: &V2Plans,
    cfg: &V2Configuration,
    plans_path: &Path,
) -> Result<V2PreprocessParams, PipelineError> {
    let bad = |msg: String| PipelineError::Input {
        path: plans_path.to_path_buf(),
        msg,
    };
    let transpose_forward: [usize; 3] =
        plans.transpose_forward.as_slice().try_into().map_err(|_| {
            bad(format!(
                "transpose_forward {:?} is not a permutation of 3 axes",
                plans.transpose_forward
            ))
        })?;
    let mut normalization = Vec::with_capacity(cfg.normalization_schemes.len());
    for (c, scheme) in cfg.normalization_schemes.iter().enumerate() {
        let ct = plans
            .foreground_intensity_properties_per_channel
            .get(&c)
            .map(|p| (p.mean, p.std, p.percentile_00_5, p.percentile_99_5));
        let use_mask = cfg.use_mask_for_norm.get(c).copied().unwrap_or(false);
        normalization.push(
            V2Normalization::from_scheme(scheme, use_mask, ct, c)
                .map_err(|e| bad(format!("configuration {}: {e}", cfg.name)))?,
        );
    }
    let resampling =
        resampling_entry(&cfg.name, "resampling_fn_data", &cfg.resampling_fn_data).map_err(bad)?;
    Ok(V2PreprocessParams {
        transpose_forward,
        spacing: cfg.spacing.clone(),
        normalization,
        resampling,
    })
}

/// Reads the channel files of one case (`CASE_0000.nii.gz`, ...) and preprocesses them as nnunetv2 does.
/// Returns the preprocessed (c, z, y, x) array (transposed frame), its properties and the first channel's
/// geometry (which the segmentation is written with).
pub fn v2_preprocess_files(
    files: &[impl AsRef<Path>],
    params: &V2PreprocessParams,
) -> Result<(Array4<f32>, V2CaseProperties, Geometry), PipelineError> {
    v2_preprocess_volumes(read_channel_files(files)?, params)
}

/// Each channel file of a case, read as f32 volumes.
pub(crate) fn read_channel_files(
    files: &[impl AsRef<Path>],
) -> Result<Vec<Volume<f32>>, PipelineError> {
    let mut volumes = Vec::with_capacity(files.len());
    for f in files {
        volumes.push(nnu_volume::read_volume(f.as_ref())?);
    }
    Ok(volumes)
}

/// [`v2_preprocess_files`] for channels already read (e.g. a DICOM series): preprocesses them as nnunetv2
/// does, with the first channel's geometry.
pub fn v2_preprocess_volumes(
    volumes: Vec<Volume<f32>>,
    params: &V2PreprocessParams,
) -> Result<(Array4<f32>, V2CaseProperties, Geometry), PipelineError> {
    v2_preprocess_volumes_cascade(volumes, None, params)
}

/// [`v2_preprocess_volumes`] of a cascade stage: with `prev`, the previous stage's segmentation goes
/// through the preprocessing with the channels and its one-hot encoding is appended
/// ([`preprocess_case_v2_cascade`]).
pub fn v2_preprocess_volumes_cascade(
    volumes: Vec<Volume<f32>>,
    prev: Option<V2PrevStage>,
    params: &V2PreprocessParams,
) -> Result<(Array4<f32>, V2CaseProperties, Geometry), PipelineError> {
    let geometry = volumes
        .first()
        .map(|v| v.geometry)
        .ok_or_else(|| PipelineError::Shape("no channel files given".into()))?;
    let channels: Vec<Array3<f32>> = volumes.into_iter().map(|v| v.data).collect();
    let s = geometry.spacing;
    let (data, props) = preprocess_case_v2_cascade(channels, prev, [s[2], s[1], s[0]], params)?;
    Ok((data, props, geometry))
}

/// What a cascade stage (a configuration with `previous_stage`, e.g. `3d_cascade_fullres`) takes besides
/// the images.
#[derive(Debug, Clone, PartialEq)]
pub struct V2Cascade {
    /// `previous_stage`: the configuration whose segmentation is the extra input (e.g. `3d_lowres`).
    pub previous_stage: String,
    /// `label_manager.foreground_labels`: the extra input channels, one per label, in this order.
    pub foreground_labels: Vec<i64>,
    /// `resampling_fn_seg` with its kwargs (how the segmentation is resampled with the images).
    pub seg_resampling: V2Resampling,
}

/// A v2 model with its networks loaded: what predicts one configuration.
pub struct V2Stage {
    /// The model and configuration.
    pub model: V2Model,
    /// One backend per fold.
    pub backends: Vec<Box<dyn Backend>>,
    /// The mirrors its sliding window runs.
    pub mirrors: MirrorSet,
}

/// Where a cascade stage gets the previous stage's segmentation of each case: a folder of `CASE` +
/// `file_ending` files (nnunetv2's `-prev_stage_predictions`), or the previous stage predicted in memory
/// before each case, as `nnUNetv2_predict -c 3d_lowres` would write it
/// ([`crate::cascade::v2_prev_source`] resolves it from the tool's flags).
pub type V2PrevSource = crate::cascade::PrevSource<V2Stage>;

/// The sliding window of a configuration, in the transposed (z, y, x) frame of the preprocessed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Window {
    /// A 3-D configuration: a (z, y, x) patch slid over the volume.
    Volume([usize; 3]),
    /// A 2-D configuration, predicted as nnunetv2 does it: every slice along axis 0 on its own, a (y, x)
    /// patch slid over it, the 2-D Gaussian. The network runs as a 3-D one on a (1, y, x) patch.
    Slices([usize; 2]),
}

impl V2Window {
    /// The patch the (3-D) backend takes: `[1, y, x]` for [`V2Window::Slices`].
    pub fn patch(self) -> [usize; 3] {
        match self {
            V2Window::Volume(p) => p,
            V2Window::Slices([y, x]) => [1, y, x],
        }
    }

    /// The tiles of an unpadded (z, y, x) image, in nnunetv2's order.
    pub fn grid(self, shape: [usize; 3], step_size: f64) -> Result<TileGrid, PipelineError> {
        Ok(match self {
            V2Window::Volume(p) => TileGrid::new(shape, p, step_size)?,
            V2Window::Slices(p) => TileGrid::slices(shape, p, step_size)?,
        })
    }

    /// The merge of one fold's tiles over `grid` (from [`V2Window::grid`]), Gaussian-weighted when
    /// `use_gaussian` (the 2-D map for [`V2Window::Slices`]).
    pub(crate) fn merge(
        self,
        heads: usize,
        grid: TileGrid,
        use_gaussian: bool,
    ) -> Result<LogitMerge, PipelineError> {
        Ok(match (self, use_gaussian) {
            (V2Window::Slices(p), true) => {
                LogitMerge::with_weights(heads, grid, Some(gaussian_importance_map_v2_2d(p)?))?
            }
            _ => LogitMerge::new(heads, grid, use_gaussian)?,
        })
    }
}

/// The resampling of one of a configuration's `resampling_fn_*` entries (`key`), or the message saying
/// which configuration and entry cannot be used and why.
fn resampling_entry(
    configuration: &str,
    key: &str,
    (function, kw): &(String, nnu_artifacts::v2::ResamplingKwargs),
) -> Result<V2Resampling, String> {
    V2Resampling::from_plans(
        function,
        kw.order,
        kw.order_z,
        kw.force_separate_z,
        kw.separate_z_anisotropy_threshold,
    )
    .map_err(|e| format!("configuration {configuration}: {key}: {e}"))
}

/// An nnunetv2 model folder opened for prediction with one of its configurations: what
/// `nnUNetPredictor.initialize_from_trained_model_folder` reads, minus the networks (see
/// [`load_v2_backends`]).
#[derive(Debug, Clone)]
pub struct V2Model {
    /// The opened folder (`plans.json`, `dataset.json`, folds).
    pub folder: V2ModelFolder,
    /// The configuration predicted with (e.g. `3d_fullres`).
    pub configuration: String,
    /// The checkpoint file name read in each fold (`checkpoint_final.pth` or `checkpoint_best.pth`).
    pub checkpoint: String,
    /// Preprocessing of the configuration.
    pub params: V2PreprocessParams,
    /// Export of the configuration (resampling of the logits, label manager, transposes).
    pub export: V2ExportParams,
    /// Patch size the backends take (z, y, x, transposed frame; `[1, y, x]` for a 2-D configuration).
    pub patch: [usize; 3],
    /// The sliding window: 3-D, or slice by slice for a 2-D configuration.
    pub window: V2Window,
    /// Input channels (`dataset.json` `channel_names`).
    pub num_channels: usize,
    /// Network outputs (`num_segmentation_heads`: labels, or regions for region-based models).
    pub heads: usize,
    /// For a cascade stage (`previous_stage` set), what it takes besides the images.
    pub cascade: Option<V2Cascade>,
}

impl V2Model {
    /// Names of segmentation labels 1, 2, ... (for the preview legend), from `dataset.json`: each label's
    /// name at its value; for a region-based model, the i-th region (background excluded) at the label
    /// `regions_class_order[i]` it is written as. Labels without a name get an empty string.
    pub fn label_names(&self) -> Vec<String> {
        let ds = &self.folder.dataset;
        let mut named: Vec<(i64, &str)> = Vec::new();
        let mut region = 0;
        for (name, value) in &ds.labels.0 {
            match value {
                LabelValue::Label(0) => {}
                LabelValue::Label(v) if ds.regions_class_order.is_none() => {
                    named.push((*v, name));
                }
                _ => {
                    if let Some(&v) = ds.regions_class_order.as_ref().and_then(|o| o.get(region)) {
                        named.push((v, name));
                    }
                    region += 1;
                }
            }
        }
        let max = named
            .iter()
            .map(|&(v, _)| v)
            .max()
            .unwrap_or(0)
            .clamp(0, 255) as usize;
        let mut names = vec![String::new(); max];
        for (v, name) in named {
            if (1..=255).contains(&v) {
                names[v as usize - 1] = name.to_owned();
            }
        }
        names
    }

    /// Opens `dir` for `configuration` (`None`: the one the folder name ends with, else `3d_fullres`)
    /// reading `checkpoint` (`checkpoint_final.pth` or `checkpoint_best.pth`) in each fold. 3-D and 2-D
    /// configurations are taken, cascade stages too (see [`V2Model::cascade`]); label managers other than
    /// `LabelManager` are refused.
    pub fn open(
        dir: &Path,
        configuration: Option<&str>,
        checkpoint: &str,
    ) -> Result<V2Model, PipelineError> {
        let folder = V2ModelFolder::open(dir)?;
        let plans_path = dir.join("plans.json");
        let bad = |path: &Path, msg: String| PipelineError::Input {
            path: path.to_path_buf(),
            msg,
        };
        if checkpoint != CHECKPOINT_FINAL && checkpoint != CHECKPOINT_BEST {
            return Err(bad(
                dir,
                format!(
                    "--checkpoint {checkpoint}: expected {CHECKPOINT_FINAL} or {CHECKPOINT_BEST}"
                ),
            ));
        }
        let configuration =
            configuration.map_or_else(|| folder.configuration_from_name(), str::to_owned);
        let cfg = folder.plans.configuration(&configuration).map_err(|e| {
            bad(
                &plans_path,
                format!(
                    "{e} (configurations: {})",
                    folder.plans.configuration_names.join(", ")
                ),
            )
        })?;
        if folder.plans.label_manager != "LabelManager" {
            return Err(bad(
                &plans_path,
                format!(
                    "label_manager {}: only nnunetv2's LabelManager is implemented",
                    folder.plans.label_manager
                ),
            ));
        }
        let params = v2_params(&folder.plans, &cfg, &plans_path)?;
        let tb: [usize; 3] = folder
            .plans
            .transpose_backward
            .as_slice()
            .try_into()
            .map_err(|_| {
                bad(
                    &plans_path,
                    format!(
                        "transpose_backward {:?} is not a permutation of 3 axes",
                        folder.plans.transpose_backward
                    ),
                )
            })?;
        let resampling = resampling_entry(
            &configuration,
            "resampling_fn_probabilities",
            &cfg.resampling_fn_probabilities,
        )
        .map_err(|msg| bad(&plans_path, msg))?;
        let dataset_path = dir.join("dataset.json");
        let ds = &folder.dataset;
        let labels = if ds.has_regions() {
            let order = ds.regions_class_order.clone().ok_or_else(|| {
                bad(
                    &dataset_path,
                    "region-based labels need regions_class_order".into(),
                )
            })?;
            let class_order = order
                .iter()
                .map(|&v| u8::try_from(v))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| {
                    bad(
                        &dataset_path,
                        format!("regions_class_order {order:?}: labels must be in 0..=255"),
                    )
                })?;
            V2Labels::Regions { class_order }
        } else {
            V2Labels::Softmax
        };
        let heads = ds.num_segmentation_heads();
        let window = match *cfg.patch_size.as_slice() {
            [z, y, x] => V2Window::Volume([z, y, x]),
            [y, x] => V2Window::Slices([y, x]),
            _ => {
                return Err(bad(
                    &plans_path,
                    format!(
                        "configuration {configuration}: patch_size {:?} is neither 2-D nor 3-D",
                        cfg.patch_size
                    ),
                ))
            }
        };
        let cascade = match &cfg.previous_stage {
            Some(prev) => {
                let seg_resampling =
                    resampling_entry(&configuration, "resampling_fn_seg", &cfg.resampling_fn_seg)
                        .map_err(|msg| bad(&plans_path, msg))?;
                Some(V2Cascade {
                    previous_stage: prev.clone(),
                    foreground_labels: foreground_labels(&folder.dataset),
                    seg_resampling,
                })
            }
            None => None,
        };
        Ok(V2Model {
            cascade,
            num_channels: cfg.normalization_schemes.len(),
            export: V2ExportParams {
                transpose_forward: params.transpose_forward,
                transpose_backward: tb,
                spacing: cfg.spacing.clone(),
                resampling,
                labels,
            },
            params,
            patch: window.patch(),
            window,
            heads,
            configuration,
            checkpoint: checkpoint.to_owned(),
            folder,
        })
    }

    /// The fold folders to use: `requested` (numbers), or every fold with the checkpoint or a
    /// `model.onnx` when empty (nnunetv2 takes `fold_0` ... `fold_4` by default; `fold_all` is only used
    /// when it is the only one).
    pub fn folds(&self, requested: &[usize]) -> Result<Vec<&V2FoldDir>, PipelineError> {
        if requested.is_empty() {
            let numbered: Vec<&V2FoldDir> = self
                .folder
                .folds
                .iter()
                .filter(|f| f.fold.is_some())
                .collect();
            return Ok(if numbered.is_empty() {
                self.folder.folds.iter().collect()
            } else {
                numbered
            });
        }
        requested
            .iter()
            .map(|&k| {
                self.folder
                    .folds
                    .iter()
                    .find(|f| f.fold == Some(k))
                    .ok_or_else(|| PipelineError::Input {
                        path: self.folder.dir.join(format!("fold_{k}")),
                        msg: format!("fold {k} has neither {} nor model.onnx", self.checkpoint),
                    })
            })
            .collect()
    }
}

impl V2Model {
    /// The network's input channels: the images' (`num_channels`), plus one per foreground label of a
    /// cascade stage (`determine_num_input_channels`).
    pub fn input_channels(&self) -> usize {
        self.num_channels
            + self
                .cascade
                .as_ref()
                .map_or(0, |c| c.foreground_labels.len())
    }
}

/// `LabelManager.foreground_labels`: every label value of `dataset.json` (a region's labels one by one,
/// `ignore` left out), distinct, ascending, without the background 0.
pub fn foreground_labels(ds: &nnu_artifacts::v2::DatasetJson) -> Vec<i64> {
    let mut all: Vec<i64> = Vec::new();
    for (name, value) in &ds.labels.0 {
        if name == "ignore" {
            continue;
        }
        match value {
            LabelValue::Label(v) => all.push(*v),
            LabelValue::Region(r) => all.extend(r.iter().copied()),
        }
    }
    all.sort_unstable();
    all.dedup();
    all.retain(|&v| v != 0);
    all
}

/// The networks of a v2 model, one per fold, and the mirroring its trainer allows.
pub struct V2Backends {
    /// One backend per fold, in fold order.
    pub backends: Vec<Box<dyn Backend>>,
    /// `inference_allowed_mirroring_axes` of the first fold's checkpoint in the (z, y, x) axes of the
    /// preprocessed array (a 2-D network's axes 0, 1 are y, x: 1, 2 here), `None` when the trainer
    /// disabled mirroring. When the first fold has only a `model.onnx`, every axis of the network (1, 2
    /// for a 2-D one).
    pub mirror_axes: Option<Vec<usize>>,
}

impl V2Backends {
    /// The mirrors nnunetv2 runs by default: every combination of [`V2Backends::mirror_axes`].
    pub fn default_mirrors(&self) -> Result<MirrorSet, PipelineError> {
        Ok(match &self.mirror_axes {
            Some(axes) => MirrorSet::from_axes(axes)?,
            None => MirrorSet::identity_only(),
        })
    }
}

/// Loads one CPU backend per fold of `model` (`folds` as [`V2Model::folds`]): the fold's `model.onnx`
/// when it has one, else the network built in memory from the checkpoint (`nnu_onnx_export::v2`). The
/// checkpoint must have been trained with `model.configuration`. A 2-D network built from its checkpoint
/// is the equivalent 3-D one ([`lift_2d_to_3d`]: kernels and strides `1 x k x k`, run on a `(1, y, x)`
/// patch); a 2-D `model.onnx` (`nnu-export-onnx`'s, input `(n, c, y, x)`) is run by both CPU backends on
/// the same `(1, y, x)` patches.
/// (Cargo feature `export`, with `tract` or `native`.)
#[cfg(feature = "export")]
pub fn load_v2_backends(
    model: &V2Model,
    folds: &[usize],
    options: &CpuBackendOptions,
) -> Result<V2Backends, PipelineError> {
    let cfg = model.folder.plans.configuration(&model.configuration)?;
    let two_d = matches!(model.window, V2Window::Slices(_));
    let arch = cfg.network()?;
    let arch = if two_d { lift_arch(&arch) } else { arch };
    let input = NetworkInput::patch(model.patch, model.input_channels());
    let mut noted = false;
    let mut backends = Vec::new();
    let mut mirror_axes: Option<Option<Vec<usize>>> = None;
    for fold in model.folds(folds)? {
        let ckpt_path = fold.checkpoint(&model.checkpoint).map(Path::to_path_buf);
        let ckpt = match &ckpt_path {
            Some(p) => Some(Checkpoint::load(p)?),
            None => None,
        };
        if let (Some(c), Some(p)) = (&ckpt, &ckpt_path) {
            let info = c.v2.as_ref();
            if let Some(trained) = info.and_then(|i| i.configuration.as_deref()) {
                if trained != model.configuration {
                    return Err(PipelineError::Input {
                        path: p.clone(),
                        msg: format!(
                            "this checkpoint was trained with configuration {trained}, not {} (-c)",
                            model.configuration
                        ),
                    });
                }
            }
            mirror_axes.get_or_insert_with(|| {
                info.and_then(|i| i.inference_allowed_mirroring_axes.clone())
                    .map(|axes| {
                        let shift = usize::from(two_d);
                        axes.into_iter().map(|a| a + shift).collect()
                    })
            });
        }
        // Without a checkpoint, every axis of the network (a 2-D network's y and x).
        mirror_axes.get_or_insert_with(|| Some(if two_d { vec![1, 2] } else { vec![0, 1, 2] }));
        let backend = match (fold.onnx.as_ref(), ckpt, ckpt_path) {
            (Some(onnx), ..) => open_cpu_backend(onnx, None, &input, options, &mut noted)?,
            (None, Some(c), Some(p)) => {
                let mut sd = nnu_onnx_export::from_artifacts::state_dict_from_checkpoint(c)?;
                if two_d {
                    sd = lift_state_dict(sd)?;
                }
                let exported = nnu_onnx_export::v2::export_v2(
                    &arch,
                    &model.patch,
                    sd,
                    &nnu_onnx_export::ExportOptions::default(),
                )?;
                open_cpu_backend(&p, Some(&exported.to_bytes()), &input, options, &mut noted)?
            }
            _ => {
                return Err(PipelineError::Input {
                    path: model.folder.dir.join(&fold.name).join(&model.checkpoint),
                    msg: "missing: the fold has neither this checkpoint nor a model.onnx".into(),
                })
            }
        };
        if backend.num_classes() != model.heads {
            return Err(PipelineError::Input {
                path: model.folder.dir.join(&fold.name),
                msg: format!(
                    "the network has {} outputs, dataset.json says {} segmentation heads",
                    backend.num_classes(),
                    model.heads
                ),
            });
        }
        backends.push(backend);
    }
    Ok(V2Backends {
        backends,
        mirror_axes: mirror_axes.flatten(),
    })
}

/// A 2-D network as the equivalent 3-D one: every kernel and stride gains a leading 1 (`[k, k]` ->
/// `[1, k, k]`). With the weights lifted the same way (`lift_state_dict`) it computes, on a `(1, y, x)`
/// patch, what the 2-D network computes on the `(y, x)` patch: a `1 x k x k` convolution, transposed
/// convolution or pooling of one slice is the 2-D one, and instance normalisation over `(1, y, x)` is over
/// `(y, x)`.
#[cfg(feature = "export")]
pub fn lift_2d_to_3d(
    arch: &nnu_artifacts::v2::UNetArchitecture,
    state_dict: nnu_onnx_export::StateDict,
) -> Result<
    (
        nnu_artifacts::v2::UNetArchitecture,
        nnu_onnx_export::StateDict,
    ),
    PipelineError,
> {
    Ok((lift_arch(arch), lift_state_dict(state_dict)?))
}

#[cfg(feature = "export")]
fn lift_arch(arch: &nnu_artifacts::v2::UNetArchitecture) -> nnu_artifacts::v2::UNetArchitecture {
    if arch.ndim != 2 {
        return arch.clone();
    }
    let lift = |v: &Vec<Vec<usize>>| -> Vec<Vec<usize>> {
        v.iter()
            .map(|k| std::iter::once(1).chain(k.iter().copied()).collect())
            .collect()
    };
    nnu_artifacts::v2::UNetArchitecture {
        ndim: 3,
        kernel_sizes: lift(&arch.kernel_sizes),
        strides: lift(&arch.strides),
        ..arch.clone()
    }
}

/// Conv2d / ConvTranspose2d weights `[a, b, ky, kx]` as `[a, b, 1, ky, kx]` (the same values in the same
/// order); other tensors unchanged.
#[cfg(feature = "export")]
fn lift_state_dict(
    sd: nnu_onnx_export::StateDict,
) -> Result<nnu_onnx_export::StateDict, PipelineError> {
    let mut out = nnu_onnx_export::StateDict::new();
    for (k, mut t) in sd.into_entries() {
        if t.shape.len() == 4 {
            t.shape.insert(2, 1);
        }
        out.insert(k, t.shape, t.data)?;
    }
    Ok(out)
}

/// nnunetv2's order of the passes for a mirror set that is every combination of some axes
/// ([`nnu_tiling::v2::v2_mirror_order`]); any other set is an error.
pub(crate) fn mirror_order(set: MirrorSet) -> Result<Vec<Mirror>, PipelineError> {
    let axes: Vec<usize> = (0..3)
        .filter(|&a| Mirror::new(4 >> a).is_ok_and(|m| set.contains(m)))
        .collect();
    if MirrorSet::from_axes(&axes)? != set {
        return Err(PipelineError::Shape(format!(
            "mirror set {set} is not every combination of some axes"
        )));
    }
    Ok(v2_mirror_order(Some(&axes))?)
}

/// `predict_sliding_window_return_logits` of one fold, then the fold ensemble of
/// `predict_logits_from_preprocessed_data`: every tile of `data` (c, z, y, x, preprocessed) of `window`
/// (3-D, or slice by slice for a 2-D configuration) through each backend with the mirrors of `opts`
/// (logits averaged), merged with the fp16 Gaussian in f32 ([`LogitMerge`]), and the folds' logits
/// averaged. `progress(done, total)` counts the tiles of all
/// folds. Returns the logits (heads, z, y, x) and the tiles of one fold.
pub fn predict_logits_v2(
    data: &Array4<f32>,
    backends: &mut [Box<dyn Backend>],
    window: V2Window,
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Array4<f32>, usize), PipelineError> {
    let (c, z, y, x) = data.dim();
    let mirrors = mirror_order(opts.mirrors)?;
    let patch = window.patch();
    let grid = window.grid([z, y, x], opts.step_size)?;
    let mut input = Array5::<f32>::zeros((mirrors.len(), c, patch[0], patch[1], patch[2]));
    let nfolds = backends.len();
    let total = grid.len();
    let mut sum: Option<Array4<f32>> = None;
    for (f, backend) in backends.iter_mut().enumerate() {
        check_backend_input(backend.as_ref(), c, patch)?;
        let mut merge = window.merge(backend.num_classes(), grid.clone(), opts.use_gaussian)?;
        for (done, tile) in grid.tiles().enumerate() {
            let logits =
                run_tile_mirrors(backend.as_mut(), data, &grid, &tile, &mirrors, &mut input)?;
            let passes: Vec<_> = mirrors
                .iter()
                .enumerate()
                .map(|(k, &m)| (m, logits.index_axis(Axis(0), k)))
                .collect();
            merge.add(&tile, &passes)?;
            progress(f * total + done + 1, nfolds * total);
        }
        let l = merge.finish()?;
        match sum.as_mut() {
            None => sum = Some(l),
            Some(acc) => *acc += &l,
        }
    }
    let mut logits = sum.ok_or_else(|| PipelineError::Shape("no fold to predict with".into()))?;
    if nfolds > 1 {
        let n = nfolds as f32;
        logits.mapv_inplace(|v| v / n);
    }
    Ok((logits, total))
}

/// An upper bound of the memory one case needs at its peak with a v2 model, in bytes, from the header of
/// its first image: the largest of reading and resampling (the channels as read and resampled to the
/// configuration's spacing), the sliding window (the preprocessed data, each fold's logit and weight
/// sums and the fold sum, at least one patch per axis) and the export (the logits, their resampled copy
/// in the original frame, one head of the probabilities when `opts.save_probabilities`, the labels),
/// each without the crop (an upper bound), plus the image again for the preview. The network itself is
/// not counted.
pub fn estimate_peak_memory_v2(
    case: &Case,
    model: &V2Model,
    opts: &PredictOptions,
) -> Result<u64, PipelineError> {
    let (shape_zyx, geometry) = crate::cases::case_header(case)?;
    let planned =
        nnu_preprocessing::v2::planned_shape_v2(shape_zyx, geometry.spacing_zyx(), &model.params)?;
    let (n0, n1) = voxels_as_read_and_planned(shape_zyx, planned, model.window.patch());
    let (m, c) = (model.input_channels() as u64, model.heads as u64);
    let sum = saturating_bytes;
    let preview = if opts.preview { n0 } else { 0 };
    // The probabilities in the image's frame are written one head at a time: one f32 channel.
    let probs = if opts.save_probabilities { n0 } else { 0 };
    let read = sum(&[(4 * m, n0), (4 * m, n1), (4, preview)]);
    let window = sum(&[(4 * m, n1), (4 * (2 * c + 1), n1), (4, preview)]);
    let export = sum(&[(4 * c, n1), (4 * c, n0), (4, probs), (1, n0), (4, preview)]);
    Ok(read.max(window).max(export))
}

/// Predicts one case with a v2 model (one backend per fold, logits averaged) and writes `NAME.nii.gz`
/// (u8 labels in the first channel's geometry), with `opts.save_probabilities` nnunetv2's `NAME.npz` and
/// `NAME.pkl` ([`crate::v2_out`]), and with `opts.preview` `NAME.png` to `out_dir`, all committed
/// together (a failed case leaves none of them). Skips the case when those outputs exist and are whole,
/// unless `opts.overwrite`. `opts.postprocess` does not apply (v2 model folders keep their
/// postprocessing elsewhere, and nnunetv2's predictor does not apply it).
pub fn predict_case_v2(
    case: &Case,
    model: &V2Model,
    backends: &mut [Box<dyn Backend>],
    out_dir: &Path,
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CaseReport, PipelineError> {
    predict_case_v2_cascade(case, model, backends, None, out_dir, opts, progress)
}

/// [`predict_case_v2`] for any configuration, a cascade stage included: `prev` says where the previous
/// stage's segmentation of each case comes from (required when `model.cascade` is set, ignored
/// otherwise). With [`V2PrevSource::Predict`] the previous stage runs first on the same images (its
/// tiles counted by `progress` too) and only the final outputs are written (plus the previous stage's
/// segmentation in its `keep` folder).
pub fn predict_case_v2_cascade(
    case: &Case,
    model: &V2Model,
    backends: &mut [Box<dyn Backend>],
    prev: Option<&mut V2PrevSource>,
    out_dir: &Path,
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CaseReport, PipelineError> {
    let t0 = Instant::now();
    let mut report = CaseReport::new(&case.name, out_dir);
    let paths = V2OutputPaths::new(out_dir, &case.name);
    let complete = || paths.complete(opts.save_probabilities, opts.preview);
    let Some(_lock) = claim_case(case, out_dir, opts, &complete, &mut report)? else {
        return Ok(report);
    };
    if backends.is_empty() {
        return Err(PipelineError::Input {
            path: model.folder.dir.clone(),
            msg: "no fold to predict with".into(),
        });
    }
    let first = case.first_file()?;
    check_channel_count(case, model)?;
    crate::stages::refuse_over_memory(case, opts, || {
        crate::cascade::estimate_peak_memory_v2(case, model, prev.as_deref(), opts)
    })?;
    let volumes = read_case_channels(case)?;
    // The preview draws the first channel as read: kept from this read rather than read again.
    let preview_image = match volumes.first() {
        Some(v) if opts.preview => Some(crate::stages::preview_copy(v.data.view(), first)?),
        _ => None,
    };
    let prev_stage = match (&model.cascade, prev) {
        (None, _) => None,
        (Some(c), None) => {
            return Err(PipelineError::Input {
                path: model.folder.dir.clone(),
                msg: format!(
                "configuration {} is a cascade stage: it needs the {} segmentation of each case \
                     (--prev-stage DIR, or --lowres-model DIR to predict it first)",
                model.configuration, c.previous_stage
            ),
            })
        }
        (Some(c), Some(source)) => {
            let seg = prev_stage_seg_v2(source, case, &volumes, model, opts, progress)?;
            Some(V2PrevStage {
                seg,
                resampling: c.seg_resampling,
                foreground_labels: c.foreground_labels.clone(),
            })
        }
    };
    let prepared = v2_preprocess_volumes_cascade(volumes, prev_stage, &model.params);
    let (data, props, geometry) = prepared.map_err(|e| match e {
        PipelineError::Preprocess(p) => PipelineError::Input {
            path: first.to_path_buf(),
            msg: p.to_string(),
        },
        e => e,
    })?;
    report.preprocessed_shape = props.shape_after_resampling;
    // A buffer that cannot be allocated is this case's error naming its image (not an abort).
    let oom = crate::stages::naming_image(first);
    let (logits, tiles) =
        predict_logits_v2(&data, backends, model.window, opts, progress).map_err(&oom)?;
    drop(data);
    report.tiles = tiles;
    report.passes = tiles * opts.mirrors.len() * backends.len();
    write_case_v2(
        logits.view(),
        &props,
        &geometry,
        preview_image.as_ref().map(|a| a.view()),
        model,
        &paths,
        &case.name,
        opts,
    )
    .map_err(&oom)?;
    drop(logits);
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// The export of one case's merged logits (heads, z, y, x, preprocessed frame) with `model`: resampled
/// back, the label manager's non-linearity, labels in the image's frame, then `paths.segmentation` (and
/// with `opts.save_probabilities` the `.npz` and `.pkl`, with `preview_image` the `.png`) staged and
/// committed together. Shared by the streaming path and the file path's postprocess.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_case_v2(
    logits: ndarray::ArrayView4<f32>,
    props: &V2CaseProperties,
    geometry: &Geometry,
    preview_image: Option<ndarray::ArrayView3<f32>>,
    model: &V2Model,
    paths: &V2OutputPaths,
    name: &str,
    opts: &PredictOptions,
) -> Result<(), PipelineError> {
    let exported = export_v2(logits, props, &model.export, opts.save_probabilities)
        .map_err(PipelineError::from)?;
    let mut batch = nnu_fsio::Batch::new();
    if let Some(p) = &exported.probabilities {
        stage_probabilities_npz(&mut batch, &paths.npz, p, opts.compression_level)?;
        stage_properties_pkl(&mut batch, &paths.pkl, props, geometry)?;
    }
    if let Some(img) = preview_image {
        preview::stage_preview(
            &mut batch,
            &paths.png,
            img,
            exported.segmentation.view(),
            geometry,
            name,
            &opts.preview_options,
        )?;
    }
    stage_volume(
        &mut batch,
        &paths.segmentation,
        exported.segmentation.view(),
        geometry,
        &WriteOptions::default().compression_level(opts.compression_level),
    )?;
    batch.commit()?;
    Ok(())
}

/// Refuses a case whose number of channel files is not the model's, naming its first file.
pub(crate) fn check_channel_count(case: &Case, model: &V2Model) -> Result<(), PipelineError> {
    if case.files.len() != model.num_channels {
        return Err(PipelineError::Input {
            path: case.first_file()?.to_path_buf(),
            msg: format!(
                "case '{}' has {} channel file(s), the model expects {}",
                case.name,
                case.files.len(),
                model.num_channels
            ),
        });
    }
    Ok(())
}

/// The channels of `case` as read: its DICOM series, or its channel files.
pub(crate) fn read_case_channels(case: &Case) -> Result<Vec<Volume<f32>>, PipelineError> {
    match &case.dicom {
        Some(series) => Ok(vec![nnu_dicom::read_series(series)?]),
        None => read_channel_files(&case.files),
    }
}

/// The previous stage's segmentation of `case` (whose channels are `volumes`) for the cascade stage
/// `model`: read from the folder (checked against the first image's shape) or predicted in memory.
fn prev_stage_seg_v2(
    source: &mut V2PrevSource,
    case: &Case,
    volumes: &[Volume<f32>],
    model: &V2Model,
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Array3<f32>, PipelineError> {
    let first = case.first_file()?;
    let shape = volumes
        .first()
        .map(Volume::shape_zyx)
        .ok_or_else(|| PipelineError::Shape("no channel files given".into()))?;
    let stage_name = model
        .cascade
        .as_ref()
        .map_or("previous", |c| c.previous_stage.as_str());
    match source {
        V2PrevSource::Folder(dir) => {
            let path = crate::cascade::prev_stage_file(
                dir,
                case,
                &model.folder.dataset.file_ending,
                stage_name,
            )?;
            crate::cascade::read_prev_stage(&path, first, shape)
        }
        V2PrevSource::Predict { stage, keep } => {
            let geometry = volumes[0].geometry;
            let copies = volumes.to_vec();
            let (data, props, _) =
                v2_preprocess_volumes(copies, &stage.model.params).map_err(|e| match e {
                    PipelineError::Preprocess(p) => PipelineError::Input {
                        path: first.to_path_buf(),
                        msg: format!("{stage_name}: {p}"),
                    },
                    e => e,
                })?;
            let stage_opts = PredictOptions {
                mirrors: stage.mirrors,
                ..opts.clone()
            };
            let oom = crate::stages::naming_image(first);
            let (logits, _) = predict_logits_v2(
                &data,
                &mut stage.backends,
                stage.model.window,
                &stage_opts,
                progress,
            )
            .map_err(&oom)?;
            drop(data);
            let exported = export_v2(logits.view(), &props, &stage.model.export, false)
                .map_err(PipelineError::from)
                .map_err(&oom)?;
            if let Some(dir) = keep {
                crate::cascade::keep_prev_stage(
                    dir,
                    &case.name,
                    &exported.segmentation,
                    &geometry,
                    opts.compression_level,
                )?;
                // As the previous stage's own nnUNetv2_predict run would leave them beside its output.
                for note in crate::v2_out::copy_model_json(&stage.model.folder.dir, dir)? {
                    eprintln!("warning: {note}");
                }
            }
            Ok(exported.segmentation.mapv(f32::from))
        }
    }
}

/// Whether `dir` is an nnunetv2 model folder (`plans.json`, `dataset.json`, `fold_K/checkpoint_*.pth`)
/// rather than a v1 one.
pub fn is_v2_folder(dir: &Path) -> bool {
    nnu_artifacts::v2::detect(dir) == nnu_artifacts::v2::ModelKind::V2
}

/// The model folder of `configuration` beside the v2 model folder `dir`, named as nnunetv2 names its
/// results (`TRAINER__PLANS__CONFIGURATION`): `dir`'s name with its last `__` part replaced, e.g.
/// `.../nnUNetTrainer__nnUNetPlans__3d_lowres` for `.../nnUNetTrainer__nnUNetPlans__3d_cascade_fullres`.
/// `None` when the name has no `__`. Whether the folder exists is the caller's to check.
pub fn sibling_configuration_folder(dir: &Path, configuration: &str) -> Option<PathBuf> {
    let name = dir.file_name()?.to_str()?;
    let (head, _) = name.rsplit_once("__")?;
    Some(dir.with_file_name(format!("{head}__{configuration}")))
}

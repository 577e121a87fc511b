//! A model ready for inference: plans turned into preprocessing parameters, the patch, the classes, the
//! ONNX file of each fold and the optional `postprocessing.json`.

use std::path::{Path, PathBuf};

use nnu_artifacts::{ModelFolder, Plans};
use nnu_preprocessing::{
    IntensityProperties, Normalization, Order, Postprocessing, PreprocessParams,
};

use crate::PipelineError;

/// Everything inference needs from an nnU-Net v1 model folder.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The opened folder (plans, folds, trainer).
    pub folder: ModelFolder,
    /// Preprocessing parameters of the trainer's stage ([`ModelSpec::stage`]).
    pub params: PreprocessParams,
    /// Patch size (z, y, x) of the trainer's stage.
    pub patch: [usize; 3],
    /// Network outputs: foreground classes + background.
    pub num_classes: usize,
    /// Input modalities.
    pub num_modalities: usize,
    /// `postprocessing.json`, when the folder has one.
    pub postprocessing: Option<Postprocessing>,
    /// The plans stage the trainer was created with (`init[5]` of the `.model.pkl`: 0 for a `3d_lowres`
    /// model of two-stage plans, the last stage for 3d_fullres and cascades; the last one without a
    /// `.model.pkl`).
    pub stage: usize,
    /// For a cascade trainer (`nnUNetTrainerV2CascadeFullRes` and the like, `3d_cascade_fullres`): the
    /// foreground classes `1..num_classes` whose one-hot encoding of the previous stage's segmentation
    /// is stacked onto the images (`preprocess_multithreaded`'s `classes`).
    pub cascade_classes: Option<Vec<i32>>,
}

/// Fills [`PreprocessParams`] from the plans' 3d_fullres stage, as nnU-Net 1.7.1's `GenericPreprocessor` is
/// constructed by the trainer (`normalization_schemes`, `use_mask_for_norm`, `transpose_forward`,
/// `intensityproperties`) with `current_spacing` as the target.
pub fn params_from_plans(
    plans: &Plans,
    plans_path: &Path,
) -> Result<PreprocessParams, PipelineError> {
    params_from_plans_stage(plans, plans.stages.len().saturating_sub(1), plans_path)
}

/// [`params_from_plans`] for stage `stage` of the plans (0 is 3d_lowres in two-stage plans).
pub fn params_from_plans_stage(
    plans: &Plans,
    stage: usize,
    plans_path: &Path,
) -> Result<PreprocessParams, PipelineError> {
    let bad = |msg: String| PipelineError::Input {
        path: plans_path.to_path_buf(),
        msg,
    };
    let stage = plans.stages.get(stage).ok_or_else(|| {
        bad(format!(
            "the trainer's stage {stage} is not in plans_per_stage ({} stage(s))",
            plans.stages.len()
        ))
    })?;
    let spacing: [f64; 3] = stage.current_spacing.as_slice().try_into().map_err(|_| {
        bad(format!(
            "current_spacing {:?} is not 3-D (2-D plans are not supported)",
            stage.current_spacing
        ))
    })?;
    let t3 = |v: &[usize], key: &str| -> Result<[usize; 3], PipelineError> {
        v.try_into()
            .map_err(|_| bad(format!("{key} {v:?} is not a permutation of 3 axes")))
    };
    let transpose_forward = t3(&plans.transpose_forward, "transpose_forward")?;
    let transpose_backward = t3(&plans.transpose_backward, "transpose_backward")?;
    let mut normalization = Vec::with_capacity(plans.num_modalities);
    for c in 0..plans.num_modalities {
        let scheme = plans.normalization_schemes.get(c).ok_or_else(|| {
            bad(format!(
                "normalization_schemes has no entry for channel {c}"
            ))
        })?;
        let use_mask = plans.use_mask_for_norm.get(c).copied().unwrap_or(false);
        let stats = plans
            .intensity_properties
            .as_ref()
            .and_then(|p| p.get(c))
            .map(|p| {
                // nnU-Net (numpy 1.x value-based casting) applies the statistics to f32 data in f32.
                IntensityProperties {
                    mean: p.mean as f32,
                    sd: p.sd as f32,
                    percentile_00_5: p.percentile_00_5 as f32,
                    percentile_99_5: p.percentile_99_5 as f32,
                }
            });
        normalization.push(Normalization::from_scheme(scheme, use_mask, stats, c)?);
    }
    let mut params = PreprocessParams::new(spacing, normalization);
    params.transpose_forward = transpose_forward;
    params.transpose_backward = transpose_backward;
    if plans.preprocessor_name.as_deref() == Some("GenericPreprocessor_linearResampling") {
        params.order_data = Order::Linear;
    }
    Ok(params)
}

impl ModelSpec {
    /// Opens `dir` (an nnU-Net v1 model folder: `plans.pkl` and `fold_K/`) for 3-D inference.
    pub fn open(dir: &Path) -> Result<ModelSpec, PipelineError> {
        if nnu_artifacts::v2::detect(dir) == nnu_artifacts::v2::ModelKind::V2 {
            return Err(PipelineError::Input {
                path: dir.to_path_buf(),
                msg: "an nnunetv2 model folder (plans.json, dataset.json, fold_K/checkpoint_*.pth), \
                      not an nnU-Net v1 one (open it with nnu_pipeline::v2::V2Model; the tools take both)"
                        .into(),
            });
        }
        let folder = ModelFolder::open(dir)?;
        let stage_index = folder
            .trainer
            .as_ref()
            .and_then(|t| t.init.get(5))
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(folder.plans.stages.len().saturating_sub(1));
        let params = params_from_plans_stage(&folder.plans, stage_index, &folder.plans_path)?;
        let stage = &folder.plans.stages[stage_index];
        let cascade_classes = folder
            .trainer
            .as_ref()
            .filter(|t| t.name.contains("CascadeFullRes"))
            .map(|_| (1..=folder.plans.num_classes as i32).collect());
        let patch: [usize; 3] =
            stage
                .patch_size
                .as_slice()
                .try_into()
                .map_err(|_| PipelineError::Input {
                    path: folder.plans_path.clone(),
                    msg: format!(
                        "patch_size {:?} is not 3-D (2-D plans are not supported)",
                        stage.patch_size
                    ),
                })?;
        let pp_path = dir.join("postprocessing.json");
        let postprocessing = if pp_path.is_file() {
            let text =
                std::fs::read_to_string(&pp_path).map_err(|e| PipelineError::io(&pp_path, e))?;
            Some(
                Postprocessing::from_json_str(&text).map_err(|e| PipelineError::Input {
                    path: pp_path.clone(),
                    msg: e.to_string(),
                })?,
            )
        } else {
            None
        };
        Ok(ModelSpec {
            stage: stage_index,
            cascade_classes,
            num_classes: folder.plans.num_classes + 1,
            num_modalities: folder.plans.num_modalities,
            params,
            patch,
            postprocessing,
            folder,
        })
    }

    /// The network's input channels: the modalities, plus one per foreground class for a cascade
    /// trainer (`process_plans`: `num_input_channels += num_classes - 1`).
    pub fn input_channels(&self) -> usize {
        self.num_modalities + self.cascade_classes.as_ref().map_or(0, Vec::len)
    }

    /// The folds to use: `requested` (numbers), or every fold with a checkpoint when empty.
    pub fn fold_names(&self, requested: &[usize]) -> Result<Vec<String>, PipelineError> {
        if requested.is_empty() {
            return Ok(self.folder.folds.iter().map(|f| f.name.clone()).collect());
        }
        requested
            .iter()
            .map(|&k| {
                self.folder
                    .folds
                    .iter()
                    .find(|f| f.fold == Some(k))
                    .map(|f| f.name.clone())
                    .ok_or_else(|| PipelineError::Input {
                        path: self.folder.dir.join(format!("fold_{k}")),
                        msg: format!(
                            "fold {k} has neither {} nor {}",
                            nnu_artifacts::model::FINAL_CHECKPOINT,
                            nnu_artifacts::model::FOLD_ONNX
                        ),
                    })
            })
            .collect()
    }

    /// The ONNX file of a fold: `<dir>/<fold>/model.onnx`, else `<dir>/model.onnx` when there is one fold.
    /// The error says how to make one with `nnu-export-onnx`.
    pub fn onnx_for_fold(&self, fold: &str) -> Result<PathBuf, PipelineError> {
        let candidates = [
            self.folder.dir.join(fold).join("model.onnx"),
            self.folder.dir.join("model.onnx"),
        ];
        candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| PipelineError::Input {
            path: self.folder.dir.join(fold).join("model.onnx"),
            msg: format!(
                "no ONNX model; make one with `nnu-export-onnx --model {} --fold {} -o {}` or pass --onnx",
                self.folder.dir.display(),
                fold.trim_start_matches("fold_"),
                self.folder.dir.join(fold).join("model.onnx").display()
            ),
        })
    }
}

/// Where nnU-Net 1.7.1's `predict_simple.py` looks for the 3d_lowres model of a cascade trainer's
/// model folder `RESULTS/3d_cascade_fullres/TASK/TRAINER__PLANS`:
/// `RESULTS/3d_lowres/TASK/PREVIOUS__PLANS`, `PREVIOUS` the cascade trainer's `previous_trainer`
/// (`init[8]` of its `.model.pkl`, `nnUNetTrainerV2` by default). `None` when the folder is not laid
/// out that way; whether the result exists is the caller's to check.
pub fn v1_lowres_folder(model: &ModelSpec) -> Option<PathBuf> {
    let dir = &model.folder.dir;
    let name = dir.file_name()?.to_str()?;
    let (_, plans_id) = name.split_once("__")?;
    let task = dir.parent()?;
    let results = task.parent()?.parent()?;
    let previous = model
        .folder
        .trainer
        .as_ref()
        .and_then(|t| t.init.get(8))
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or_else(|| "nnUNetTrainerV2".to_owned());
    Some(
        results
            .join("3d_lowres")
            .join(task.file_name()?)
            .join(format!("{previous}__{plans_id}")),
    )
}

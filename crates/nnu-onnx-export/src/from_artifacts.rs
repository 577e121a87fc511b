//! Glue to `nnu-artifacts`: a [`NetworkSpec`] from plans, a [`StateDict`] from a torch checkpoint,
//! and both from an nnU-Net v1 model folder.

use std::path::{Path, PathBuf};

use nnu_artifacts::{Checkpoint, Plans, TrainerInfo};

use crate::error::{ExportError, Result};
use crate::spec::{Family, NetworkSpec};
use crate::state_dict::StateDict;
use crate::synthetic::SyntheticConfig;

/// The network description the trainer derives from `plans` for `stage`
/// (`nnUNetTrainer.process_plans`: the stage's `patch_size`, `pool_op_kernel_sizes`,
/// `conv_kernel_sizes`, and the plans' `conv_per_stage`).
pub fn spec_from_plans(plans: &Plans, stage: usize, family: Family) -> Result<NetworkSpec> {
    let st = plans.stages.get(stage).ok_or_else(|| {
        ExportError::InvalidSpec(format!(
            "the plans have no stage {stage} ({} stage(s))",
            plans.stages.len()
        ))
    })?;
    let spec = NetworkSpec {
        family,
        patch_size: st.patch_size.clone(),
        pool_op_kernel_sizes: st.pool_op_kernel_sizes.clone(),
        conv_kernel_sizes: st.conv_kernel_sizes.clone(),
        conv_per_stage: plans.conv_per_stage,
    };
    spec.validate()?;
    Ok(spec)
}

/// What a network with synthetic weights is given besides its plans (`nnu-export-onnx --random-weights`):
/// `None` fields come from the plans, else from [`SyntheticConfig::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticOverrides {
    /// `base_num_features` (default: the plans' value).
    pub base_num_features: Option<usize>,
    /// `max_num_features`.
    pub max_num_features: usize,
    /// Network outputs per head, background included (default: the plans' classes + 1).
    pub num_classes: Option<usize>,
    /// Seed of the weight generator.
    pub seed: u64,
}

/// The network of `plans` (its last stage, the full-resolution one; `None`: Task003's 3d_fullres, see
/// [`NetworkSpec::task003_fullres`]) as `family`, and the configuration of its synthetic weights: the
/// plans' modalities, `base_num_features` and output channels unless `overrides` gives them.
pub fn synthetic_from_plans(
    plans: Option<&Plans>,
    family: Family,
    overrides: &SyntheticOverrides,
) -> Result<(NetworkSpec, SyntheticConfig)> {
    let spec = match plans {
        Some(p) => spec_from_plans(p, p.stages.len().saturating_sub(1), family)?,
        None => NetworkSpec::task003_fullres(family),
    };
    let defaults = SyntheticConfig::default();
    let cfg = SyntheticConfig {
        input_channels: plans.map_or(defaults.input_channels, |p| p.num_modalities),
        base_num_features: overrides
            .base_num_features
            .or(plans.map(|p| p.base_num_features))
            .unwrap_or(defaults.base_num_features),
        max_num_features: overrides.max_num_features,
        num_classes: overrides
            .num_classes
            .or(plans.map(Plans::num_output_channels))
            .unwrap_or(defaults.num_classes),
        seed: overrides.seed,
    };
    Ok((spec, cfg))
}

/// Converts a loaded checkpoint's `state_dict` to f32 tensors, in checkpoint order, releasing
/// each source tensor as it goes.
pub fn state_dict_from_checkpoint(checkpoint: Checkpoint) -> Result<StateDict> {
    let mut sd = StateDict::new();
    for t in checkpoint.state_dict {
        let data = t.to_f32();
        sd.insert(t.name, t.shape, data)?;
    }
    Ok(sd)
}

/// The stage the trainer was created with: `init[5]` of the `.model.pkl` (the `stage` argument of
/// nnU-Net v1 trainers); `None` there means the plans' only stage, and a missing pickle means the
/// full-resolution (last) stage.
fn trainer_stage(trainer: Option<&TrainerInfo>, plans: &Plans) -> usize {
    trainer
        .and_then(|t| t.init.get(5))
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(plans.stages.len().saturating_sub(1))
}

/// Everything needed to export one fold of a model folder.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The network description (family from the trainer name, hyper-parameters from the plans).
    pub spec: NetworkSpec,
    /// The checkpoint's weights.
    pub state_dict: StateDict,
    /// Trainer class name (`nnUNetPlusPlusTrainerV2`, ...), or empty when no `.model.pkl` exists.
    pub trainer: String,
    /// The plans stage used.
    pub stage: usize,
    /// The checkpoint file read.
    pub checkpoint: PathBuf,
}

/// Loads `MODEL_DIR/fold_K/CHECKPOINT.model` (`fold = None` reads `all/`) and its `.model.pkl`.
///
/// The plans are the ones stored in the `.model.pkl` (what nnU-Net's `restore_model` uses), else
/// `MODEL_DIR/plans.pkl` (or `plans.json`). The family comes from the trainer name; without a
/// `.model.pkl`, `family` must be given. An explicit `family` overrides the trainer name.
pub fn load_model_folder(
    model_dir: &Path,
    fold: Option<usize>,
    checkpoint_name: &str,
    family: Option<Family>,
) -> Result<LoadedModel> {
    let fold_dir = model_dir.join(fold.map_or_else(|| "all".to_string(), |k| format!("fold_{k}")));
    let ckpt_path = fold_dir.join(format!("{checkpoint_name}.model"));
    let pkl_path = fold_dir.join(format!("{checkpoint_name}.model.pkl"));
    if !ckpt_path.is_file() {
        return Err(nnu_artifacts::Error::MissingFile {
            path: ckpt_path,
            what: "the checkpoint to export".into(),
        }
        .into());
    }
    let trainer = if pkl_path.is_file() {
        Some(TrainerInfo::load(&pkl_path)?)
    } else {
        None
    };
    let plans = match trainer.as_ref().and_then(|t| t.plans.clone()) {
        Some(p) => p,
        None => {
            let path = ["plans.pkl", "plans.json"]
                .iter()
                .map(|n| model_dir.join(n))
                .find(|p| p.is_file())
                .unwrap_or_else(|| model_dir.join("plans.pkl"));
            Plans::load(&path)?
        }
    };
    let family = match (family, &trainer) {
        (Some(f), _) => f,
        (None, Some(t)) => Family::from_trainer_name(&t.name),
        (None, None) => {
            return Err(ExportError::InvalidSpec(format!(
                "{}: missing, so the network family is unknown (pass it explicitly)",
                pkl_path.display()
            )))
        }
    };
    let stage = trainer_stage(trainer.as_ref(), &plans);
    let spec = spec_from_plans(&plans, stage, family)?;
    let state_dict = state_dict_from_checkpoint(Checkpoint::load(&ckpt_path)?)?;
    Ok(LoadedModel {
        spec,
        state_dict,
        trainer: trainer.map(|t| t.name).unwrap_or_default(),
        stage,
        checkpoint: ckpt_path,
    })
}

/// Everything needed to export one fold of an nnunetv2 model folder.
#[derive(Debug, Clone)]
pub struct LoadedV2Model {
    /// The configuration's name (from the checkpoint's `init_args`, else the folder name
    /// `Trainer__Plans__CONFIGURATION`, else `3d_fullres`).
    pub configuration: String,
    /// The typed network of that configuration.
    pub arch: nnu_artifacts::v2::UNetArchitecture,
    /// The configuration's `patch_size`.
    pub patch_size: Vec<usize>,
    /// The checkpoint's `network_weights`.
    pub state_dict: StateDict,
    /// `trainer_name` from the checkpoint (empty when absent).
    pub trainer: String,
    /// The checkpoint file read.
    pub checkpoint: PathBuf,
}

/// The configuration a v2 model folder was trained with when the checkpoint does not say: the last
/// `__`-separated part of the folder name (`nnUNetTrainer__nnUNetPlans__3d_fullres`), if it names a
/// configuration of the plans, else [`nnu_artifacts::v2::DEFAULT_CONFIGURATION`].
pub fn configuration_from_folder(model: &nnu_artifacts::v2::V2ModelFolder) -> String {
    model.configuration_from_name()
}

/// Loads fold `fold` (`None` for `fold_all`) of an nnunetv2 model folder: `checkpoint_name`
/// (`checkpoint_final.pth` or `checkpoint_best.pth`), the configuration it was trained with, and that
/// configuration's network from `plans.json`.
pub fn load_v2_model_folder(
    model: &nnu_artifacts::v2::V2ModelFolder,
    fold: Option<usize>,
    checkpoint_name: &str,
) -> Result<LoadedV2Model> {
    let ckpt = model.checkpoint(fold, checkpoint_name)?;
    let info = ckpt.v2.clone().unwrap_or(nnu_artifacts::V2TrainerInfo {
        trainer_name: None,
        inference_allowed_mirroring_axes: None,
        configuration: None,
        fold: None,
    });
    let configuration = info
        .configuration
        .clone()
        .unwrap_or_else(|| configuration_from_folder(model));
    let cfg = model.plans.configuration(&configuration)?;
    let arch = cfg.network()?;
    let checkpoint = ckpt.path.clone();
    Ok(LoadedV2Model {
        configuration,
        arch,
        patch_size: cfg.patch_size,
        state_dict: state_dict_from_checkpoint(ckpt)?,
        trainer: info.trainer_name.unwrap_or_default(),
        checkpoint,
    })
}

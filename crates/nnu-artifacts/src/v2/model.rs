//! A trained nnunetv2 model folder, as `nnUNetv2_predict_from_modelfolder` takes it:
//! `dataset.json`, `plans.json`, `fold_K/checkpoint_final.pth` (or `checkpoint_best.pth`).

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

use super::dataset::DatasetJson;
use super::plans::V2Plans;

/// The checkpoint nnunetv2 writes at the end of training.
pub const CHECKPOINT_FINAL: &str = "checkpoint_final.pth";
/// The checkpoint with the best pseudo-Dice during training.
pub const CHECKPOINT_BEST: &str = "checkpoint_best.pth";

/// Whether state_dict key `key` of a `dynamic_network_architectures` network repeats another entry: each
/// `ConvDropoutNormReLU` registers its conv and norm both by name and inside `all_modules`, and
/// `UNetDecoder` holds the encoder, so `*.all_modules.*` and `decoder.encoder.*` alias other keys.
pub fn is_alias_key(key: &str) -> bool {
    key.starts_with("decoder.encoder.") || key.contains(".all_modules.")
}

/// Parameters of a v2 checkpoint without the aliases ([`is_alias_key`]): what
/// `sum(p.numel() for p in network.parameters())` gives.
pub fn num_parameters_v2(checkpoint: &Checkpoint) -> usize {
    checkpoint
        .state_dict
        .iter()
        .filter(|t| !is_alias_key(&t.name))
        .map(crate::checkpoint::NamedTensor::numel)
        .sum()
}

/// Which nnU-Net generation a model folder belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// nnU-Net v1: `plans.pkl` and `fold_K/model_final_checkpoint.model`.
    V1,
    /// nnunetv2: `plans.json`, `dataset.json`, `fold_K/checkpoint_*.pth`.
    V2,
}

/// Tells v1 and v2 model folders apart by what they hold: `dataset.json` + `plans.json` with a
/// `configurations` entry, or any `fold_K/checkpoint_*.pth`, is v2; everything else is treated as v1 (whose
/// reader then names what is missing).
pub fn detect(dir: impl AsRef<Path>) -> ModelKind {
    let dir = dir.as_ref();
    let plans_json = dir.join("plans.json");
    if dir.join("plans.pkl").is_file() {
        return ModelKind::V1;
    }
    if plans_json.is_file() {
        let is_v2 = std::fs::read(&plans_json)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.get("configurations").is_some());
        if is_v2 {
            return ModelKind::V2;
        }
    }
    let has_pth = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name().to_string_lossy().starts_with("fold_")
                && (e.path().join(CHECKPOINT_FINAL).is_file()
                    || e.path().join(CHECKPOINT_BEST).is_file())
        });
    if has_pth {
        ModelKind::V2
    } else {
        ModelKind::V1
    }
}

/// One fold folder of a v2 model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2FoldDir {
    /// `fold_0` .. `fold_4`, or `fold_all`.
    pub name: String,
    /// The fold number (`None` for `fold_all`).
    pub fold: Option<usize>,
    /// `checkpoint_final.pth`, when present.
    pub checkpoint_final: Option<PathBuf>,
    /// `checkpoint_best.pth`, when present.
    pub checkpoint_best: Option<PathBuf>,
    /// `model.onnx` exported next to the checkpoint, when present.
    pub onnx: Option<PathBuf>,
}

impl V2FoldDir {
    /// The checkpoint named `name` (`checkpoint_final.pth` or `checkpoint_best.pth`), if present.
    pub fn checkpoint(&self, name: &str) -> Option<&Path> {
        match name {
            CHECKPOINT_FINAL => self.checkpoint_final.as_deref(),
            CHECKPOINT_BEST => self.checkpoint_best.as_deref(),
            _ => None,
        }
    }
}

/// An opened nnunetv2 model folder.
#[derive(Clone, Debug)]
pub struct V2ModelFolder {
    /// The folder.
    pub dir: PathBuf,
    /// `plans.json`
    pub plans: V2Plans,
    /// `dataset.json`
    pub dataset: DatasetJson,
    /// Folds with a checkpoint or a `model.onnx`, sorted (`fold_0`, ..., then `fold_all`).
    pub folds: Vec<V2FoldDir>,
}

impl V2ModelFolder {
    /// Opens `dir`: reads `plans.json` and `dataset.json` and lists the folds. Fails, naming the file, when
    /// either JSON is missing or malformed or no fold holds a checkpoint or an ONNX.
    pub fn open(dir: impl AsRef<Path>) -> Result<V2ModelFolder> {
        let dir = dir.as_ref().to_owned();
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir,
                what: "the model folder does not exist".into(),
            });
        }
        let need = |name: &str, what: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::MissingFile {
                    path: p,
                    what: what.into(),
                })
            }
        };
        let plans = V2Plans::load(need("plans.json", "the nnunetv2 plans")?)?;
        let dataset = DatasetJson::load(need("dataset.json", "the nnunetv2 dataset.json")?)?;
        let mut folds = Vec::new();
        for (name, fold, path) in crate::model::fold_entries(&dir, "fold_all")? {
            let file = |n: &str| Some(path.join(n)).filter(|p| p.is_file());
            let f = V2FoldDir {
                name,
                fold,
                checkpoint_final: file(CHECKPOINT_FINAL),
                checkpoint_best: file(CHECKPOINT_BEST),
                onnx: file(crate::model::FOLD_ONNX),
            };
            if f.checkpoint_final.is_some() || f.checkpoint_best.is_some() || f.onnx.is_some() {
                folds.push(f);
            }
        }
        if folds.is_empty() {
            return Err(Error::MissingFile {
                path: dir.join("fold_0").join(CHECKPOINT_FINAL),
                what: "no fold_K/ folder holds a checkpoint_final.pth, checkpoint_best.pth or model.onnx"
                    .into(),
            });
        }
        Ok(V2ModelFolder {
            dir,
            plans,
            dataset,
            folds,
        })
    }

    /// The fold folder for fold `k` (`None` for `fold_all`).
    pub fn fold(&self, k: Option<usize>) -> Result<&V2FoldDir> {
        self.folds.iter().find(|f| f.fold == k).ok_or_else(|| {
            let name = k.map_or_else(|| "fold_all".to_owned(), |k| format!("fold_{k}"));
            Error::MissingFile {
                path: self.dir.join(name).join(CHECKPOINT_FINAL),
                what: "the requested fold".into(),
            }
        })
    }

    /// Loads checkpoint `name` (`checkpoint_final.pth` or `checkpoint_best.pth`) of fold `k`.
    pub fn checkpoint(&self, k: Option<usize>, name: &str) -> Result<Checkpoint> {
        let fold = self.fold(k)?;
        match fold.checkpoint(name) {
            Some(p) => Checkpoint::load(p),
            None => Err(Error::MissingFile {
                path: self.dir.join(&fold.name).join(name),
                what: "the fold's checkpoint".into(),
            }),
        }
    }

    /// The configuration the folder was trained with when the checkpoint does not say: the last
    /// `__`-separated part of the folder name (`nnUNetTrainer__nnUNetPlans__3d_fullres`), if it names a
    /// configuration of the plans, else [`DEFAULT_CONFIGURATION`](super::DEFAULT_CONFIGURATION).
    pub fn configuration_from_name(&self) -> String {
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit("__").next())
            .filter(|c| self.plans.configuration_names.iter().any(|n| n == c))
            .unwrap_or(super::DEFAULT_CONFIGURATION)
            .to_owned()
    }
}

//! A model folder as nnU-Net v1 leaves it: `plans.pkl` plus `fold_K/model_final_checkpoint.model(.pkl)`,
//! or a deployment copy of it whose folds hold only the exported `model.onnx`.

use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, TrainerInfo};
use crate::error::{Error, Result};
use crate::plans::Plans;

/// The checkpoint file name nnU-Net v1 uses for the final model of a fold.
pub const FINAL_CHECKPOINT: &str = "model_final_checkpoint.model";

/// The file name of a fold's exported network (what `nnu-export-onnx` writes by default).
pub const FOLD_ONNX: &str = "model.onnx";

/// The fold folders of model folder `dir`, as (name, fold number, path), sorted `fold_0`, `fold_1`, ...
/// then `all_name` (`all` in nnU-Net v1, `fold_all` in nnunetv2), which has no number. Other entries are
/// skipped; whether a fold holds anything usable is the caller's question.
pub(crate) fn fold_entries(
    dir: &Path,
    all_name: &str,
) -> Result<Vec<(String, Option<usize>, PathBuf)>> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let mut folds = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        let fold = if name == all_name {
            None
        } else {
            match name.strip_prefix("fold_").map(str::parse::<usize>) {
                Some(Ok(k)) => Some(k),
                _ => continue,
            }
        };
        folds.push((name, fold, e.path()));
    }
    folds.sort_by_key(|(_, fold, _)| (fold.is_none(), *fold));
    Ok(folds)
}

/// One trained fold found in a model folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldDir {
    /// The folder name: `fold_0` .. `fold_4`, or `all`.
    pub name: String,
    /// The fold number (`None` for `all`).
    pub fold: Option<usize>,
    /// `<dir>/model_final_checkpoint.model`, when present.
    pub checkpoint: Option<PathBuf>,
    /// `<dir>/model.onnx`, when present (a deployment folder may hold only this).
    pub onnx: Option<PathBuf>,
    /// `<dir>/model_final_checkpoint.model.pkl`, when present.
    pub trainer_pkl: Option<PathBuf>,
}

/// An opened model folder: the plans and the folds that have a final checkpoint or an exported ONNX.
#[derive(Clone, Debug)]
pub struct ModelFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Where the plans were read from (`plans.pkl`, else `plans.json`).
    pub plans_path: PathBuf,
    /// The plans.
    pub plans: Plans,
    /// Folds with a `model_final_checkpoint.model` or a `model.onnx`, sorted (`fold_0`, `fold_1`, ...,
    /// then `all`).
    pub folds: Vec<FoldDir>,
    /// The trainer info of the first fold that has a `.model.pkl`, if any.
    pub trainer: Option<TrainerInfo>,
}

impl ModelFolder {
    /// Opens `dir`: reads the plans and lists the folds. Fails, naming the file, when the plans are missing
    /// or no fold has a checkpoint or an ONNX.
    pub fn open(dir: impl AsRef<Path>) -> Result<ModelFolder> {
        let dir = dir.as_ref().to_owned();
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir,
                what: "the model folder does not exist".into(),
            });
        }
        let plans_path = ["plans.pkl", "plans.json"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::MissingFile {
                path: dir.join("plans.pkl"),
                what: "the nnU-Net v1 plans file that training writes into the model folder".into(),
            })?;
        let plans = Plans::load(&plans_path)?;
        let mut folds = Vec::new();
        for (name, fold, path) in fold_entries(&dir, "all")? {
            let checkpoint = Some(path.join(FINAL_CHECKPOINT)).filter(|p| p.is_file());
            let onnx = Some(path.join(FOLD_ONNX)).filter(|p| p.is_file());
            if checkpoint.is_none() && onnx.is_none() {
                continue;
            }
            let pkl = path.join(format!("{FINAL_CHECKPOINT}.pkl"));
            folds.push(FoldDir {
                name,
                fold,
                checkpoint,
                onnx,
                trainer_pkl: pkl.is_file().then_some(pkl),
            });
        }
        if folds.is_empty() {
            return Err(Error::MissingFile {
                path: dir.join("fold_0").join(FINAL_CHECKPOINT),
                what: "no fold_K/ or all/ folder holds a final checkpoint or a model.onnx".into(),
            });
        }
        let trainer = match folds.iter().find_map(|f| f.trainer_pkl.as_ref()) {
            Some(p) => Some(TrainerInfo::load(p)?),
            None => None,
        };
        Ok(ModelFolder {
            dir,
            plans_path,
            plans,
            folds,
            trainer,
        })
    }

    /// The fold folder for fold `k` (`None` for `all`).
    pub fn fold(&self, k: Option<usize>) -> Result<&FoldDir> {
        self.folds.iter().find(|f| f.fold == k).ok_or_else(|| {
            let name = k.map_or_else(|| "all".to_owned(), |k| format!("fold_{k}"));
            Error::MissingFile {
                path: self.dir.join(name).join(FINAL_CHECKPOINT),
                what: "the requested fold".into(),
            }
        })
    }

    /// Loads the final checkpoint of fold `k` (`None` for `all`); an error naming the file when that fold
    /// holds only an ONNX.
    pub fn checkpoint(&self, k: Option<usize>) -> Result<Checkpoint> {
        let fold = self.fold(k)?;
        match &fold.checkpoint {
            Some(path) => Checkpoint::load(path),
            None => Err(Error::MissingFile {
                path: self.dir.join(&fold.name).join(FINAL_CHECKPOINT),
                what: "the fold's final checkpoint (this fold holds only an ONNX)".into(),
            }),
        }
    }
}

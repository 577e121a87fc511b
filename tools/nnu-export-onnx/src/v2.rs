//! `--model` on an nnunetv2 model folder: PlainConvUNet / ResidualEncoderUNet from `plans.json` and
//! `fold_K/checkpoint_final.pth`.

use std::path::Path;

use nnu_artifacts::v2::{V2ModelFolder, CHECKPOINT_FINAL};
use nnu_onnx_export::from_artifacts::load_v2_model_folder;
use nnu_onnx_export::v2::export_v2;
use nnu_onnx_export::ExportOptions;

use crate::{export_failure, spinner, write_and_report, Failure};

/// The v2 checkpoint file for `--checkpoint`: the v1 default maps to `checkpoint_final.pth`, a name
/// without extension gets `.pth` (`checkpoint_best` -> `checkpoint_best.pth`).
fn checkpoint_file(arg: &str) -> String {
    match arg {
        "model_final_checkpoint" => CHECKPOINT_FINAL.to_owned(),
        a if a.ends_with(".pth") => a.to_owned(),
        a => format!("{a}.pth"),
    }
}

/// Exports fold `fold` (`None` = `fold_all`) of the v2 model folder `dir` to `output`.
pub fn run_v2(
    dir: &Path,
    fold: Option<usize>,
    checkpoint: &str,
    output: &Path,
    options: &ExportOptions,
) -> Result<(), Failure> {
    let pb = spinner("reading weights");
    let model = V2ModelFolder::open(dir).map_err(|e| export_failure(dir, e.into()))?;
    let loaded = load_v2_model_folder(&model, fold, &checkpoint_file(checkpoint))
        .map_err(|e| export_failure(dir, e))?;
    pb.set_message(format!("building {}", loaded.arch.class.name()));
    let exported = export_v2(&loaded.arch, &loaded.patch_size, loaded.state_dict, options)
        .map_err(|e| export_failure(&loaded.checkpoint, e))?;
    write_and_report(
        pb,
        &exported,
        output,
        options,
        &loaded.patch_size,
        &format!(
            "{} from {} ({}, {})",
            loaded.arch.class.name(),
            loaded.checkpoint.display(),
            loaded.trainer,
            loaded.configuration
        ),
    )
}

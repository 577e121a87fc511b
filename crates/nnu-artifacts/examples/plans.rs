//! What an nnU-Net v1 model folder holds, read without Python: the full-resolution stage of `plans.pkl`
//! (patch, spacing, normalisation), the classes, and the folds with their checkpoints:
//!
//! ```sh
//! cargo run --release -p nnu-artifacts --example plans -- MODEL_DIR
//! ```
//!
//! `MODEL_DIR` is e.g. `Task003_Liver/nnUNetPlusPlusTrainerV2__nnUNetPlansv2.1` (the `nnu-inspect` tool
//! prints more, v2 folders included).
use nnu_artifacts::ModelFolder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: plans MODEL_DIR")?;
    let model = ModelFolder::open(&dir)?;
    let stage = model.plans.fullres_stage();
    println!("{dir}");
    println!(
        "  patch {:?} at spacing {:?}",
        stage.patch_size, stage.current_spacing
    );
    let p = &model.plans;
    println!(
        "  {} modalities {:?}, normalisation {:?}, {} classes {:?}",
        p.num_modalities, p.modalities, p.normalization_schemes, p.num_classes, p.all_classes
    );
    println!(
        "  {} stage(s), {} base features, {} convolutions per stage",
        p.num_stages, p.base_num_features, p.conv_per_stage
    );
    for fold in &model.folds {
        let show = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or("-".to_string(), |p| p.display().to_string())
        };
        println!(
            "  {}: checkpoint {}, onnx {}",
            fold.name,
            show(&fold.checkpoint),
            show(&fold.onnx)
        );
    }
    Ok(())
}

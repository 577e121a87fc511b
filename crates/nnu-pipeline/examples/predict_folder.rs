//! Predicts every case of a folder with an nnU-Net v1 model folder, the way `nnu-predict` does it but in a
//! dozen lines of library calls: find the cases, load one CPU backend per fold (the native engine, tract
//! where it lacks an operator), and predict each case into the output folder.
//!
//! ```text
//! cargo run --release -p nnu-pipeline --example predict_folder -- MODEL_DIR IMAGES_DIR OUT_DIR [THREADS]
//! ```
//! For example, with the reference model of `../shared/reference` or a Task003 folder of nnU-Net 1.7.1
//! (`nnUNetTrainerV2__nnUNetPlansv2.1`, its `fold_K/model_final_checkpoint.model` or `model.onnx`).

use std::path::PathBuf;

use nnu_pipeline::cases::discover_cases;
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::predict::predict_case;
use nnu_pipeline::run::{load_cpu_backends, BackendKind, CpuBackendOptions};
use nnu_pipeline::stages::PredictOptions;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, images, out] = [0, 1, 2].map(|i| args.get(i).map(PathBuf::from));
    let (Some(model), Some(images), Some(out)) = (model, images, out) else {
        return Err("usage: predict_folder MODEL_DIR IMAGES_DIR OUT_DIR [THREADS]".into());
    };
    let threads: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;

    let model = ModelSpec::open(&model)?;
    let options = CpuBackendOptions::new(BackendKind::Auto, threads);
    let mut backends = load_cpu_backends(&model, &[], None, &options)?; // every fold
    let opts = PredictOptions::default(); // nnU-Net's: step 0.5, eight mirrors, Gaussian weights
    for case in discover_cases(&images)? {
        let report = predict_case(&case, &model, &mut backends, &out, &opts, &mut |_, _| {})?;
        println!(
            "{}: {} tiles -> {}",
            report.name,
            report.tiles,
            report.output.display()
        );
    }
    Ok(())
}

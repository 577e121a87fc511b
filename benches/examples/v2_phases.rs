//! The phases of `nnu-predict` on one case with an nnunetv2 model, timed one by one in a single process
//! (our side of `benches/compare/v2_predict.py`, whose reference side times nnunetv2's
//! `DefaultPreprocessor.run_case`, `predict_logits_from_preprocessed_data` and
//! `export_prediction_from_logits` the same way). Mirroring is off (as `nnu-predict --disable_tta`).
//! Prints one JSON line: the seconds of each phase and the peak RSS (`VmHWM`) after it.
//!
//! ```text
//! cargo run --release -p nnu-benches --example v2_phases -- MODEL_DIR CASE_0000.nii.gz OUT.nii.gz [THREADS]
//! ```
//!
//! - `load`: the model folder and the fold-0 network built from its checkpoint;
//! - `preprocess`: read the image, crop, transpose, normalise, resample (`v2_preprocess_files`);
//! - `predict`: the sliding window over the preprocessed array (`predict_logits_v2`);
//! - `export`: logits back to the image's frame and argmax (`export_v2`), then the `.nii.gz` write.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use nnu_pipeline::run::{init_thread_pool, BackendKind, CpuBackendOptions};
use nnu_pipeline::stages::PredictOptions;
use nnu_pipeline::v2::{load_v2_backends, predict_logits_v2, v2_preprocess_files, V2Model};
use nnu_preprocessing::v2::export_v2;
use nnu_tiling::MirrorSet;
use nnu_volume::{write_volume, WriteOptions};

/// Peak resident set size of this process so far, in MiB (`VmHWM` of `/proc/self/status`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run(model_dir: &Path, image: &Path, out: &Path, threads: usize) -> Result<String, String> {
    init_thread_pool(Some(threads));
    let mut lines = Vec::new();
    let mut phase = |name: &str, t: Instant| {
        lines.push(format!(
            "\"{name}\": {{\"seconds\": {:.3}, \"peak_rss_mib\": {:.1}}}",
            t.elapsed().as_secs_f64(),
            peak_rss_mib()
        ));
    };
    let t = Instant::now();
    let model =
        V2Model::open(model_dir, None, "checkpoint_final.pth").map_err(|e| e.to_string())?;
    let mut loaded = load_v2_backends(
        &model,
        &[0],
        &CpuBackendOptions::new(BackendKind::Auto, threads),
    )
    .map_err(|e| e.to_string())?;
    phase("load", t);

    let t = Instant::now();
    let (data, props, geometry) =
        v2_preprocess_files(&[image], &model.params).map_err(|e| e.to_string())?;
    phase("preprocess", t);

    let opts = PredictOptions {
        mirrors: MirrorSet::identity_only(),
        ..PredictOptions::default()
    };
    let t = Instant::now();
    let (logits, tiles) = predict_logits_v2(
        &data,
        &mut loaded.backends,
        model.window,
        &opts,
        &mut |_, _| {},
    )
    .map_err(|e| e.to_string())?;
    drop(data);
    phase("predict", t);

    let t = Instant::now();
    let exported =
        export_v2(logits.view(), &props, &model.export, false).map_err(|e| e.to_string())?;
    drop(logits);
    write_volume(
        out,
        exported.segmentation.view(),
        &geometry,
        &WriteOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    phase("export", t);
    Ok(format!("{{\"tiles\": {tiles}, {}}}", lines.join(", ")))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: v2_phases MODEL_DIR CASE_0000.nii.gz OUT.nii.gz [THREADS]");
        return ExitCode::from(2);
    }
    let threads = match args.get(3).map(|s| s.parse::<usize>()) {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: THREADS must be a positive number, got {}", args[3]);
            return ExitCode::from(2);
        }
    };
    let (model, image, out) = (
        PathBuf::from(&args[0]),
        PathBuf::from(&args[1]),
        PathBuf::from(&args[2]),
    );
    match run(&model, &image, &out, threads) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

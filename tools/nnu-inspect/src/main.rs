//! `nnu-inspect`: print what an nnU-Net v1 or nnunetv2 model folder holds: trainer, classes, patch, spacing,
//! normalisation, parameters, folds.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_artifacts::v2::{detect, ModelKind, V2ModelFolder};
use nnu_artifacts::{Checkpoint, ModelFolder, Plans};

mod v2;

/// Print what an nnU-Net v1 or nnunetv2 model folder holds (told apart by the files it holds): trainer, classes, patch size, spacing, normalisation,
/// number of parameters and the folds found (MODEL_DIR/plans.pkl and MODEL_DIR/fold_K/model_final_checkpoint.model).
#[derive(Parser, Debug)]
#[command(
    name = "nnu-inspect",
    version,
    about,
    after_help = "Example:\n  nnu-inspect Task003_Liver/nnUNetPlusPlusTrainerV2__nnUNetPlansv2.1\n\nExit status: 0 printed, 2 unusable model folder (the file and the problem are named)."
)]
struct Args {
    /// The model folder, e.g. .../nnUNetPlusPlusTrainerV2__nnUNetPlansv2.1.
    #[arg(value_name = "MODEL_DIR", required_unless_present = "model")]
    model_dir: Option<PathBuf>,
    /// The model folder, as with the other tools (instead of MODEL_DIR).
    #[arg(
        short = 'm',
        long,
        value_name = "MODEL_DIR",
        conflicts_with = "model_dir"
    )]
    model: Option<PathBuf>,
    /// Skip loading the checkpoints (no parameter counts; only the plans and the file listing).
    #[arg(long)]
    no_weights: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Every error of nnu-artifacts starts with the file it concerns; an error is an unusable input.
    nnu_cli::exit_status(run(&args).map(|()| true))
}

fn run(args: &Args) -> Result<(), nnu_artifacts::Error> {
    let Some(dir) = args.model_dir.as_ref().or(args.model.as_ref()) else {
        unreachable!("clap requires MODEL_DIR or --model")
    };
    if detect(dir) == ModelKind::V2 {
        let model = V2ModelFolder::open(dir)?;
        let checkpoints = if args.no_weights {
            vec![None; model.folds.len()]
        } else {
            v2::load_checkpoints(&model)?
        };
        print!("{}", v2::describe(&model, &checkpoints)?);
        return Ok(());
    }
    let model = ModelFolder::open(dir)?;
    let checkpoints = if args.no_weights {
        Vec::new()
    } else {
        load_checkpoints(&model)?
    };
    print!("{}", describe(&model, &checkpoints));
    Ok(())
}

fn load_checkpoints(model: &ModelFolder) -> Result<Vec<Option<Checkpoint>>, nnu_artifacts::Error> {
    let bar = ProgressBar::new(model.folds.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("checkpoints");
    let mut out = Vec::with_capacity(model.folds.len());
    for f in &model.folds {
        out.push(match &f.checkpoint {
            Some(path) => Some(Checkpoint::load(path)?),
            None => None,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn describe(model: &ModelFolder, checkpoints: &[Option<Checkpoint>]) -> String {
    let p: &Plans = &model.plans;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<22}{v}\n"));
    line("model folder", model.dir.display().to_string());
    line("plans", model.plans_path.display().to_string());
    match &model.trainer {
        Some(t) => line("trainer", t.name.clone()),
        None => line(
            "trainer",
            "unknown (no model_final_checkpoint.model.pkl)".into(),
        ),
    }
    line(
        "classes",
        format!(
            "{} outputs: background + {} foreground {:?}",
            p.num_output_channels(),
            p.num_classes,
            p.all_classes
        ),
    );
    // The trainer's stage (`init[5]` of its .model.pkl: 0 is 3d_lowres of two-stage plans), else the last.
    let stage = model
        .trainer
        .as_ref()
        .and_then(|t| t.init.get(5))
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&k| k < p.stages.len())
        .unwrap_or(p.num_stages - 1);
    line(
        "stages",
        format!(
            "{} (3d_fullres = stage {}; this model: stage {stage})",
            p.num_stages,
            p.num_stages - 1
        ),
    );
    if model
        .trainer
        .as_ref()
        .is_some_and(|t| t.name.contains("CascadeFullRes"))
    {
        line(
            "cascade",
            format!(
                "3d_cascade_fullres: needs the 3d_lowres segmentation of each case, one-hot as {} extra \
                 input channel(s) (classes 1..={}); nnu-predict --prev-stage DIR, or --lowres-model DIR to \
                 predict 3d_lowres first",
                p.num_classes, p.num_classes
            ),
        );
    }
    let st = &p.stages[stage];
    line("patch size", format!("{:?}", st.patch_size));
    line(
        "spacing",
        format!("{:?} (target, as stored: z, y, x)", st.current_spacing),
    );
    line("original spacing", format!("{:?}", st.original_spacing));
    line("pool kernels", format!("{:?}", st.pool_op_kernel_sizes));
    line("conv kernels", format!("{:?}", st.conv_kernel_sizes));
    line(
        "base features",
        format!(
            "{} (conv per stage {})",
            p.base_num_features, p.conv_per_stage
        ),
    );
    line(
        "transpose",
        format!(
            "forward {:?}, backward {:?}",
            p.transpose_forward, p.transpose_backward
        ),
    );
    for c in 0..p.num_modalities {
        let mut v = format!(
            "{}: scheme {}, mask for norm {}",
            p.modalities.get(c).map_or("?", String::as_str),
            p.normalization_schemes.get(c).map_or("?", String::as_str),
            p.use_mask_for_norm.get(c).copied().unwrap_or(false),
        );
        if let Some(ip) = p.intensity_properties.as_ref().and_then(|ips| ips.get(c)) {
            // float32 statistics print as float32 (99.4, not 99.4000015258789).
            let num = |x: f64| {
                if ip.stored_as_f32 {
                    (x as f32).to_string()
                } else {
                    x.to_string()
                }
            };
            v.push_str(&format!(
                ", clip [{}, {}], mean {}, sd {}",
                num(ip.percentile_00_5),
                num(ip.percentile_99_5),
                num(ip.mean),
                num(ip.sd)
            ));
        }
        line(&format!("channel {c}"), v);
    }
    let folds: Vec<&str> = model.folds.iter().map(|f| f.name.as_str()).collect();
    line("folds", folds.join(", "));
    for (f, c) in model.folds.iter().zip(checkpoints) {
        let onnx = if f.onnx.is_some() { ", model.onnx" } else { "" };
        let text = match c {
            Some(c) => format!(
                "{} tensors, {} parameters{}{onnx}",
                c.state_dict.len(),
                c.num_parameters(),
                c.epoch.map(|e| format!(", epoch {e}")).unwrap_or_default()
            ),
            None => "model.onnx only (no checkpoint)".to_string(),
        };
        line(&format!("  {}", f.name), text);
    }
    s
}

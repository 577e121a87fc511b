//! `nnu-export-onnx`: export an nnU-Net v1 checkpoint (UNet++ or Generic_UNet) to ONNX without
//! Python, or write a real-size network with synthetic weights for benches.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nnu_artifacts::v2::{detect, ModelKind};
use nnu_artifacts::Plans;
use nnu_onnx_export::from_artifacts::{
    load_model_folder, synthetic_from_plans, SyntheticOverrides,
};
use nnu_onnx_export::{
    export_model, synthetic_state_dict, BatchDim, ExportError, ExportOptions, ExportedModel, Family,
};

/// Export an nnU-Net v1 checkpoint (UNet++ or Generic_UNet) to ONNX without Python.
///
/// With --model, reads MODEL_DIR/fold_K/CHECKPOINT.model, its .model.pkl (trainer name, plans and
/// stage) and writes the network with input `image` (N, C, patch...) and output `class` (the
/// final head's logits). With --random-weights, writes the network of --plans (default: Task003
/// 3d_fullres, patch 128^3, 5 poolings) with seeded He-initialised weights.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-export-onnx",
    version,
    about,
    long_about,
    after_help = "Example:\n  nnu-export-onnx -m MODEL_DIR --fold 0 -o MODEL_DIR/fold_0/model.onnx\n\nExit status: 0 written, 2 bad arguments or an unusable model, plans, checkpoint or output (nothing\nwritten; the workspace's status 1, some cases failed, does not arise: there is one output)."
)]
struct Args {
    /// Model folder: nnU-Net v1 (plans.pkl, fold_K/) or nnunetv2 (plans.json, dataset.json,
    /// fold_K/checkpoint_final.pth), told apart by the files it holds.
    #[arg(
        short = 'm',
        long,
        value_name = "MODEL_DIR",
        required_unless_present = "random_weights"
    )]
    model: Option<PathBuf>,
    /// Fold to export: a number, or `all`.
    #[arg(long, default_value = "0")]
    fold: String,
    /// Checkpoint name inside the fold folder (v1: without `.model`; v2: `checkpoint_final` or
    /// `checkpoint_best`, `.pth` optional; the v1 default means `checkpoint_final.pth` for v2).
    #[arg(long, default_value = "model_final_checkpoint")]
    checkpoint: String,
    /// Output ONNX file (written atomically).
    #[arg(short = 'o', long = "output", value_name = "MODEL.onnx")]
    output: PathBuf,
    /// ONNX opset (9 to 21).
    #[arg(long, default_value_t = 11)]
    opset: i64,
    /// Also output the deep-supervision heads after `class` (head_1, head_2, ...).
    #[arg(long)]
    deep_supervision: bool,
    /// Batch axis: `dynamic` or a fixed size such as `1`.
    #[arg(long, default_value = "dynamic")]
    batch: String,
    /// Network family; with --model the default comes from the trainer name in the .model.pkl.
    #[arg(long, value_enum)]
    family: Option<FamilyArg>,
    /// Write a network with synthetic (seeded He-init) weights instead of reading a checkpoint.
    #[arg(long, conflicts_with = "model")]
    random_weights: bool,
    /// Plans file for --random-weights (its full-resolution stage); default: Task003 3d_fullres.
    #[arg(long, value_name = "PLANS", requires = "random_weights")]
    plans: Option<PathBuf>,
    /// --random-weights: base_num_features (default: the plans' value, else 32).
    #[arg(long, requires = "random_weights")]
    base: Option<usize>,
    /// --random-weights: max_num_features.
    #[arg(long, default_value_t = 320, requires = "random_weights")]
    max: usize,
    /// --random-weights: network outputs incl. background (default: the plans' classes + 1, else 3).
    #[arg(long, requires = "random_weights")]
    classes: Option<usize>,
    /// --random-weights: seed of the weight generator.
    #[arg(long, default_value_t = 0, requires = "random_weights")]
    seed: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FamilyArg {
    /// Generic_UNetPlusPlus (nnUNetPlusPlusTrainerV2).
    Unetpp,
    /// nnU-Net's Generic_UNet (nnUNetTrainerV2).
    Unet,
}

impl From<FamilyArg> for Family {
    fn from(f: FamilyArg) -> Self {
        match f {
            FamilyArg::Unetpp => Family::UnetPlusPlus,
            FamilyArg::Unet => Family::Unet,
        }
    }
}

/// An error with the file it concerns.
struct Failure {
    file: PathBuf,
    message: String,
}

/// Errors that name their file print as they are (`file` empty); others get `file` in front.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.file.as_os_str().is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

fn fail(file: &Path, e: impl std::fmt::Display) -> Failure {
    Failure {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

/// Errors that already name their file print as they are; others get `file` in front.
fn export_failure(file: &Path, e: ExportError) -> Failure {
    match e {
        ExportError::Artifacts(_) | ExportError::Io { .. } => Failure {
            file: PathBuf::new(),
            message: e.to_string(),
        },
        other => fail(file, other),
    }
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb.set_message(msg.to_string());
    pb
}

mod v2;

fn run(args: Args) -> Result<(), Failure> {
    let batch = match args.batch.as_str() {
        "dynamic" => BatchDim::Dynamic,
        s => match s.parse::<usize>() {
            Ok(n) if n > 0 => BatchDim::Fixed(n),
            _ => {
                return Err(fail(
                    Path::new("--batch"),
                    format!("expected `dynamic` or a positive size, got `{s}`"),
                ))
            }
        },
    };
    let options = ExportOptions {
        opset: args.opset,
        deep_supervision: args.deep_supervision,
        batch,
    };
    let pb = spinner("reading weights");

    let (spec, state_dict, source, what) = if args.random_weights {
        let family = args.family.map_or(Family::UnetPlusPlus, Family::from);
        let plans = match &args.plans {
            Some(p) => Some(Plans::load(p).map_err(|e| fail(Path::new(""), e))?),
            None => None,
        };
        let source = args
            .plans
            .clone()
            .unwrap_or_else(|| PathBuf::from("<Task003 3d_fullres>"));
        let overrides = SyntheticOverrides {
            base_num_features: args.base,
            max_num_features: args.max,
            num_classes: args.classes,
            seed: args.seed,
        };
        let (spec, cfg) = synthetic_from_plans(plans.as_ref(), family, &overrides)
            .map_err(|e| fail(&source, e))?;
        pb.set_message("generating synthetic weights");
        let sd = synthetic_state_dict(&spec, &cfg).map_err(|e| fail(&source, e))?;
        (spec, sd, source, "synthetic weights".to_string())
    } else {
        let model = args.model.clone().unwrap_or_default();
        let fold = match args.fold.as_str() {
            "all" => None,
            s => Some(s.parse::<usize>().map_err(|_| {
                fail(
                    Path::new("--fold"),
                    format!("expected a number or `all`, got `{s}`"),
                )
            })?),
        };
        if detect(&model) == ModelKind::V2 {
            return v2::run_v2(&model, fold, &args.checkpoint, &args.output, &options);
        }
        let loaded = load_model_folder(
            &model,
            fold,
            &args.checkpoint,
            args.family.map(Family::from),
        )
        .map_err(|e| export_failure(&model, e))?;
        let what = format!("{} (stage {})", loaded.trainer, loaded.stage);
        (loaded.spec, loaded.state_dict, loaded.checkpoint, what)
    };

    pb.set_message(format!("building {}", spec.family.module_name()));
    let exported =
        export_model(&spec, state_dict, &options).map_err(|e| export_failure(&source, e))?;
    write_and_report(
        pb,
        &exported,
        &args.output,
        &options,
        &spec.patch_size,
        &format!(
            "{} from {} ({})",
            spec.family.module_name(),
            source.display(),
            what
        ),
    )
}

/// Writes `exported` to `output` (atomically), ends the spinner and prints one line: the file,
/// `network` (what was built from which checkpoint), the parameters, the opset and the input and output
/// shapes with the batch axis as `options.batch` set it.
fn write_and_report(
    pb: ProgressBar,
    exported: &ExportedModel,
    output: &Path,
    options: &ExportOptions,
    patch_size: &[usize],
    network: &str,
) -> Result<(), Failure> {
    pb.set_message(format!("writing {}", output.display()));
    exported
        .write(output)
        .map_err(|e| export_failure(output, e))?;
    pb.finish_and_clear();

    let n = match options.batch {
        BatchDim::Dynamic => "N".to_string(),
        BatchDim::Fixed(n) => n.to_string(),
    };
    let dims = |rest: &[usize]| {
        let v: Vec<String> = std::iter::once(n.clone())
            .chain(rest.iter().map(usize::to_string))
            .collect();
        v.join(", ")
    };
    let mut input = vec![exported.input_channels];
    input.extend_from_slice(patch_size);
    let outs: Vec<String> = exported
        .outputs
        .iter()
        .map(|o| format!("{} [{}]", o.name, dims(&o.shape)))
        .collect();
    println!(
        "{}: {}, {} parameters, opset {}; input image [{}]; outputs {}",
        output.display(),
        network,
        exported.num_parameters,
        options.opset,
        dims(&input),
        outs.join(", ")
    );
    Ok(())
}

fn main() -> ExitCode {
    // One output: there are no cases to fail one by one (status 1 does not arise).
    nnu_cli::exit_status(run(Args::parse()).map(|()| true))
}

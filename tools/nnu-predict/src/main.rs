//! `nnu-predict`: streaming nnU-Net v1 and nnunetv2 prediction. NIfTI or DICOM series in, NIfTI segmentation
//! out, all in memory.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use nnu_pipeline::cascade::CascadeOptions;
use nnu_pipeline::cases::Shard;
use nnu_pipeline::cli;
use nnu_pipeline::job::PredictJob;
use nnu_pipeline::run::{print_demo_dice, BackendKind, CpuBackendOptions, Precision};
use nnu_pipeline::stages::{available_memory, PredictOptions};
use nnu_pipeline::PipelineError;

use nnu_pipeline::bars::CaseBars;

/// Predict segmentations with an nnU-Net v1 model (UNet++ or plain nnU-Net) or an nnunetv2 model
/// (PlainConvUNet, ResEnc; 3-D configurations): preprocess, sliding window with
/// mirroring, Gaussian merge, export; no scratch files. Finished cases are skipped, so an interrupted run
/// resumes where it stopped.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-predict",
    version,
    about,
    long_about = None,
    override_usage = "nnu-predict -m MODEL_DIR -i IMAGES [-o OUT] [OPTIONS]\n       nnu-predict --demo",
    after_help = "Example:\n  nnu-predict -m Task003_Liver/nnUNetPlusPlusTrainerV2__nnUNetPlansv2.1 -i imagesTs -o predictions --folds 0\n\nExit status: 0 every case done (or already done), 1 some cases failed (named), 2 bad arguments or\nunusable model, input or output folder (nothing done)."
)]
struct Args {
    /// Model folder: nnU-Net v1 (plans.pkl, fold_K/...) or nnunetv2 (plans.json, dataset.json,
    /// fold_K/checkpoint_final.pth), told apart by what it holds.
    #[arg(
        short = 'm',
        long,
        value_name = "MODEL_DIR",
        required_unless_present = "demo"
    )]
    model: Option<PathBuf>,
    /// A NIfTI image, a folder (nnU-Net raw naming CASE_0000.nii.gz or MSD naming CASE.nii.gz), a folder
    /// of DICOM series (searched with its subfolders when it holds no NIfTI file; one case per series,
    /// uncompressed transfer syntaxes), or a .txt list of image paths.
    #[arg(
        short = 'i',
        long,
        value_name = "IMAGES",
        required_unless_present = "demo"
    )]
    input: Option<PathBuf>,
    /// Output folder (created if missing). Default: ./nnu-predictions (./nnu-demo-output with --demo).
    #[arg(short = 'o', long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// ONNX model to use instead of each fold's model.onnx (one model, no fold ensemble).
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// Folds to ensemble, e.g. 0,1,2 (default: every fold with a checkpoint).
    #[arg(long, value_delimiter = ',')]
    folds: Vec<usize>,
    /// Disable test-time mirroring (8x faster, slightly less accurate).
    #[arg(long)]
    disable_tta: bool,
    /// Mirror only along these array axes (0 = z, 1 = y, 2 = x), e.g. 1,2.
    #[arg(long, value_delimiter = ',')]
    mirror_axes: Vec<usize>,
    /// Sliding-window step as a fraction of the patch size, in (0, 1] (nnU-Net's step_size).
    #[arg(long, default_value_t = cli::DEFAULT_STEP_SIZE, value_parser = cli::parse_step_size)]
    step_size: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Also write CASE_probabilities.npy (f32, classes x Z x Y x X, original frame); for an nnunetv2
    /// model what nnUNetv2_predict writes instead: CASE.npz (probabilities) and CASE.pkl (properties).
    #[arg(long)]
    save_probabilities: bool,
    /// Also write CASE.png: axial slices with the segmentation overlaid.
    #[arg(long)]
    preview: bool,
    /// Process only shard K of N (0-based), e.g. 3/8 in a Slurm array or indexed Job.
    #[arg(long)]
    shard: Option<Shard>,
    /// Recompute cases whose outputs exist.
    #[arg(long)]
    overwrite: bool,
    /// splits_final.pkl: predict only the validation cases of --fold.
    #[arg(long, requires = "fold")]
    splits: Option<PathBuf>,
    /// Fold of --splits whose validation cases are predicted.
    #[arg(long, requires = "splits")]
    fold: Option<usize>,
    /// Refuse (as that case's error) a case whose estimated peak memory exceeds this, e.g. 16G or 512M
    /// (default: the memory available to this process: MemAvailable, and RLIMIT_AS when set).
    #[arg(long, value_parser = cli::parse_size)]
    max_memory: Option<u64>,
    /// Skip postprocessing.json even when the model folder has one.
    #[arg(long)]
    no_postprocessing: bool,
    /// nnunetv2 models: the configuration of plans.json to predict with (default: the one the model
    /// folder's name ends with, e.g. 3d_fullres). 3-D and 2d configurations (2d slice by slice, as
    /// nnunetv2), 3d_lowres, and 3d_cascade_fullres with --prev-stage or --lowres-model.
    #[arg(short = 'c', long)]
    configuration: Option<String>,
    /// Cascades (an nnunetv2 3d_cascade_fullres configuration, an nnU-Net v1 cascade trainer folder): the
    /// folder with the previous stage's segmentation of each case, CASE.nii.gz (nnunetv2's
    /// -prev_stage_predictions, nnU-Net v1's --lowres_segmentations).
    #[arg(long, value_name = "DIR", conflicts_with = "lowres_model")]
    prev_stage: Option<PathBuf>,
    /// Cascades: predict the previous stage first, in memory, with this model folder (v1: the 3d_lowres
    /// model folder; nnunetv2: the previous configuration's, e.g. nnUNetTrainer__nnUNetPlans__3d_lowres).
    /// Without this and --prev-stage, the standard folder beside the model is used when it exists.
    #[arg(long, value_name = "DIR")]
    lowres_model: Option<PathBuf>,
    /// Cascades predicted in one command: also write the previous stage's segmentations to
    /// OUT/3d_lowres_predictions.
    #[arg(long, conflicts_with = "prev_stage")]
    keep_lowres: bool,
    /// nnunetv2 models: the checkpoint of each fold, checkpoint_final.pth or checkpoint_best.pth.
    #[arg(long, default_value = "checkpoint_final.pth")]
    checkpoint: String,
    /// Run the demo built into this binary: a small UNet++ on two phantom CTs, with previews and Dice
    /// (writes to -o, default nnu-demo-output).
    #[arg(long)]
    demo: bool,
    /// CPU inference backend: auto (default) = the native engine, or tract (with a one-line note) when
    /// the network has an operator the native engine lacks; native fails on such an operator instead.
    /// tract is in the build only with the cargo feature `tract` (`cargo install --path
    /// tools/nnu-predict --features tract`); without it auto reports the operator.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Convolution arithmetic of the native backend: bf16 (inputs and weights rounded to bf16, sums in
    /// f32) needs a CPU with AVX512_BF16 and runs on AMX tiles where the CPU has them (3-5x fp32).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    precision: PrecisionArg,
}

/// `--backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// native, falling back to tract on an unsupported operator.
    Auto,
    /// Our own CPU kernels.
    Native,
    /// tract-onnx (builds with the cargo feature `tract`).
    Tract,
}

/// `--precision` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    /// 32-bit float.
    Fp32,
    /// bfloat16 products with fp32 accumulation (AVX512_BF16 CPUs).
    Bf16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(w) = cli::step_size_warning(args.step_size) {
        eprintln!("{w}");
    }
    cli::exit_status(run(args))
}

fn run(mut args: Args) -> Result<bool, PipelineError> {
    // The embedded demo, unpacked into a temporary folder that lives until the end of the run.
    let demo = if args.demo {
        Some(nnu_demo::Demo::unpack().map_err(|e| match e {
            nnu_demo::DemoError::Io { path, source } => PipelineError::io(&path, source),
        })?)
    } else {
        None
    };
    if let Some(d) = &demo {
        args.model.get_or_insert(d.model_dir());
        args.input.get_or_insert(d.images_dir());
        args.output.get_or_insert(PathBuf::from("nnu-demo-output"));
        args.preview = true;
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    nnu_pipeline::run::init_thread_pool(Some(threads));
    let (Some(model_dir), Some(input)) = (args.model.clone(), args.input.clone()) else {
        unreachable!("clap requires --model and --input unless --demo")
    };
    let mut options = PredictOptions {
        step_size: args.step_size,
        save_probabilities: args.save_probabilities,
        preview: args.preview,
        overwrite: args.overwrite,
        postprocess: !args.no_postprocessing,
        max_memory: args.max_memory.or_else(available_memory),
        ..PredictOptions::default()
    };
    if demo.is_some() {
        options.preview_options.label_names = nnu_demo::LABEL_NAMES.map(String::from).to_vec();
    }
    let job = PredictJob {
        model_dir,
        input,
        out_dir: args
            .output
            .unwrap_or_else(|| PathBuf::from("nnu-predictions")),
        onnx: args.onnx,
        folds: args.folds,
        configuration: args.configuration,
        checkpoint: args.checkpoint,
        disable_tta: args.disable_tta,
        mirror_axes: args.mirror_axes,
        splits: args.splits.zip(args.fold),
        shard: args.shard,
        backend: CpuBackendOptions {
            kind: match args.backend {
                BackendArg::Auto => BackendKind::Auto,
                BackendArg::Native => BackendKind::Native,
                BackendArg::Tract => BackendKind::Tract,
            },
            threads,
            precision: match args.precision {
                PrecisionArg::Fp32 => Precision::F32,
                PrecisionArg::Bf16 => Precision::Bf16,
            },
        },
        cascade: CascadeOptions {
            prev_stage: args.prev_stage,
            lowres_model: args.lowres_model,
            keep_lowres: args.keep_lowres,
            ..CascadeOptions::default()
        },
        options,
    };
    let mut predictor = job.open()?;
    eprintln!("{}", predictor.description());
    let all_ok = predictor.run(&mut CaseBars::new(
        "{prefix:>16} [{bar:30}] {pos}/{len} tiles, {elapsed} elapsed, ETA {eta}",
    ));
    if let Some(d) = &demo {
        print_demo_dice(predictor.cases(), predictor.out_dir(), |c| d.label_path(c))?;
    }
    Ok(all_ok)
}

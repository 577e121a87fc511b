//! `nnu-preprocess`: nnU-Net v1 or nnunetv2 preprocessing to tile bins (for Ascend tools), or v1 to `.npy`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nnu_pipeline::bins::SHAPE_FILE_LOCK_TIMEOUT;
use nnu_pipeline::bins_run::PreprocessJob;
use nnu_pipeline::cli;
use nnu_pipeline::PipelineError;

use nnu_pipeline::bars::CaseBars;

/// Preprocess CT volumes exactly as nnU-Net v1 or nnunetv2 does (crop, resample, normalise) and write
/// every sliding-window tile x mirror as a raw f32 .bin (the recipe's format) plus its line in
/// all_shape.txt and the case's properties CASE.json; or, with --npy (v1 models), the preprocessed volume
/// CASE.npy and its properties CASE.json.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-preprocess",
    version,
    about,
    after_help = "Example:\n  nnu-preprocess -m MODEL_DIR -i imagesTs -o bins --shape-file all_shape.txt\n\nExit status: 0 every case done (or already done), 1 some cases failed (named), 2 bad arguments or\nunusable model, input or output folder (nothing done)."
)]
struct Args {
    /// Model folder: nnU-Net v1 (plans.pkl) or nnunetv2 (plans.json, dataset.json), told apart by what
    /// it holds.
    #[arg(short = 'm', long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// nnunetv2 models: the configuration of plans.json (default: the one the folder's name ends with,
    /// e.g. 3d_fullres); 2d configurations are tiled slice by slice, (c, 1, y, x) per tile.
    #[arg(short = 'c', long)]
    configuration: Option<String>,
    /// nnunetv2 models: the checkpoint whose inference_allowed_mirroring_axes decide the mirrors
    /// (checkpoint_final.pth or checkpoint_best.pth).
    #[arg(long, default_value = "checkpoint_final.pth")]
    checkpoint: String,
    /// nnunetv2 models: the fold whose checkpoint decides the mirrors (default: the first fold).
    #[arg(long)]
    fold: Option<usize>,
    /// A NIfTI image, a folder of images (CASE_0000.nii.gz or CASE.nii.gz), a folder of DICOM series (one
    /// case per series, named PATIENT_sNUMBER_UID as nnu-predict names it), or a .txt list.
    #[arg(short = 'i', long, value_name = "IMAGES")]
    input: PathBuf,
    /// Output folder for the bins (or .npy files).
    #[arg(short = 'o', long, value_name = "BINS")]
    output: PathBuf,
    /// Write CASE.npy (f32, channels x Z x Y x X) and CASE.json instead of tile bins.
    #[arg(long)]
    npy: bool,
    /// all_shape.txt to update (default: OUTPUT/all_shape.txt).
    #[arg(long)]
    shape_file: Option<PathBuf>,
    /// Only these cases (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Write only the unmirrored tile (m0) of each window (default: all eight mirrors for v1 models, the
    /// checkpoint's allowed mirror axes for nnunetv2 models).
    #[arg(long)]
    disable_tta: bool,
    /// Sliding-window step as a fraction of the patch size, in (0, 1] (nnU-Net's step_size).
    #[arg(long, default_value_t = cli::DEFAULT_STEP_SIZE, value_parser = cli::parse_step_size)]
    step_size: f64,
    /// Rewrite tiles that exist.
    #[arg(long)]
    overwrite: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to wait for another run's lock on all_shape.txt before the case fails (default 60).
    /// Hidden: for the tests of that timeout, which cannot wait a minute; a user has no reason to change
    /// it (the lock is held only while a run rewrites the file's few lines).
    #[arg(long, hide = true, value_name = "SECONDS", value_parser = cli::parse_seconds)]
    lock_timeout: Option<std::time::Duration>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(w) = cli::step_size_warning(args.step_size) {
        eprintln!("{w}");
    }
    cli::exit_status(run(args))
}

fn run(args: Args) -> Result<bool, PipelineError> {
    nnu_pipeline::run::init_thread_pool(args.threads);
    let job = PreprocessJob {
        model_dir: args.model,
        configuration: args.configuration,
        checkpoint: args.checkpoint,
        fold: args.fold,
        input: args.input,
        out_dir: args.output,
        npy: args.npy,
        shape_file: args.shape_file,
        cases: args.cases,
        disable_tta: args.disable_tta,
        step_size: args.step_size,
        overwrite: args.overwrite,
        lock_timeout: args.lock_timeout.unwrap_or(SHAPE_FILE_LOCK_TIMEOUT),
    };
    job.run(&mut CaseBars::new(
        "{prefix:>16} [{bar:30}] {pos}/{len} bins, ETA {eta}",
    ))
}

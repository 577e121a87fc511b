//! `nnu-postprocess`: merge the output dumps of tile bins into NIfTI segmentations.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nnu_pipeline::bins_run::PostprocessJob;
use nnu_pipeline::cli;
use nnu_pipeline::PipelineError;

/// Merge the dumps of an accelerator run (benchmark's NAME_1.bin or ais_bench's NAME_0.bin, in one or more
/// folders) into segmentations in the input images' geometry, as the model's nnU-Net does: v1 softmax per
/// pass, mirror mean, Gaussian weighting, resampling back; nnunetv2 the logits averaged over mirrors and
/// merged with its Gaussian, resampled back, then softmax or sigmoid. A case with missing or short dumps
/// is reported and not written.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-postprocess",
    version,
    about,
    after_help = "Example:\n  nnu-postprocess -m MODEL_DIR -i imagesTs --shape-file all_shape.txt --dumps result/ -o predictions\n\nExit status: 0 every case written, 1 some cases failed (named), 2 bad arguments or unusable model,\ninput, dumps or output folder (nothing done)."
)]
struct Args {
    /// Model folder: nnU-Net v1 (plans.pkl) or nnunetv2 (plans.json, dataset.json), as given to
    /// nnu-preprocess.
    #[arg(short = 'm', long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// nnunetv2 models: the configuration, as given to nnu-preprocess.
    #[arg(short = 'c', long)]
    configuration: Option<String>,
    /// nnunetv2 models: the checkpoint whose allowed mirror axes decide the mirrors, as given to
    /// nnu-preprocess.
    #[arg(long, default_value = "checkpoint_final.pth")]
    checkpoint: String,
    /// nnunetv2 models: the fold whose checkpoint decides the mirrors, as given to nnu-preprocess.
    #[arg(long)]
    fold: Option<usize>,
    /// The images that were preprocessed (file, folder, folder of DICOM series or .txt list); each line of
    /// the shape file is matched to its case by name.
    #[arg(short = 'i', long)]
    input: PathBuf,
    /// Dump folders, comma-separated (e.g. result/dumpOutput_device0,result/dumpOutput_device1).
    #[arg(long, value_delimiter = ',', required = true)]
    dumps: Vec<PathBuf>,
    /// all_shape.txt written by nnu-preprocess.
    #[arg(long)]
    shape_file: PathBuf,
    /// Output folder.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// The tiles were written without mirrors (nnu-preprocess --disable-tta).
    #[arg(long)]
    disable_tta: bool,
    /// Also write the probabilities: v1 CASE_probabilities.npy (f32, classes x Z x Y x X, original
    /// frame); nnunetv2 CASE.npz and CASE.pkl as nnUNetv2_predict --save_probabilities writes them.
    #[arg(long)]
    save_probabilities: bool,
    /// Also write CASE.png previews.
    #[arg(long)]
    preview: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    cli::exit_status(run(Args::parse()))
}

fn run(args: Args) -> Result<bool, PipelineError> {
    nnu_pipeline::run::init_thread_pool(args.threads);
    PostprocessJob {
        model_dir: args.model,
        configuration: args.configuration,
        checkpoint: args.checkpoint,
        fold: args.fold,
        input: args.input,
        dumps: args.dumps,
        shape_file: args.shape_file,
        out_dir: args.output,
        disable_tta: args.disable_tta,
        save_probabilities: args.save_probabilities,
        preview: args.preview,
    }
    .run()
}

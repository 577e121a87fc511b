//! `nnu-postprocess`: merge the output dumps of tile bins into NIfTI segmentations.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nnu_bins::{read_all_shape, DumpIndex};
use nnu_pipeline::bins_v2::BinsModel;
use nnu_pipeline::cases::discover_cases;
use nnu_pipeline::cli;
use nnu_pipeline::run::{report_failures, run_cases, with_case_lock, Locked};
use nnu_pipeline::stages::{is_case_file, PredictOptions};
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
    let model = BinsModel::open(&args.model, args.configuration.as_deref(), &args.checkpoint)?;
    let cases = discover_cases(&args.input)?;
    let records = read_all_shape(&args.shape_file)?;
    let dumps = DumpIndex::scan(&args.dumps, None)?;
    if let Some((first, second)) = dumps.duplicates().first() {
        eprintln!(
            "warning: {} dump(s) found in two folders, the first is used: {} and {}",
            dumps.duplicates().len(),
            first.display(),
            second.display()
        );
    }
    nnu_pipeline::run::check_outputs_not_inputs(&cases, &args.output, |dir, name| {
        model.output_paths(dir, name)
    })?;
    nnu_pipeline::prepare_output_dir(&args.output)?;
    nnu_pipeline::remove_stale_temps(&args.output, |f| {
        records.iter().any(|r| is_case_file(f, &r.case))
    });
    let opts = PredictOptions {
        mirrors: if args.disable_tta {
            nnu_tiling::MirrorSet::identity_only()
        } else {
            let folds: Vec<usize> = args.fold.into_iter().collect();
            model.default_mirrors(&folds)?
        },
        save_probabilities: args.save_probabilities,
        preview: args.preview,
        overwrite: true,
        max_memory: nnu_pipeline::stages::available_memory(),
        ..PredictOptions::default()
    };
    let t0 = std::time::Instant::now();
    let total = records.len();
    eprintln!("{total} case(s) -> {}", args.output.display());
    let (mut k, mut held) = (0, 0);
    let failures = run_cases(
        &records,
        |record| record.case.clone(),
        |record| {
            // One line per case with the count, rate and ETA: progress in a terminal and in a log alike.
            k += 1;
            let progress = cli::progress_line("done", k, total, "cases", t0.elapsed());
            let case = cases
                .iter()
                .find(|c| c.name == record.case)
                .ok_or_else(|| PipelineError::Input {
                    path: args.shape_file.clone(),
                    msg: format!("listed there, but no image under {}", args.input.display()),
                })?;
            // A case another live run is writing (same output folder) is left to it.
            let done = with_case_lock(&args.output, &case.name, || {
                model.postprocess_from_dumps(
                    case,
                    record,
                    &args.shape_file,
                    &dumps,
                    &args.output,
                    &opts,
                )
            })?;
            match done {
                Locked::Done(()) => eprintln!(
                    "{}: written to {} ({progress})",
                    case.name,
                    args.output.join(format!("{}.nii.gz", case.name)).display()
                ),
                Locked::Busy { pid } => {
                    held += 1;
                    eprintln!(
                        "{}: skipped, another run (pid {pid}) is working on it ({progress})",
                        case.name
                    );
                }
            }
            Ok(())
        },
    );
    if total > failures.len() + held {
        // nnunetv2 models: dataset.json and plans.json beside the outputs, as nnUNetv2_predict leaves them.
        match model.finish_output(&args.output) {
            Ok(notes) => notes.iter().for_each(|n| eprintln!("warning: {n}")),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(false);
            }
        }
    }
    eprintln!(
        "{}",
        cli::summary_line(
            t0.elapsed().as_secs_f64(),
            total - failures.len() - held,
            failures.len(),
            held
        )
    );
    Ok(report_failures(&failures))
}

//! `nnu-preprocess`: nnU-Net v1 or nnunetv2 preprocessing to tile bins (for Ascend tools), or v1 to `.npy`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_pipeline::bins::{
    human_bytes, is_case_tile, preprocess_to_npy, BinsOptions, DiskBudget, SHAPE_FILE_LOCK_TIMEOUT,
};
use nnu_pipeline::bins_v2::BinsModel;
use nnu_pipeline::cases::discover_cases;
use nnu_pipeline::cli;
use nnu_pipeline::run::{report_failures, run_cases, with_case_lock, Locked};
use nnu_pipeline::stages::is_case_lock;
use nnu_pipeline::PipelineError;

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
    #[arg(long, hide = true, value_name = "SECONDS", value_parser = parse_seconds)]
    lock_timeout: Option<std::time::Duration>,
}

/// A duration in seconds (fractions allowed), not negative.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(v).map_err(|_| format!("{s}: not a duration in seconds"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(w) = cli::step_size_warning(args.step_size) {
        eprintln!("{w}");
    }
    match run(args) {
        Ok(true) => ExitCode::from(cli::EXIT_OK),
        Ok(false) => ExitCode::from(cli::EXIT_FAILED),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

fn run(args: Args) -> Result<bool, PipelineError> {
    nnu_pipeline::run::init_thread_pool(args.threads);
    let model = BinsModel::open(&args.model, args.configuration.as_deref(), &args.checkpoint)?;
    let mut cases = discover_cases(&args.input)?;
    if !args.cases.is_empty() {
        cases.retain(|c| args.cases.contains(&c.name));
    }
    nnu_pipeline::prepare_output_dir(&args.output)?;
    let shape_file = args
        .shape_file
        .clone()
        .unwrap_or_else(|| args.output.join("all_shape.txt"));
    let shape_lock = shape_file
        .file_name()
        .map(|n| format!(".{}.lock", n.to_string_lossy()));
    // Temporaries of a killed run, for this run's cases only (other shards may be writing theirs).
    nnu_pipeline::remove_stale_temps(&args.output, |f| {
        shape_lock.as_deref() == Some(f)
            || cases.iter().any(|c| {
                is_case_tile(f, &c.name)
                    || is_case_lock(f, &c.name)
                    || f == format!("{}.npy", c.name)
                    || f == format!("{}.json", c.name)
            })
    });
    // A case another live run is working on (same output folder) is left to it.
    let held = |name: &str, pid: u32| {
        eprintln!("{name}: skipped, another run (pid {pid}) is working on it");
    };
    if args.npy {
        let BinsModel::V1(model) = &model else {
            return Err(PipelineError::Input {
                path: args.model.clone(),
                msg: "--npy writes nnU-Net v1's preprocessed volumes; for an nnunetv2 model write tile \
                      bins (without --npy) or predict with nnu-predict"
                    .into(),
            });
        };
        let failures = run_cases(
            &cases,
            |case| case.name.clone(),
            |case| {
                match with_case_lock(&args.output, &case.name, || {
                    preprocess_to_npy(case, model, &args.output)
                })? {
                    Locked::Done(()) => eprintln!("{}: written", case.name),
                    Locked::Busy { pid } => held(&case.name, pid),
                }
                Ok(())
            },
        );
        return Ok(report_failures(&failures));
    }
    let mirrors = if args.disable_tta {
        nnu_tiling::MirrorSet::identity_only()
    } else {
        let folds: Vec<usize> = args.fold.into_iter().collect();
        model.default_mirrors(&folds)?
    };
    // A case whose header alone needs more disk than there is (a huge or lying header) fails here, alone;
    // a case whose header cannot be read fails in its own run below. The others go on.
    let mut budget = DiskBudget::new(&args.output, args.overwrite);
    let mut runnable = Vec::with_capacity(cases.len());
    let mut failures = run_cases(
        &cases,
        |case| case.name.clone(),
        |case| {
            budget.admit_estimate(
                case,
                model.estimate_case_bytes(case, args.step_size, mirrors.len()),
            )?;
            runnable.push(*case);
            Ok(())
        },
    );
    eprintln!(
        "{} case(s); tiles need at most {}; {} free",
        cases.len(),
        human_bytes(budget.need),
        budget.free.map_or("unknown".into(), human_bytes)
    );
    budget.check_total(&args.output)?;
    let bins_opts = BinsOptions {
        step_size: args.step_size,
        mirrors,
        overwrite: args.overwrite,
        shape_lock_timeout: args.lock_timeout.unwrap_or(SHAPE_FILE_LOCK_TIMEOUT),
    };
    let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} bins, ETA {eta}")
        .expect("static template")
        .progress_chars("=> ");
    let t0 = std::time::Instant::now();
    let (mut ok, mut skipped) = (0, 0);
    let mut log = cli::LogProgress::new(std::time::Duration::from_secs(30));
    failures.extend(run_cases(
        runnable,
        |case| case.name.clone(),
        |case| {
            // Shown once bins are written, so a case that is already done leaves no empty bar.
            let bar = ProgressBar::hidden()
                .with_style(style.clone())
                .with_prefix(case.name.clone());
            let mut progress = |d: usize, t: usize| {
                if bar.is_hidden() && !log.enabled() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                bar.set_length(t as u64);
                bar.set_position(d as u64);
                log.update(&case.name, d, t);
            };
            let r = with_case_lock(&args.output, &case.name, || {
                model.preprocess_to_bins(case, &args.output, &shape_file, &bins_opts, &mut progress)
            });
            match &r {
                Ok(Locked::Busy { pid }) => {
                    bar.finish_and_clear();
                    skipped += 1;
                    held(&case.name, *pid);
                }
                Ok(Locked::Done(r)) if r.skipped => {
                    bar.finish_and_clear();
                    skipped += 1;
                }
                Ok(Locked::Done(r)) => {
                    bar.finish_and_clear();
                    ok += 1;
                    eprintln!(
                        "{}: {} tiles, {} bins written",
                        case.name,
                        r.record.num_tiles(),
                        r.written,
                    );
                }
                Err(_) => bar.abandon(),
            }
            r.map(|_| ())
        },
    ));
    eprintln!(
        "{}",
        cli::summary_line(t0.elapsed().as_secs_f64(), ok, failures.len(), skipped)
    );
    Ok(report_failures(&failures))
}

//! `nnu-preprocess`: nnU-Net v1 preprocessing to tile bins (for Ascend tools) or to `.npy`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_pipeline::bins::{
    human_bytes, is_case_tile, preprocess_to_bins, preprocess_to_npy, DiskBudget,
};
use nnu_pipeline::cases::discover_cases;
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::run::{report_failures, run_cases};
use nnu_pipeline::PipelineError;
use nnu_tiling::MirrorSet;

/// Preprocess CT volumes exactly as nnU-Net v1 does (crop, resample, normalise) and write every
/// sliding-window tile x mirror as a raw f32 .bin (the recipe's format) plus its line in all_shape.txt;
/// or, with --npy, the preprocessed volume CASE.npy and its properties CASE.json.
#[derive(Parser, Debug)]
#[command(name = "nnu-preprocess", version, about)]
struct Args {
    /// nnU-Net v1 model folder (plans.pkl).
    #[arg(long)]
    model: PathBuf,
    /// A NIfTI image, a folder of images (CASE_0000.nii.gz or CASE.nii.gz), or a .txt list.
    #[arg(short = 'i', long)]
    input: PathBuf,
    /// Output folder for the bins (or .npy files).
    #[arg(short = 'o', long)]
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
    /// Write only the unmirrored tile (m0) of each window.
    #[arg(long)]
    disable_tta: bool,
    /// Sliding-window step as a fraction of the patch size.
    #[arg(long, default_value_t = 0.5)]
    step_size: f64,
    /// Rewrite tiles that exist.
    #[arg(long)]
    overwrite: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<bool, PipelineError> {
    nnu_pipeline::run::init_thread_pool(args.threads);
    let model = ModelSpec::open(&args.model)?;
    let mut cases = discover_cases(&args.input)?;
    if !args.cases.is_empty() {
        cases.retain(|c| args.cases.contains(&c.name));
    }
    nnu_pipeline::prepare_output_dir(&args.output)?;
    // Temporaries of a killed run, for this run's cases only (other shards may be writing theirs).
    nnu_pipeline::remove_stale_temps(&args.output, |f| {
        cases.iter().any(|c| {
            is_case_tile(f, &c.name)
                || f == format!("{}.npy", c.name)
                || f == format!("{}.json", c.name)
        })
    });
    if args.npy {
        let failures = run_cases(
            &cases,
            |case| case.name.clone(),
            |case| {
                preprocess_to_npy(case, &model, &args.output)?;
                eprintln!("{}: written", case.name);
                Ok(())
            },
        );
        return Ok(report_failures(&failures));
    }
    let mirrors = if args.disable_tta {
        MirrorSet::identity_only()
    } else {
        MirrorSet::all()
    };
    // A case whose header alone needs more disk than there is (a huge or lying header) fails here, alone;
    // a case whose header cannot be read fails in its own run below. The others go on.
    let mut budget = DiskBudget::new(&args.output, args.overwrite);
    let mut runnable = Vec::with_capacity(cases.len());
    let mut failures = run_cases(
        &cases,
        |case| case.name.clone(),
        |case| {
            budget.admit(case, &model, args.step_size, mirrors.len())?;
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
    let shape_file = args
        .shape_file
        .clone()
        .unwrap_or_else(|| args.output.join("all_shape.txt"));
    let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} bins, ETA {eta}")
        .expect("static template")
        .progress_chars("=> ");
    failures.extend(run_cases(
        runnable,
        |case| case.name.clone(),
        |case| {
            let bar = ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix(case.name.clone());
            let mut progress = |d: usize, t: usize| {
                bar.set_length(t as u64);
                bar.set_position(d as u64);
            };
            let r = preprocess_to_bins(
                case,
                &model,
                &args.output,
                &shape_file,
                args.step_size,
                mirrors,
                args.overwrite,
                &mut progress,
            );
            match &r {
                Ok(r) => {
                    bar.finish_and_clear();
                    eprintln!(
                        "{}: {} tiles, {} bins written{}",
                        case.name,
                        r.record.num_tiles(),
                        r.written,
                        if r.skipped { " (all existed)" } else { "" }
                    );
                }
                Err(_) => bar.abandon(),
            }
            r.map(|_| ())
        },
    ));
    Ok(report_failures(&failures))
}

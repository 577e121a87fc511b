//! `nnu-evaluate`: score predicted segmentations against references and write nnU-Net v1's `summary.json`
//! (nnU-Net 1.7.1 `evaluate_folder` / `aggregate_scores`), optionally with surface metrics.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_metrics::SurfaceOptions;
use nnu_pipeline::evaluate::{evaluate_folder, EvaluateOptions};

/// Score the segmentations in PRED_DIR against the references in REF_DIR (files matched by name, .nii.gz
/// or .nii) with nnU-Net v1's 13 default metrics per label, and write nnU-Net's summary.json (same keys,
/// sorting, indentation, NaN spelling, int/float types and np.nanmean means; timestamp in UTC). Prints the
/// per-class means. With --surface, adds HD95, ASSD (MedPy 0.5.2 conventions) and the normalised surface
/// Dice for every label but 0.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-evaluate",
    version,
    about,
    long_about,
    after_help = "Example:\n  nnu-evaluate --ref labelsTs --pred predictions --labels 0,1,2 --surface\n\nExit status: 0 summary written, 1 some cases could not be evaluated (named; no summary written),\n2 bad arguments, unusable folders, splits or output, or cases missing on one side (nothing written)."
)]
struct Args {
    /// Folder with the reference segmentations.
    #[arg(long = "ref", value_name = "REF_DIR")]
    reference: PathBuf,
    /// Folder with the predicted segmentations (file names as in REF_DIR).
    #[arg(long, value_name = "PRED_DIR")]
    pred: PathBuf,
    /// Labels to evaluate, e.g. 0,1,2 (nnU-Net's validation evaluates every class including 0). Default:
    /// every value found in any reference or prediction.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    labels: Option<Vec<i64>>,
    /// Where to write summary.json. Default: PRED_DIR/summary.json (as nnU-Net's evaluate_folder).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Also compute HD95, ASSD and normalised surface Dice (labels other than 0).
    #[arg(long)]
    surface: bool,
    /// NSD tolerance in mm.
    #[arg(long, default_value_t = 1.0)]
    nsd_tolerance: f64,
    /// Surface voxel connectivity: 1 (6 neighbours, MedPy's default), 2 (18) or 3 (26).
    #[arg(long, default_value_t = 1)]
    connectivity: u8,
    /// Largest accepted difference between reference and prediction spacing, mm per axis.
    #[arg(long, default_value_t = 1e-3)]
    spacing_tolerance: f64,
    /// Largest accepted difference between reference and prediction origin, mm per axis.
    #[arg(long, default_value_t = 1e-2)]
    origin_tolerance: f64,
    /// Largest accepted difference between reference and prediction direction cosines.
    #[arg(long, default_value_t = 1e-4)]
    direction_tolerance: f64,
    /// Report an origin or direction mismatch as a warning and score the case anyway (default: the case
    /// is an error, since its scores would compare voxels that are not at the same place).
    #[arg(long)]
    allow_geometry_mismatch: bool,
    /// splits_final.pkl (or .json): evaluate exactly the validation cases of --fold.
    #[arg(long, requires = "fold")]
    splits: Option<PathBuf>,
    /// Fold index into --splits.
    #[arg(long, requires = "splits")]
    fold: Option<usize>,
    /// Evaluate the matched cases even when some are missing on one side (they are listed either way).
    #[arg(long)]
    allow_missing: bool,
    /// Worker threads (cases are evaluated in parallel, each case in parallel slabs). Default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// dataset.json (nnU-Net v1 or v2) whose label names head the printed table (summary.json keeps
    /// nnU-Net's keys, the label values). Default: REF_DIR/../dataset.json when there is one, as in a raw
    /// dataset folder (labelsTr or labelsTs beside dataset.json).
    #[arg(long, value_name = "DATASET_JSON")]
    dataset_json: Option<PathBuf>,
    /// summary.json "name".
    #[arg(long, default_value = "")]
    name: String,
    /// summary.json "description" (default: empty, or the surface-metric settings with --surface).
    #[arg(long)]
    description: Option<String>,
    /// summary.json "author".
    #[arg(long, default_value = "Fabian")]
    author: String,
    /// summary.json "task".
    #[arg(long, default_value = "")]
    task: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} cases [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = evaluate_folder(&options(args), &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    nnu_cli::exit_status(result.map(|evaluation| match evaluation.closing_line() {
        Some(closing) => {
            for m in evaluation.failures.iter().chain([&closing]) {
                eprintln!("error: {m}");
            }
            false
        }
        None => {
            print!("{}", evaluation.table);
            println!(
                "{}: {} cases",
                evaluation.output.display(),
                evaluation.cases
            );
            true
        }
    }))
}

fn options(args: Args) -> EvaluateOptions {
    EvaluateOptions {
        labels: args.labels,
        output: args.output,
        surface: args.surface,
        surface_options: SurfaceOptions {
            connectivity: args.connectivity,
            nsd_tolerance_mm: args.nsd_tolerance,
        },
        spacing_tolerance: args.spacing_tolerance,
        origin_tolerance: args.origin_tolerance,
        direction_tolerance: args.direction_tolerance,
        allow_geometry_mismatch: args.allow_geometry_mismatch,
        fold: args.splits.zip(args.fold),
        allow_missing: args.allow_missing,
        threads: args.threads,
        dataset_json: args.dataset_json,
        name: args.name,
        description: args.description,
        author: args.author,
        task: args.task,
        ..EvaluateOptions::new(&args.reference, &args.pred)
    }
}

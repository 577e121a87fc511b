//! `nnu-evaluate`: score predicted segmentations against references and write nnU-Net v1's `summary.json`
//! (nnU-Net 1.7.1 `evaluate_folder` / `aggregate_scores`), optionally with surface metrics.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_metrics::evaluate::{
    case_entry, check_geometry, check_placement, evaluate_case, match_cases, mean_table,
    union_labels,
};
use nnu_metrics::{
    mean_scores, write_summary, SummaryMeta, SurfaceOptions, ASSD_KEY, HD95_KEY, NSD_KEY,
};
use rayon::prelude::*;

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

/// Exit status when some cases could not be evaluated (each named); the workspace's convention.
const EXIT_FAILED: u8 = 1;
/// Exit status for bad arguments, unusable folders, splits or output: nothing was written.
const EXIT_USAGE: u8 = 2;

/// Why a run stopped: the messages to print and the exit status.
struct Failure {
    messages: Vec<String>,
    code: u8,
}

/// A usage or input error: one message, exit status 2.
fn one(message: String) -> Failure {
    Failure {
        messages: vec![message],
        code: EXIT_USAGE,
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for m in failure.messages {
                eprintln!("error: {m}");
            }
            ExitCode::from(failure.code)
        }
    }
}

fn run(args: Args) -> Result<(), Failure> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| one(format!("--threads {n}: {e}")))?;
    }
    let names = label_names(&args)?;
    let only = match (&args.splits, args.fold) {
        (Some(path), Some(fold)) => {
            let splits = nnu_artifacts::Splits::load(path).map_err(|e| one(e.to_string()))?;
            let f = splits.folds.get(fold).ok_or_else(|| {
                one(format!(
                    "{}: fold {fold} requested, the file has {} folds",
                    path.display(),
                    splits.folds.len()
                ))
            })?;
            Some(f.val.clone())
        }
        _ => None,
    };
    let list = match_cases(&args.reference, &args.pred, only.as_deref())
        .map_err(|e| one(e.to_string()))?;
    for name in &list.missing_predictions {
        eprintln!("missing prediction: {}", args.pred.join(name).display());
    }
    for name in &list.missing_references {
        eprintln!("missing reference: {}", args.reference.join(name).display());
    }
    let missing = list.missing_predictions.len() + list.missing_references.len();
    if missing > 0 && !args.allow_missing {
        return Err(one(format!(
            "{}: {missing} case(s) missing on one side (listed above); use --allow-missing to evaluate the rest",
            args.pred.display()
        )));
    }
    if list.pairs.is_empty() {
        return Err(one(format!(
            "{}: no cases to evaluate",
            args.pred.display()
        )));
    }

    let options = SurfaceOptions {
        connectivity: args.connectivity,
        nsd_tolerance_mm: args.nsd_tolerance,
    };
    let bar = ProgressBar::new(list.pairs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} cases [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results: Vec<_> = list
        .pairs
        .par_iter()
        .map(|pair| {
            let r = evaluate_pair(&pair.reference, &pair.test, &args, &options);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if !errors.is_empty() {
        // A summary of the readable cases only would misstate the score: none is written.
        let mut errors = errors;
        errors.push(format!(
            "{}: {} of {} case(s) could not be evaluated (listed above); summary.json not written",
            args.pred.display(),
            errors.len(),
            list.pairs.len()
        ));
        return Err(Failure {
            messages: errors,
            code: EXIT_FAILED,
        });
    }
    let evaluations: Vec<_> = results.into_iter().flatten().collect();
    let labels = args
        .labels
        .clone()
        .unwrap_or_else(|| union_labels(&evaluations));
    let cases: Vec<_> = list
        .pairs
        .iter()
        .zip(&evaluations)
        .map(|(pair, ev)| {
            let (t, r) = (
                pair.test.display().to_string(),
                pair.reference.display().to_string(),
            );
            case_entry(ev, &labels, args.surface, Some(&t), Some(&r))
        })
        .collect();
    let description = args.description.clone().unwrap_or_else(|| {
        if args.surface {
            format!(
                "surface metrics: MedPy 0.5.2 conventions, connectivity {}, NSD tolerance {} mm",
                args.connectivity, args.nsd_tolerance
            )
        } else {
            String::new()
        }
    });
    let meta = SummaryMeta {
        name: args.name.clone(),
        description,
        author: args.author.clone(),
        task: args.task.clone(),
        ..SummaryMeta::default()
    };
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.pred.join("summary.json"));
    write_summary(&output, &cases, &meta).map_err(|e| one(e.to_string()))?;
    let columns = [
        ("Dice", "Dice"),
        ("Jaccard", "Jaccard"),
        ("Precision", "Precision"),
        ("Recall", "Recall"),
        (HD95_KEY, "HD95 mm"),
        (ASSD_KEY, "ASSD mm"),
        (NSD_KEY, "NSD"),
    ];
    print!("{}", mean_table(&mean_scores(&cases), &columns, &names));
    println!("{}: {} cases", output.display(), cases.len());
    Ok(())
}

/// The label names of `--dataset-json`, or of `REF_DIR/../dataset.json` when that exists (a default
/// that cannot be read is a warning, an explicit file an error).
fn label_names(args: &Args) -> Result<std::collections::BTreeMap<i64, String>, Failure> {
    if let Some(path) = &args.dataset_json {
        return nnu_artifacts::v2::label_names(path).map_err(|e| one(e.to_string()));
    }
    let beside = args
        .reference
        .canonicalize()
        .ok()
        .and_then(|r| r.parent().map(|p| p.join("dataset.json")))
        .filter(|p| p.is_file());
    Ok(match beside {
        Some(path) => nnu_artifacts::v2::label_names(&path).unwrap_or_else(|e| {
            eprintln!("warning: label names not shown: {e}");
            Default::default()
        }),
        None => Default::default(),
    })
}

fn evaluate_pair(
    reference: &Path,
    test: &Path,
    args: &Args,
    options: &SurfaceOptions,
) -> Result<nnu_metrics::evaluate::CaseEvaluation, String> {
    let r = nnu_volume::read_labels(reference).map_err(|e| e.to_string())?;
    let t = nnu_volume::read_labels(test).map_err(|e| e.to_string())?;
    let at_test = |e: nnu_metrics::MetricsError| format!("{}: {e}", test.display());
    check_geometry(
        r.shape_zyx(),
        t.shape_zyx(),
        r.geometry.spacing,
        t.geometry.spacing,
        args.spacing_tolerance,
    )
    .map_err(at_test)?;
    if let Err(e) = check_placement(
        r.geometry.origin,
        t.geometry.origin,
        r.geometry.direction,
        t.geometry.direction,
        args.origin_tolerance,
        args.direction_tolerance,
    ) {
        let msg = format!(
            "{}: {e} (reference: {})",
            test.display(),
            reference.display()
        );
        if !args.allow_geometry_mismatch {
            return Err(msg + "; --allow-geometry-mismatch scores it anyway");
        }
        eprintln!("warning: {msg}");
    }
    // nnU-Net's NiftiEvaluator passes the prediction's spacing, reversed to (z, y, x).
    let surface = args.surface.then(|| (t.geometry.spacing_zyx(), options));
    evaluate_case(
        r.data.view(),
        t.data.view(),
        args.labels.as_deref(),
        surface,
    )
    .map_err(at_test)
}

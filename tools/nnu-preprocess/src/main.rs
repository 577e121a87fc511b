//! `nnu-preprocess`: nnU-Net v1 preprocessing to tile bins (for Ascend tools) or to `.npy`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nnu_pipeline::bins::{estimate_case_bytes, free_disk_bytes, is_case_tile, preprocess_to_bins};
use nnu_pipeline::cases::discover_cases;
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::predict::{prepare_case, PreparedCase};
use nnu_pipeline::{npy, PipelineError};
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
    let mut failed = Vec::new();
    if args.npy {
        for case in &cases {
            let npy_path = args.output.join(format!("{}.npy", case.name));
            let r = (|| -> Result<(), PipelineError> {
                let PreparedCase { data, props, .. } = prepare_case(case, &model, false)?;
                npy::write_npy_f32(&npy_path, data.view().into_dyn())?;
                let json = args.output.join(format!("{}.json", case.name));
                let text = serde_json::to_string_pretty(&props)
                    .map_err(|e| PipelineError::Shape(e.to_string()))?;
                nnu_pipeline::atomic_write(&json, |w| std::io::Write::write_all(w, text.as_bytes()))
            })();
            match r {
                Ok(()) => eprintln!("{}: written", case.name),
                Err(e) => {
                    // No .npy without its .json: a half-written case is not left behind.
                    let _ = std::fs::remove_file(&npy_path);
                    eprintln!("error: {}: {e}", case.name);
                    failed.push(case.name.clone());
                }
            }
        }
        if !failed.is_empty() {
            eprintln!("failed cases: {}", failed.join(", "));
        }
        return Ok(failed.is_empty());
    }
    let mirrors = if args.disable_tta {
        MirrorSet::identity_only()
    } else {
        MirrorSet::all()
    };
    // Sizes in the unit that shows them (a small case is "2.3 MiB of tiles", never "0.0 GiB").
    let human = |b: u64| {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        let mut v = b as f64;
        let mut u = 0;
        while v >= 1024.0 && u + 1 < units.len() {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            format!("{b} bytes")
        } else {
            format!("{v:.1} {}", units[u])
        }
    };
    let free = free_disk_bytes(&args.output);
    // A case whose header alone needs more disk than there is (a huge or lying header) fails here, alone;
    // a case whose header cannot be read fails in its own run below. The others go on.
    let mut need = 0u64;
    let mut runnable = Vec::with_capacity(cases.len());
    for case in &cases {
        match estimate_case_bytes(case, &model, args.step_size, mirrors.len()) {
            Ok(bytes) if free.is_some_and(|f| bytes > f) && !args.overwrite => {
                eprintln!(
                    "error: {}: {}: its header means up to {} of tiles, {} free",
                    case.name,
                    case.files[0].display(),
                    human(bytes),
                    human(free.unwrap_or(0))
                );
                failed.push(case.name.clone());
            }
            Ok(bytes) => {
                need += bytes;
                runnable.push(case);
            }
            Err(_) => runnable.push(case),
        }
    }
    eprintln!(
        "{} case(s); tiles need at most {}; {} free",
        cases.len(),
        human(need),
        free.map_or("unknown".into(), human)
    );
    if let Some(free) = free {
        if need > free && !args.overwrite {
            return Err(PipelineError::Input {
                path: args.output.clone(),
                msg: format!(
                    "not enough disk: the tiles need up to {}, {} free (try --disable-tta, or nnu-predict which needs no scratch files)",
                    human(need),
                    human(free)
                ),
            });
        }
    }
    let shape_file = args
        .shape_file
        .clone()
        .unwrap_or_else(|| args.output.join("all_shape.txt"));
    let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} bins, ETA {eta}")
        .expect("static template")
        .progress_chars("=> ");
    for case in runnable {
        let bar = ProgressBar::new(0)
            .with_style(style.clone())
            .with_prefix(case.name.clone());
        let mut progress = |d: usize, t: usize| {
            bar.set_length(t as u64);
            bar.set_position(d as u64);
        };
        match preprocess_to_bins(
            case,
            &model,
            &args.output,
            &shape_file,
            args.step_size,
            mirrors,
            args.overwrite,
            &mut progress,
        ) {
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
            Err(e) => {
                bar.abandon();
                eprintln!("error: {}: {e}", case.name);
                failed.push(case.name.clone());
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed cases: {}", failed.join(", "));
    }
    Ok(failed.is_empty())
}

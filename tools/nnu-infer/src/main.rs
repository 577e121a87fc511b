//! `nnu-infer`: run an ONNX model over tile bins and write output dumps with a latency summary, the
//! counterpart of Huawei's `benchmark` / `ais_bench` (and of the recipe's `onnx_infer.py` with `--loop`).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nnu_bins::DumpNaming;
use nnu_engine::{Backend, TractBackend, TractOptions};
use nnu_pipeline::infer::{InferInput, InferOptions, InferPlan, SUMMARY_FILE};

/// Inference backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// tract-onnx on the CPU.
    Tract,
}

/// Run an ONNX model over tile bins (a folder or a .info file) and write the final head's logits as
/// output dumps, numbered like `benchmark` (_1) or `ais_bench` (_0), with a latency summary on stdout and
/// in DUMP_DIR/summary.json. Complete dumps are skipped, so an interrupted run resumes.
#[derive(Parser, Debug)]
#[command(name = "nnu-infer", version, about, long_about = None)]
struct Args {
    /// The ONNX model (its output named `class`, else its first output, is dumped).
    #[arg(long, value_name = "MODEL.onnx")]
    model: PathBuf,
    /// A folder of input tiles (`*.bin`) or a `.info` file listing them.
    #[arg(
        long,
        value_name = "BIN_DIR|FILE.info",
        required_unless_present = "loop_count"
    )]
    input: Option<PathBuf>,
    /// Folder of the output dumps and summary.json (created if missing).
    #[arg(long, value_name = "DUMP_DIR", required_unless_present = "loop_count")]
    output: Option<PathBuf>,
    /// Threads for the matrix products (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Dump numbering: 1 = `benchmark` (NAME_1.bin), 0 = `ais_bench` (NAME_0.bin).
    #[arg(long, value_name = "0|1", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1))]
    output_numbering: u32,
    /// Run N random inputs instead of files and report the same figures (no dumps written).
    #[arg(long = "loop", value_name = "N", conflicts_with = "input")]
    loop_count: Option<usize>,
    /// Patches per backend call when the model's batch axis is dynamic (default 1, measured fastest).
    #[arg(long, value_name = "B", default_value_t = 1)]
    batch: usize,
    /// Recompute dumps that already exist.
    #[arg(long)]
    overwrite: bool,
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Tract)]
    backend: BackendKind,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut backend: Box<dyn Backend> = match args.backend {
        BackendKind::Tract => {
            let mut opts = TractOptions::default().max_batch(args.batch);
            if let Some(t) = args.threads {
                opts = opts.threads(t);
            }
            Box::new(TractBackend::load(&args.model, &opts)?)
        }
    };
    let input = match (&args.input, args.loop_count) {
        (Some(path), _) => InferInput::from_path(path),
        (None, Some(count)) => InferInput::Random { count, seed: 0 },
        (None, None) => return Err("give --input or --loop".into()),
    };
    let naming = if args.output_numbering == 0 {
        DumpNaming::AisBench
    } else {
        DumpNaming::Benchmark
    };
    let mut options = InferOptions::new(args.output.clone(), naming);
    options.overwrite = args.overwrite;
    let plan = InferPlan::new(&input, &options, backend.as_ref())?;
    if plan.skipped() > 0 {
        eprintln!(
            "{} inputs already have complete dumps; skipping them",
            plan.skipped()
        );
    }
    let bar = ProgressBar::new(plan.tasks().len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tiles  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = plan.run(backend.as_mut(), &mut |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let summary = summary?;
    println!("{summary}");
    if let Some(dir) = &args.output {
        println!(
            "[INFO] summary written to {}",
            dir.join(SUMMARY_FILE).display()
        );
    }
    Ok(())
}

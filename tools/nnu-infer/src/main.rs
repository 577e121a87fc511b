//! `nnu-infer`: run an ONNX model (native kernels or tract, CPU) or an `.om` offline model (AscendCL, one worker per
//! Ascend device) over tile bins and write output dumps with a latency summary, the counterpart of
//! Huawei's `benchmark` / `ais_bench` (and of the recipe's `onnx_infer.py` with `--loop`).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nnu_bins::DumpNaming;
use nnu_engine::{Backend, Precision};
use nnu_pipeline::infer::{InferInput, InferOptions, InferPlan, InferSummary, SUMMARY_FILE};
use nnu_pipeline::run::{open_cpu_backend, CpuBackendOptions, NetworkInput};

/// Inference backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// The native CPU backend (MODEL.onnx), falling back to tract with a one-line note when the model
    /// has an operator it does not implement.
    Auto,
    /// The native CPU backend only (an unsupported operator is an error naming it).
    Native,
    /// tract-onnx on the CPU (MODEL.onnx).
    Tract,
    /// AscendCL on Ascend NPUs (MODEL.om), one worker per `--device` (cargo feature `acl`, on by default).
    Acl,
}

/// Run a model over tile bins (a folder or a .info file) and write the final head's logits as output
/// dumps, numbered like `benchmark` (_1) or `ais_bench` (_0), with a latency summary on stdout and in
/// DUMP_DIR/summary.json. Complete dumps are skipped, so an interrupted run resumes.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-infer",
    version,
    about,
    long_about = None,
    override_usage = "nnu-infer -m MODEL -i BIN_DIR|FILE.info -o DUMP_DIR [OPTIONS]\n       nnu-infer -m MODEL --loop N [OPTIONS]",
    after_help = "Example:\n  nnu-infer -m MODEL_DIR/fold_0/model.onnx -i bins -o result/cpu\n\nExit status: 0 every tile done (or already done), 1 some tiles failed (named), 2 bad arguments or\nunusable model, input or output folder (nothing done)."
)]
struct Args {
    /// The model: a file, ONNX for tract (its output named `class`, else its first output, is dumped) or
    /// an ATC offline model for acl (output 0, the final head, is dumped); or a model folder, whose
    /// `fold_K/model.onnx` (tract) or `fold_K/model.om` (acl) is used, K from --fold.
    #[arg(short = 'm', long, value_name = "MODEL.onnx|MODEL.om|MODEL_DIR")]
    model: PathBuf,
    /// With a model folder as --model: the fold whose model is run.
    #[arg(long, default_value_t = 0)]
    fold: usize,
    /// A folder of input tiles (`*.bin`) or a `.info` file listing them.
    #[arg(
        short = 'i',
        long,
        value_name = "BIN_DIR|FILE.info",
        required_unless_present = "loop_count"
    )]
    input: Option<PathBuf>,
    /// Folder of the output dumps and summary.json (created if missing). With acl, every device writes
    /// there (like `ais_bench --output_dirname`).
    #[arg(
        short = 'o',
        long,
        value_name = "DUMP_DIR",
        required_unless_present = "loop_count"
    )]
    output: Option<PathBuf>,
    /// Threads of the CPU backend (native, tract; default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Dump numbering: 1 = `benchmark` (NAME_1.bin), 0 = `ais_bench` (NAME_0.bin).
    #[arg(long, value_name = "0|1", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1))]
    output_numbering: u32,
    /// Run N random inputs instead of files and report the same figures (no dumps written; with acl on
    /// one device).
    #[arg(long = "loop", value_name = "N", conflicts_with = "input")]
    loop_count: Option<usize>,
    /// Patches per backend call when the model's batch axis is dynamic (CPU backends; default 1, measured
    /// fastest with tract).
    #[arg(long, value_name = "B")]
    batch: Option<usize>,
    /// Recompute dumps that already exist.
    #[arg(long)]
    overwrite: bool,
    /// Inference backend: auto (default) = the native engine, or tract (with a one-line note) when the
    /// network has an operator the native engine lacks.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    backend: BackendKind,
    /// Convolution arithmetic of the native backend: bf16 (inputs and weights rounded to bf16, sums in
    /// f32) needs a CPU with AVX512_BF16 and runs on AMX tiles where the CPU has them (3-5x fp32).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    precision: PrecisionArg,
    /// Ascend device ids, comma-separated, one worker thread each taking the next tile (acl only;
    /// default 0).
    #[arg(long, value_name = "ID,ID,..")]
    device: Option<String>,
    /// The libascendcl.so to load (acl only). Default: $NNU_ACL_LIB, else CANN's usual places
    /// ($ASCEND_TOOLKIT_HOME, $ASCEND_HOME_PATH, /usr/local/Ascend/...), then LD_LIBRARY_PATH.
    #[arg(long, value_name = "PATH")]
    acl_lib: Option<PathBuf>,
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
    let mut args = Args::parse();
    args.model = resolve_model(&args.model, args.fold, args.backend);
    match run(&args) {
        Ok(()) => ExitCode::from(nnu_pipeline::cli::EXIT_OK),
        Err(e) if e.is::<TilesFailed>() => {
            eprintln!("error: {e}");
            ExitCode::from(nnu_pipeline::cli::EXIT_FAILED)
        }
        Err(e) => {
            // One line, even when a runtime's message spans several.
            let text = e.to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("error: {}", line.join(" "));
            ExitCode::from(nnu_pipeline::cli::EXIT_USAGE)
        }
    }
}

/// `--model` as given when it is a file; for a model folder, its `fold_K/model.onnx` (tract) or
/// `fold_K/model.om` (acl), the layout `nnu-predict` reads (the CPU backends all read the ONNX).
fn resolve_model(model: &std::path::Path, fold: usize, backend: BackendKind) -> PathBuf {
    if !model.is_dir() {
        return model.to_path_buf();
    }
    let file = match backend {
        BackendKind::Auto | BackendKind::Native | BackendKind::Tract => "model.onnx",
        BackendKind::Acl => "model.om",
    };
    model.join(format!("fold_{fold}")).join(file)
}

/// Some inputs could not be run (each was listed); the others' dumps are written. Exit status 1.
#[derive(Debug)]
struct TilesFailed(String);

impl std::fmt::Display for TilesFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TilesFailed {}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn run(args: &Args) -> AnyResult<()> {
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
    let precision = match args.precision {
        PrecisionArg::Fp32 => Precision::F32,
        PrecisionArg::Bf16 => Precision::Bf16,
    };
    match args.backend {
        BackendKind::Auto | BackendKind::Native | BackendKind::Tract => {
            if args.device.is_some() || args.acl_lib.is_some() {
                return Err("--device and --acl-lib apply to --backend acl only".into());
            }
            let threads = args
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if args.backend == BackendKind::Tract && precision != Precision::F32 {
                return Err(
                    "--precision bf16 needs the native backend (tract runs fp32 only)".into(),
                );
            }
            let kind = match args.backend {
                BackendKind::Tract => nnu_pipeline::run::BackendKind::Tract,
                BackendKind::Native => nnu_pipeline::run::BackendKind::Native,
                _ => nnu_pipeline::run::BackendKind::Auto,
            };
            let cpu = CpuBackendOptions {
                kind,
                threads,
                precision,
            };
            let network = NetworkInput::model_file(args.batch.unwrap_or(1));
            let mut backend = open_cpu_backend(&args.model, None, &network, &cpu, &mut false)?;
            run_one_backend(backend.as_mut(), &input, &options)
        }
        BackendKind::Acl => {
            if args.threads.is_some() || args.batch.is_some() || precision != Precision::F32 {
                return Err(
                    "--threads, --batch and --precision apply to the CPU backends only (an .om model has a static batch)"
                        .into(),
                );
            }
            run_acl(args, &input, &options)
        }
    }
}

/// Runs every input through one CPU backend.
fn run_one_backend(
    backend: &mut dyn Backend,
    input: &InferInput,
    options: &InferOptions,
) -> AnyResult<()> {
    let plan = InferPlan::new(input, options, backend)?;
    report_skipped(plan.skipped());
    let bar = progress_bar(plan.tasks().len());
    let summary = plan.run(backend, &mut |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    report(summary?, options)
}

/// Runs every input on the Ascend devices of `--device` at once, one worker each.
#[cfg(feature = "acl")]
fn run_acl(args: &Args, input: &InferInput, options: &InferOptions) -> AnyResult<()> {
    let devices = parse_devices(args.device.as_deref().unwrap_or("0"))?;
    if matches!(input, InferInput::Random { .. }) && devices.len() != 1 {
        return Err("--loop runs on one device; give a single --device".into());
    }
    let mut devices =
        nnu_pipeline::infer::load_acl_devices(&args.model, &devices, args.acl_lib.clone())?;
    let plan = InferPlan::new(input, options, devices[0].backend.as_ref())?;
    report_skipped(plan.skipped());
    let bar = progress_bar(plan.tasks().len());
    let summary = plan.run_devices(&mut devices, &|done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    report(summary?, options)
}

#[cfg(not(feature = "acl"))]
fn run_acl(_: &Args, _: &InferInput, _: &InferOptions) -> AnyResult<()> {
    Err("--backend acl: this nnu-infer was built without the `acl` cargo feature; rebuild it with \
         `cargo build --release -p nnu-infer --features acl` (the feature is on by default and needs no \
         CANN to build)"
        .into())
}

/// Parses `--device`: comma-separated non-negative ids, none twice.
#[cfg_attr(not(feature = "acl"), allow(dead_code))]
fn parse_devices(text: &str) -> AnyResult<Vec<i32>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let id = part
            .parse::<i32>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| format!("--device {text}: {part:?} is not a device id"))?;
        if out.contains(&id) {
            return Err(format!("--device {text}: device {id} is listed twice").into());
        }
        out.push(id);
    }
    Ok(out)
}

/// Prints the summary and where it was written; some inputs that could not be run are [`TilesFailed`].
fn report(summary: InferSummary, options: &InferOptions) -> AnyResult<()> {
    println!("{summary}");
    report_summary_file(options);
    if !summary.failed.is_empty() {
        return Err(Box::new(TilesFailed(format!(
            "{} of {} input(s) could not be run (listed above); the others' dumps are written",
            summary.failed.len(),
            summary.failed.len() + summary.processed
        ))));
    }
    Ok(())
}

fn report_skipped(skipped: usize) {
    if skipped > 0 {
        eprintln!("{skipped} already done (complete dumps), skipped");
    }
}

fn report_summary_file(options: &InferOptions) {
    if let Some(dir) = &options.output_dir {
        println!(
            "[INFO] summary written to {}",
            dir.join(SUMMARY_FILE).display()
        );
    }
}

fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tiles  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists() {
        assert_eq!(parse_devices("0").unwrap(), vec![0]);
        assert_eq!(parse_devices("3, 1,2").unwrap(), vec![3, 1, 2]);
        for bad in ["", "0,", "a", "-1", "0,,1", "1.5"] {
            let e = parse_devices(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--device {bad}:")), "{e}");
        }
        let e = parse_devices("0,1,0").unwrap_err().to_string();
        assert_eq!(e, "--device 0,1,0: device 0 is listed twice");
    }
}

//! `nnu-infer`: run an ONNX model (native kernels or tract, CPU) or an `.om` offline model (AscendCL, one worker per
//! Ascend device) over tile bins and write output dumps with a latency summary, the counterpart of
//! Huawei's `benchmark` / `ais_bench` (and of the recipe's `onnx_infer.py` with `--loop`).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nnu_bins::DumpNaming;
use nnu_engine::Precision;
use nnu_pipeline::infer::{
    model_file, parse_devices, print_summary, run_inference, InferBackend, InferInput, InferOptions,
};
use nnu_pipeline::run::CpuBackendOptions;

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
    args.model = model_file(&args.model, args.fold, args.backend == BackendKind::Acl);
    nnu_pipeline::cli::exit_status(run(&args).map_err(|e| {
        // One line, even when a runtime's message spans several.
        let text = e.to_string();
        let line: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        line.join(" ")
    }))
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn run(args: &Args) -> AnyResult<bool> {
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
    let backend = match args.backend {
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
            InferBackend::Cpu {
                options: cpu,
                batch: args.batch.unwrap_or(1),
            }
        }
        BackendKind::Acl => {
            if args.threads.is_some() || args.batch.is_some() || precision != Precision::F32 {
                return Err(
                    "--threads, --batch and --precision apply to the CPU backends only (an .om model has a static batch)"
                        .into(),
                );
            }
            InferBackend::Acl {
                devices: parse_devices(args.device.as_deref().unwrap_or("0"))?,
                library: args.acl_lib.clone(),
            }
        }
    };
    // Drawn from the first input run, after the count of inputs already done.
    let bar = progress_bar();
    let summary = run_inference(&args.model, &backend, &input, &options, &|done, total| {
        if bar.is_hidden() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let summary = summary?;
    // Some inputs could not be run (each was listed); the others' dumps are written: status 1.
    match print_summary(&summary, &options) {
        Some(failed) => {
            eprintln!("error: {failed}");
            Ok(false)
        }
        None => Ok(true),
    }
}

fn progress_bar() -> ProgressBar {
    ProgressBar::hidden().with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tiles  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

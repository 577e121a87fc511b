//! `nnu-predict`: streaming nnU-Net v1 and nnunetv2 prediction. NIfTI or DICOM series in, NIfTI segmentation
//! out, all in memory.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nnu_pipeline::cascade::{
    describe_v1, describe_v2, v1_prev_source, v2_prev_source, CascadeOptions,
};
use nnu_pipeline::cases::{discover_cases, Case, Shard};
use nnu_pipeline::cli::{self, LogProgress};
use nnu_pipeline::model::ModelSpec;
use nnu_pipeline::predict::{predict_case_cascade, CaseReport};
use nnu_pipeline::run::{
    check_outputs_not_inputs, dice_per_label, load_cpu_backends, report_failures, run_cases,
    select_fold_cases, shard_cases, BackendKind, CpuBackendOptions, Precision,
};
use nnu_pipeline::stages::{available_memory, is_case_file, output_paths, PredictOptions};
use nnu_pipeline::v2::{is_v2_folder, load_v2_backends, predict_case_v2_cascade, V2Model};
use nnu_pipeline::v2_out::V2OutputPaths;
use nnu_pipeline::PipelineError;
use nnu_tiling::MirrorSet;

/// A model folder, opened before the images are listed.
enum Opened {
    /// nnU-Net v1 (plans.pkl).
    V1(ModelSpec),
    /// nnunetv2 (plans.json, dataset.json).
    V2(V2Model),
}

/// Predict segmentations with an nnU-Net v1 model (UNet++ or plain nnU-Net) or an nnunetv2 model
/// (PlainConvUNet, ResEnc; 3-D configurations): preprocess, sliding window with
/// mirroring, Gaussian merge, export; no scratch files. Finished cases are skipped, so an interrupted run
/// resumes where it stopped.
#[derive(Parser, Debug)]
#[command(
    name = "nnu-predict",
    version,
    about,
    long_about = None,
    override_usage = "nnu-predict -m MODEL_DIR -i IMAGES [-o OUT] [OPTIONS]\n       nnu-predict --demo",
    after_help = "Example:\n  nnu-predict -m Task003_Liver/nnUNetPlusPlusTrainerV2__nnUNetPlansv2.1 -i imagesTs -o predictions --folds 0\n\nExit status: 0 every case done (or already done), 1 some cases failed (named), 2 bad arguments or\nunusable model, input or output folder (nothing done)."
)]
struct Args {
    /// Model folder: nnU-Net v1 (plans.pkl, fold_K/...) or nnunetv2 (plans.json, dataset.json,
    /// fold_K/checkpoint_final.pth), told apart by what it holds.
    #[arg(
        short = 'm',
        long,
        value_name = "MODEL_DIR",
        required_unless_present = "demo"
    )]
    model: Option<PathBuf>,
    /// A NIfTI image, a folder (nnU-Net raw naming CASE_0000.nii.gz or MSD naming CASE.nii.gz), a folder
    /// of DICOM series (searched with its subfolders when it holds no NIfTI file; one case per series,
    /// uncompressed transfer syntaxes), or a .txt list of image paths.
    #[arg(
        short = 'i',
        long,
        value_name = "IMAGES",
        required_unless_present = "demo"
    )]
    input: Option<PathBuf>,
    /// Output folder (created if missing). Default: ./nnu-predictions (./nnu-demo-output with --demo).
    #[arg(short = 'o', long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// ONNX model to use instead of each fold's model.onnx (one model, no fold ensemble).
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// Folds to ensemble, e.g. 0,1,2 (default: every fold with a checkpoint).
    #[arg(long, value_delimiter = ',')]
    folds: Vec<usize>,
    /// Disable test-time mirroring (8x faster, slightly less accurate).
    #[arg(long)]
    disable_tta: bool,
    /// Mirror only along these array axes (0 = z, 1 = y, 2 = x), e.g. 1,2.
    #[arg(long, value_delimiter = ',')]
    mirror_axes: Vec<usize>,
    /// Sliding-window step as a fraction of the patch size, in (0, 1] (nnU-Net's step_size).
    #[arg(long, default_value_t = cli::DEFAULT_STEP_SIZE, value_parser = cli::parse_step_size)]
    step_size: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Also write CASE_probabilities.npy (f32, classes x Z x Y x X, original frame); for an nnunetv2
    /// model what nnUNetv2_predict writes instead: CASE.npz (probabilities) and CASE.pkl (properties).
    #[arg(long)]
    save_probabilities: bool,
    /// Also write CASE.png: axial slices with the segmentation overlaid.
    #[arg(long)]
    preview: bool,
    /// Process only shard K of N (0-based), e.g. 3/8 in a Slurm array or indexed Job.
    #[arg(long)]
    shard: Option<Shard>,
    /// Recompute cases whose outputs exist.
    #[arg(long)]
    overwrite: bool,
    /// splits_final.pkl: predict only the validation cases of --fold.
    #[arg(long, requires = "fold")]
    splits: Option<PathBuf>,
    /// Fold of --splits whose validation cases are predicted.
    #[arg(long, requires = "splits")]
    fold: Option<usize>,
    /// Refuse (as that case's error) a case whose estimated peak memory exceeds this, e.g. 16G or 512M
    /// (default: the memory available to this process: MemAvailable, and RLIMIT_AS when set).
    #[arg(long, value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Skip postprocessing.json even when the model folder has one.
    #[arg(long)]
    no_postprocessing: bool,
    /// nnunetv2 models: the configuration of plans.json to predict with (default: the one the model
    /// folder's name ends with, e.g. 3d_fullres). 3-D and 2d configurations (2d slice by slice, as
    /// nnunetv2), 3d_lowres, and 3d_cascade_fullres with --prev-stage or --lowres-model.
    #[arg(short = 'c', long)]
    configuration: Option<String>,
    /// Cascades (an nnunetv2 3d_cascade_fullres configuration, an nnU-Net v1 cascade trainer folder): the
    /// folder with the previous stage's segmentation of each case, CASE.nii.gz (nnunetv2's
    /// -prev_stage_predictions, nnU-Net v1's --lowres_segmentations).
    #[arg(long, value_name = "DIR", conflicts_with = "lowres_model")]
    prev_stage: Option<PathBuf>,
    /// Cascades: predict the previous stage first, in memory, with this model folder (v1: the 3d_lowres
    /// model folder; nnunetv2: the previous configuration's, e.g. nnUNetTrainer__nnUNetPlans__3d_lowres).
    /// Without this and --prev-stage, the standard folder beside the model is used when it exists.
    #[arg(long, value_name = "DIR")]
    lowres_model: Option<PathBuf>,
    /// Cascades predicted in one command: also write the previous stage's segmentations to
    /// OUT/3d_lowres_predictions.
    #[arg(long, conflicts_with = "prev_stage")]
    keep_lowres: bool,
    /// nnunetv2 models: the checkpoint of each fold, checkpoint_final.pth or checkpoint_best.pth.
    #[arg(long, default_value = "checkpoint_final.pth")]
    checkpoint: String,
    /// Run the demo built into this binary: a small UNet++ on two phantom CTs, with previews and Dice
    /// (writes to -o, default nnu-demo-output).
    #[arg(long)]
    demo: bool,
    /// CPU inference backend: auto (default) = the native engine, or tract (with a one-line note) when
    /// the network has an operator the native engine lacks; native fails on such an operator instead.
    /// tract is in the build only with the cargo feature `tract` (`cargo install --path
    /// tools/nnu-predict --features tract`); without it auto reports the operator.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Convolution arithmetic of the native backend: bf16 (inputs and weights rounded to bf16, sums in
    /// f32) needs a CPU with AVX512_BF16 and runs on AMX tiles where the CPU has them (3-5x fp32).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    precision: PrecisionArg,
}

/// `--backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// native, falling back to tract on an unsupported operator.
    Auto,
    /// Our own CPU kernels.
    Native,
    /// tract-onnx (builds with the cargo feature `tract`).
    Tract,
}

/// `--precision` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    /// 32-bit float.
    Fp32,
    /// bfloat16 products with fp32 accumulation (AVX512_BF16 CPUs).
    Bf16,
}

/// Parses a size in bytes with an optional binary suffix: 512M, 16G, 1.5T, 4096.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in '{s}' (K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 16G or 512M"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("'{s}' is not a positive size"));
    }
    Ok((v * mult as f64) as u64)
}

/// The cascade flags and what the previous stage is loaded with.
fn cascade_options(args: &Args) -> CascadeOptions {
    CascadeOptions {
        prev_stage: args.prev_stage.clone(),
        lowres_model: args.lowres_model.clone(),
        keep_lowres: args.keep_lowres,
        folds: args.folds.clone(),
        checkpoint: args.checkpoint.clone(),
        mirrors: None,
    }
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

fn run(mut args: Args) -> Result<bool, PipelineError> {
    // The embedded demo, unpacked into a temporary folder that lives until the end of the run.
    let demo = if args.demo {
        Some(nnu_demo::Demo::unpack().map_err(|e| match e {
            nnu_demo::DemoError::Io { path, source } => PipelineError::io(&path, source),
        })?)
    } else {
        None
    };
    if let Some(d) = &demo {
        args.model.get_or_insert(d.model_dir());
        args.input.get_or_insert(d.images_dir());
        args.output.get_or_insert(PathBuf::from("nnu-demo-output"));
        args.preview = true;
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    nnu_pipeline::run::init_thread_pool(Some(threads));
    let (Some(model_dir), Some(input)) = (args.model.as_ref(), args.input.as_ref()) else {
        unreachable!("clap requires --model and --input unless --demo")
    };
    let out_dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("nnu-predictions"));
    let v2 = is_v2_folder(model_dir);
    if v2 && args.onnx.is_some() {
        return Err(PipelineError::Input {
            path: model_dir.clone(),
            msg: "--onnx takes one v1 network; for an nnunetv2 model put model.onnx into fold_K/ \
                  (nnu-export-onnx --model) or let the network be built from the checkpoint"
                .into(),
        });
    }
    // The model before the images: a wrong model folder is named first.
    let opened = if v2 {
        Opened::V2(V2Model::open(
            model_dir,
            args.configuration.as_deref(),
            &args.checkpoint,
        )?)
    } else {
        let model = ModelSpec::open(model_dir)?;
        // A v1 folder is one configuration, decided by its trainer (class and stage).
        let is = if model.cascade_classes.is_some() {
            "3d_cascade_fullres"
        } else if model.stage + 1 < model.folder.plans.stages.len() {
            "3d_lowres"
        } else {
            "3d_fullres"
        };
        if let Some(c) = args.configuration.as_deref().filter(|&c| c != is) {
            return Err(PipelineError::Input {
                path: model_dir.clone(),
                msg: format!(
                    "-c {c}: this nnU-Net v1 model folder is a {is} model (its trainer decides)"
                ),
            });
        }
        Opened::V1(model)
    };
    let mut cases = discover_cases(input)?;
    if let (Some(splits), Some(fold)) = (&args.splits, args.fold) {
        let (kept, missing) = select_fold_cases(cases, splits, fold)?;
        if !missing.is_empty() {
            eprintln!(
                "warning: {} validation case(s) of fold {fold} have no image: {}",
                missing.len(),
                missing.join(", ")
            );
        }
        cases = kept;
    }
    let cases = shard_cases(cases, args.shard);
    let mirrors = if args.disable_tta {
        MirrorSet::identity_only()
    } else if !args.mirror_axes.is_empty() {
        MirrorSet::from_axes(&args.mirror_axes)?
    } else {
        MirrorSet::all()
    };
    let mut opts = PredictOptions {
        step_size: args.step_size,
        mirrors,
        save_probabilities: args.save_probabilities,
        preview: args.preview,
        overwrite: args.overwrite,
        postprocess: !args.no_postprocessing,
        max_memory: args.max_memory.or_else(available_memory),
        ..PredictOptions::default()
    };
    // Before anything is loaded or written: an output must never replace an input.
    check_outputs_not_inputs(&cases, &out_dir, |dir, name| {
        let (seg, prob, png) = output_paths(dir, name);
        if v2 {
            V2OutputPaths::new(dir, name).all()
        } else {
            vec![seg, prob, png]
        }
    })?;
    if demo.is_some() {
        opts.preview_options.label_names = nnu_demo::LABEL_NAMES.map(String::from).to_vec();
    }
    let backend_opts = CpuBackendOptions {
        kind: match args.backend {
            BackendArg::Auto => BackendKind::Auto,
            BackendArg::Native => BackendKind::Native,
            BackendArg::Tract => BackendKind::Tract,
        },
        threads,
        precision: match args.precision {
            PrecisionArg::Fp32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        },
    };
    type Predict<'a> = Box<
        dyn FnMut(&Case, &mut dyn FnMut(usize, usize)) -> Result<CaseReport, PipelineError> + 'a,
    >;
    let (description, mut predict): (String, Predict) = match opened {
        Opened::V2(model) => {
            let loaded = load_v2_backends(&model, &args.folds, &backend_opts)?;
            let tta_default = !args.disable_tta && args.mirror_axes.is_empty();
            if tta_default {
                opts.mirrors = loaded.default_mirrors()?;
            }
            let cascade = CascadeOptions {
                mirrors: (!tta_default).then_some(opts.mirrors),
                ..cascade_options(&args)
            };
            let mut prev = v2_prev_source(&model, &cascade, &out_dir, &backend_opts)?;
            let prev_note = describe_v2(prev.as_ref());
            // the preview legend names the labels as dataset.json does
            opts.preview_options.label_names = model.label_names();
            let description = format!(
            "nnunetv2 model {} ({}, {} fold(s), {} backend, patch {:?}, {} output(s), mirrors {}){prev_note}",
            model_dir.display(),
            model.configuration,
            loaded.backends.len(),
            loaded.backends.first().map_or("no", |b| b.name()),
            model.patch,
            model.heads,
            opts.mirrors
        );
            let mut backends = loaded.backends;
            let (opts, out_dir) = (opts.clone(), out_dir.clone());
            (
                description,
                Box::new(move |case: &Case, progress: &mut dyn FnMut(usize, usize)| {
                    predict_case_v2_cascade(
                        case,
                        &model,
                        &mut backends,
                        prev.as_mut(),
                        &out_dir,
                        &opts,
                        progress,
                    )
                }),
            )
        }
        Opened::V1(model) => {
            let mut backends =
                load_cpu_backends(&model, &args.folds, args.onnx.as_deref(), &backend_opts)?;
            let mut prev =
                v1_prev_source(&model, &cascade_options(&args), &out_dir, &backend_opts)?;
            let prev_note = describe_v1(prev.as_ref());
            let description = format!(
                "model {} ({} fold(s), {} backend, patch {:?}, {} classes){prev_note}",
                model_dir.display(),
                backends.len(),
                backends.first().map_or("no", |b| b.name()),
                model.patch,
                model.num_classes,
            );
            let (opts, out_dir) = (opts.clone(), out_dir.clone());
            (
                description,
                Box::new(move |case: &Case, progress: &mut dyn FnMut(usize, usize)| {
                    predict_case_cascade(
                        case,
                        &model,
                        &mut backends,
                        prev.as_mut(),
                        &out_dir,
                        &opts,
                        progress,
                    )
                }),
            )
        }
    };
    nnu_pipeline::prepare_output_dir(&out_dir)?;
    // Temporaries of a killed run, for this run's cases only (other shards may be writing theirs).
    nnu_pipeline::remove_stale_temps(&out_dir, |f| cases.iter().any(|c| is_case_file(f, &c.name)));
    eprintln!(
        "{description}; {} case(s) -> {}",
        cases.len(),
        out_dir.display()
    );
    let t0 = Instant::now();
    let style = ProgressStyle::with_template(
        "{prefix:>16} [{bar:30}] {pos}/{len} tiles, {elapsed} elapsed, ETA {eta}",
    )
    .expect("static template")
    .progress_chars("=> ");
    let mut skipped = 0;
    let mut model_json_copied = false;
    let mut log = LogProgress::new(std::time::Duration::from_secs(30));
    let failures = run_cases(
        &cases,
        |case| case.name.clone(),
        |case| {
            // The bar appears only once tiles run, so a case that is already done leaves no empty bar.
            let bar = ProgressBar::hidden()
                .with_style(style.clone())
                .with_prefix(case.name.clone());
            let mut progress = |done: usize, total: usize| {
                if bar.is_hidden() && !log.enabled() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                log.update(&case.name, done, total);
            };
            let mut r = predict(case, &mut progress);
            // As nnUNetv2_predict, the model's dataset.json and plans.json go beside the predictions
            // (nnUNetv2_ensemble and nnUNetv2_apply_postprocessing read them there); copied once a case
            // is done, so a run whose cases all fail leaves nothing.
            if v2 && !model_json_copied && matches!(&r, Ok(r) if r.held_by.is_none()) {
                match nnu_pipeline::v2_out::copy_model_json(model_dir, &out_dir) {
                    Ok(notes) => {
                        model_json_copied = true;
                        for note in notes {
                            eprintln!("warning: {note}");
                        }
                    }
                    Err(e) => r = Err(e),
                }
            }
            match &r {
                Ok(r) if r.held_by.is_some() => {
                    bar.finish_and_clear();
                    skipped += 1;
                    eprintln!(
                        "{}: skipped, another run (pid {}) is working on it",
                        r.name,
                        r.held_by.unwrap_or_default()
                    );
                }
                Ok(r) if r.skipped => {
                    bar.finish_and_clear();
                    skipped += 1;
                }
                Ok(r) => {
                    bar.finish_and_clear();
                    eprintln!(
                        "{}: {} tiles x {} passes in {:.1} s -> {}",
                        r.name,
                        r.tiles,
                        r.passes / r.tiles.max(1),
                        r.seconds,
                        r.output.display()
                    );
                }
                Err(_) => bar.abandon(),
            }
            r
        },
    );
    eprintln!(
        "{}",
        cli::summary_line(
            t0.elapsed().as_secs_f64(),
            cases.len() - failures.len() - skipped,
            failures.len(),
            skipped
        )
    );
    let all_ok = report_failures(&failures);
    if let Some(d) = &demo {
        println!("case                 liver Dice  tumour Dice");
        for case in &cases {
            let pred = out_dir.join(format!("{}.nii.gz", case.name));
            let reference = d.label_path(&case.name);
            let d = dice_per_label(&pred, &reference, 2)?;
            println!("{:<20} {:>10.4}  {:>11.4}", case.name, d[0], d[1]);
        }
        println!(
            "segmentations and previews (.png) are in {}",
            out_dir.display()
        );
    }
    Ok(all_ok)
}

//! Batch bookkeeping shared by the tools: selecting cases (fold filter, shard), loading one backend per
//! fold, running every case while isolating failures ([`run_cases`]), and the demo's Dice check.

use std::path::{Path, PathBuf};

pub use nnu_engine::Precision;
use nnu_engine::{Backend, EngineError};

use crate::cases::{Case, Shard};
#[cfg(feature = "export")]
use crate::model::ModelSpec;
use crate::PipelineError;

/// Sizes rayon's global thread pool to `threads` (`None`: rayon's default, all cores), for the tools'
/// `--threads`. Does nothing when the global pool already exists.
pub fn init_thread_pool(threads: Option<usize>) {
    if let Some(t) = threads {
        // An error only means the pool was built already; the work then runs on that pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
}

/// The validation case ids of `fold` in `splits_path` (`splits_final.pkl` or `.json`); a fold the file
/// does not have is an error naming the file and its fold count.
pub fn fold_validation_ids(splits_path: &Path, fold: usize) -> Result<Vec<String>, PipelineError> {
    let mut splits = nnu_artifacts::Splits::load(splits_path)?;
    let folds = splits.folds.len();
    if fold >= folds {
        return Err(PipelineError::Input {
            path: splits_path.to_path_buf(),
            msg: format!("fold {fold} does not exist ({folds} folds)"),
        });
    }
    Ok(splits.folds.swap_remove(fold).val)
}

/// Keeps the cases whose names are in the validation set of `fold` of `splits_final.pkl` (the recipe's
/// `create_testset.py`). Returns the kept cases and the validation ids that have no image.
pub fn select_fold_cases(
    cases: Vec<Case>,
    splits_path: &Path,
    fold: usize,
) -> Result<(Vec<Case>, Vec<String>), PipelineError> {
    let val = fold_validation_ids(splits_path, fold)?;
    let missing: Vec<String> = val
        .iter()
        .filter(|id| !cases.iter().any(|c| &c.name == *id))
        .cloned()
        .collect();
    let kept = cases
        .into_iter()
        .filter(|c| val.contains(&c.name))
        .collect();
    Ok((kept, missing))
}

/// Applies an optional shard to the sorted case list.
pub fn shard_cases(cases: Vec<Case>, shard: Option<Shard>) -> Vec<Case> {
    match shard {
        Some(s) => s.select(cases),
        None => cases,
    }
}

/// The CPU inference backend to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The native backend, falling back to tract (with one printed line) when the model has an
    /// operator the native backend does not implement.
    #[default]
    Auto,
    /// The native backend only: an unsupported operator is an error naming it.
    Native,
    /// tract-onnx.
    Tract,
}

/// How [`load_cpu_backends`] loads each fold's network.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackendOptions {
    /// Which backend.
    pub kind: BackendKind,
    /// Threads of the backend's private pool.
    pub threads: usize,
    /// Convolution arithmetic of the native backend (tract is always fp32; bf16 with tract is an
    /// error).
    pub precision: Precision,
}

impl CpuBackendOptions {
    /// `kind` with `threads` threads in fp32.
    pub fn new(kind: BackendKind, threads: usize) -> Self {
        CpuBackendOptions {
            kind,
            threads,
            precision: Precision::F32,
        }
    }
}

/// Where a fold's network comes from.
#[cfg(feature = "export")]
enum NetworkSource {
    File(PathBuf),
    /// Built in memory from `fold`'s checkpoint (the fold has no `model.onnx`).
    Checkpoint {
        fold: String,
        number: Option<usize>,
    },
}

/// Loads one tract backend per fold: `onnx` when given (a single model), else each fold's `model.onnx`
/// (built in memory from the checkpoint when the fold has none).
#[cfg(feature = "tract")]
pub fn load_tract_backends(
    model: &ModelSpec,
    folds: &[usize],
    onnx: Option<&Path>,
    threads: usize,
) -> Result<Vec<Box<dyn Backend>>, PipelineError> {
    load_cpu_backends(
        model,
        folds,
        onnx,
        &CpuBackendOptions::new(BackendKind::Tract, threads),
    )
}

/// Loads one CPU backend per fold: `onnx` when given (a single model), else each fold's `model.onnx`,
/// else the fold's network built in memory from its checkpoint with `nnu_onnx_export` (no export step
/// needed). With [`BackendKind::Auto`], a model the native backend cannot run is loaded with tract
/// after printing `note: native backend: <reason>; using tract` once. (Cargo feature `tract` or
/// `native`, both on by default.)
#[cfg(feature = "export")]
pub fn load_cpu_backends(
    model: &ModelSpec,
    folds: &[usize],
    onnx: Option<&Path>,
    options: &CpuBackendOptions,
) -> Result<Vec<Box<dyn Backend>>, PipelineError> {
    if options.kind == BackendKind::Tract && options.precision != Precision::F32 {
        return Err(PipelineError::Input {
            path: model.folder.dir.clone(),
            msg: "--precision bf16 needs the native backend (tract runs fp32 only)".into(),
        });
    }
    let sources: Vec<NetworkSource> = match onnx {
        Some(p) => vec![NetworkSource::File(p.to_path_buf())],
        None => {
            let names = model.fold_names(folds)?;
            let mut sources = Vec::with_capacity(names.len());
            for name in names {
                let entry = model.folder.folds.iter().find(|f| f.name == name);
                match model.onnx_for_fold(&name) {
                    Ok(p) => sources.push(NetworkSource::File(p)),
                    Err(_) if entry.is_some_and(|f| f.checkpoint.is_some()) => {
                        sources.push(NetworkSource::Checkpoint {
                            number: entry.and_then(|f| f.fold),
                            fold: name,
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            sources
        }
    };
    let mut noted = false;
    let mut backends = Vec::with_capacity(sources.len());
    for source in sources {
        let (path, bytes) = match source {
            NetworkSource::File(p) => (p, None),
            NetworkSource::Checkpoint { fold, number } => {
                let loaded = nnu_onnx_export::from_artifacts::load_model_folder(
                    &model.folder.dir,
                    number,
                    "model_final_checkpoint",
                    None,
                )?;
                let exported = nnu_onnx_export::export_model(
                    &loaded.spec,
                    loaded.state_dict,
                    &nnu_onnx_export::ExportOptions::default(),
                )?;
                let origin = model
                    .folder
                    .dir
                    .join(fold)
                    .join(nnu_artifacts::model::FINAL_CHECKPOINT);
                (origin, Some(exported.to_bytes()))
            }
        };
        let backend = open_cpu_backend(
            &path,
            bytes.as_deref(),
            &NetworkInput::patch(model.patch, model.input_channels()),
            options,
            &mut noted,
        )?;
        if backend.num_classes() != model.num_classes {
            return Err(PipelineError::Input {
                path,
                msg: format!(
                    "the network has {} output classes, {} has {} (a model of another task?)",
                    backend.num_classes(),
                    model.folder.plans_path.display(),
                    model.num_classes
                ),
            });
        }
        backends.push(backend);
    }
    Ok(backends)
}

/// What a CPU network is opened for: its input shape and how many patches one call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkInput {
    /// Spatial patch (z, y, x); `None`: the one fixed in the model.
    pub patch: Option<[usize; 3]>,
    /// Input channels; `None`: the count fixed in the model.
    pub channels: Option<usize>,
    /// Patches per call of the native backend.
    pub native_batch: usize,
    /// Patches per call of tract.
    pub tract_batch: usize,
    /// With bf16 asked and [`BackendKind::Auto`] falling back to tract (which runs fp32 only): `true`
    /// makes that an error, `false` runs tract in fp32.
    pub fallback_refuses_bf16: bool,
}

impl NetworkInput {
    /// A prediction's network: `patch` and `channels` given, a tile's mirrors in one call of the native
    /// backend (up to 8: a small network runs them a whole sample per thread), one patch per call of
    /// tract, and a fallback to tract in fp32.
    pub fn patch(patch: [usize; 3], channels: usize) -> Self {
        NetworkInput {
            patch: Some(patch),
            channels: Some(channels),
            native_batch: 8,
            tract_batch: 1,
            fallback_refuses_bf16: false,
        }
    }

    /// A model file run as it is (`nnu-infer`): the shape fixed in the model, `batch` patches per call
    /// of either backend, and no fallback to tract when bf16 is asked.
    pub fn model_file(batch: usize) -> Self {
        NetworkInput {
            patch: None,
            channels: None,
            native_batch: batch,
            tract_batch: batch,
            fallback_refuses_bf16: true,
        }
    }
}

/// Opens one network (`bytes` when built in memory, else the ONNX file `path`) with the backend of
/// `options` for `input`. With [`BackendKind::Auto`], a network the native backend cannot run is opened
/// with tract after printing `note: native backend: <reason>; using tract` (once per `noted`). A
/// backend left out of the build (cargo features `native`, `tract`) is an error naming the model; `Auto`
/// without `native` opens tract, and `Auto` without `tract` reports what the native backend refused.
pub fn open_cpu_backend(
    path: &Path,
    bytes: Option<&[u8]>,
    input: &NetworkInput,
    options: &CpuBackendOptions,
    noted: &mut bool,
) -> Result<Box<dyn Backend>, PipelineError> {
    match options.kind {
        BackendKind::Native => open_native(path, bytes, input, options),
        BackendKind::Tract => open_tract(path, bytes, input, options),
        BackendKind::Auto if !cfg!(feature = "native") => open_tract(path, bytes, input, options),
        BackendKind::Auto => match open_native(path, bytes, input, options) {
            Err(PipelineError::Engine(e @ EngineError::Unsupported { .. }))
                if !cfg!(feature = "tract") =>
            {
                Err(PipelineError::Input {
                    path: path.to_path_buf(),
                    msg: format!(
                        "native backend: {e}; this build has no tract fallback: rebuild the tool \
                         with the cargo feature `tract` (e.g. `cargo install --path tools/nnu-predict \
                         --features tract`)"
                    ),
                })
            }
            Err(PipelineError::Engine(e @ EngineError::Unsupported { .. })) => {
                if !*noted {
                    eprintln!("note: native backend: {e}; using tract");
                    *noted = true;
                }
                if input.fallback_refuses_bf16 && options.precision != Precision::F32 {
                    return Err(PipelineError::Input {
                        path: path.to_path_buf(),
                        msg: "--precision bf16 needs the native backend (tract runs fp32 only)"
                            .into(),
                    });
                }
                open_tract(path, bytes, input, options)
            }
            other => other,
        },
    }
}

/// The error for a backend this build left out.
#[allow(dead_code)] // used only when a backend feature is off
fn not_built(path: &Path, backend: &str) -> PipelineError {
    PipelineError::Input {
        path: path.to_path_buf(),
        msg: format!(
            "this build has no {backend} backend; rebuild the tool with the cargo feature `{backend}` \
             (e.g. `cargo install --path tools/nnu-predict --features {backend}`)"
        ),
    }
}

#[cfg(feature = "native")]
fn open_native(
    path: &Path,
    bytes: Option<&[u8]>,
    input: &NetworkInput,
    options: &CpuBackendOptions,
) -> Result<Box<dyn Backend>, PipelineError> {
    use nnu_engine::{NativeBackend, NativeOptions};
    let mut opts = NativeOptions::default()
        .threads(options.threads)
        .precision(options.precision)
        .max_batch(input.native_batch);
    if let Some(patch) = input.patch {
        opts = opts.patch_size(patch);
    }
    if let Some(channels) = input.channels {
        opts = opts.input_channels(channels);
    }
    Ok(Box::new(match bytes {
        Some(b) => NativeBackend::from_onnx_bytes(b, path, &opts)?,
        None => NativeBackend::load(path, &opts)?,
    }))
}

#[cfg(not(feature = "native"))]
fn open_native(
    path: &Path,
    _: Option<&[u8]>,
    _: &NetworkInput,
    _: &CpuBackendOptions,
) -> Result<Box<dyn Backend>, PipelineError> {
    Err(not_built(path, "native"))
}

#[cfg(feature = "tract")]
fn open_tract(
    path: &Path,
    bytes: Option<&[u8]>,
    input: &NetworkInput,
    options: &CpuBackendOptions,
) -> Result<Box<dyn Backend>, PipelineError> {
    use nnu_engine::{TractBackend, TractOptions};
    let mut opts = TractOptions::default()
        .threads(options.threads)
        .max_batch(input.tract_batch);
    if let Some(patch) = input.patch {
        opts = opts.patch_size(patch);
    }
    if let Some(channels) = input.channels {
        opts = opts.input_channels(channels);
    }
    Ok(Box::new(match bytes {
        Some(b) => TractBackend::from_onnx_bytes(b, path, &opts)?,
        None => TractBackend::load(path, &opts)?,
    }))
}

#[cfg(not(feature = "tract"))]
fn open_tract(
    path: &Path,
    _: Option<&[u8]>,
    _: &NetworkInput,
    _: &CpuBackendOptions,
) -> Result<Box<dyn Backend>, PipelineError> {
    Err(not_built(path, "tract"))
}

/// Refuses a run in which an output file would be one of its input files (`-o` set to the images'
/// folder with MSD naming, where `CASE.nii.gz` is both): `outputs(out_dir, name)` lists the files a case
/// writes. Paths are compared after resolving links; nothing is written. Call it before any case runs.
pub fn check_outputs_not_inputs(
    cases: &[Case],
    out_dir: &Path,
    outputs: impl Fn(&Path, &str) -> Vec<PathBuf>,
) -> Result<(), PipelineError> {
    let resolve = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let out = resolve(out_dir);
    let inputs: Vec<(PathBuf, &Path, &str)> = cases
        .iter()
        .flat_map(|c| c.files.iter().map(move |f| (f, c.name.as_str())))
        .map(|(f, name)| (resolve(f), f.as_path(), name))
        .collect();
    for case in cases {
        for o in outputs(&out, &case.name) {
            let o = resolve(&o);
            if let Some((_, given, owner)) = inputs.iter().find(|(i, _, _)| *i == o) {
                return Err(PipelineError::Input {
                    path: given.to_path_buf(),
                    msg: format!(
                        "the output of case '{}' would overwrite this input (of case '{owner}'); \
                         choose an output folder (-o) other than the images' folder",
                        case.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A failed case in a batch.
#[derive(Debug)]
pub struct Failure {
    /// The case name.
    pub name: String,
    /// What went wrong (file and problem).
    pub error: PipelineError,
}

/// Runs `work` on each item of a batch in order, isolating failures: a case that fails is reported on
/// standard error as `error: NAME: FILE: what is wrong` and listed, and the batch goes on with the next.
/// `name` gives an item's case name. Returns the failures in batch order (empty when every case succeeded);
/// [`report_failures`] prints their closing line. What a successful case prints is up to `work`.
pub fn run_cases<I, T>(
    items: impl IntoIterator<Item = I>,
    name: impl Fn(&I) -> String,
    mut work: impl FnMut(&I) -> Result<T, PipelineError>,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for item in items {
        if let Err(error) = work(&item) {
            let name = name(&item);
            eprintln!("error: {name}: {error}");
            failures.push(Failure { name, error });
        }
    }
    failures
}

/// What a batch tells its user while its cases run (a tool's progress bars), for the batches that run
/// cases one after the other ([`crate::job::Predictor::run`]).
pub trait CaseProgress {
    /// `done` of `total` steps of `case` have run (tiles; for a cascade predicted in one command the
    /// previous stage's tiles first).
    fn tiles(&mut self, case: &Case, done: usize, total: usize);
    /// `case` has ended (`ok`: predicted or skipped), before its line is printed.
    fn end(&mut self, case: &Case, ok: bool);
}

/// A [`CaseProgress`] that shows nothing.
pub struct ProgressSink;

impl CaseProgress for ProgressSink {
    fn tiles(&mut self, _: &Case, _: usize, _: usize) {}
    fn end(&mut self, _: &Case, _: bool) {}
}

/// Prints the closing `failed cases: a, b` line of a batch on standard error (nothing when none failed)
/// and returns true when every case succeeded.
pub fn report_failures(failures: &[Failure]) -> bool {
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|f| f.name.as_str()).collect();
        eprintln!("failed cases: {}", names.join(", "));
    }
    failures.is_empty()
}

/// What [`with_case_lock`] did with a case.
#[derive(Debug)]
pub enum Locked<T> {
    /// The lock was taken and the work ran; its result.
    Done(T),
    /// Another live process holds the case's lock: the work was not run.
    Busy {
        /// That process's id.
        pid: u32,
    },
}

/// Runs `work` for case `name` while holding the case's lock in `out_dir` (`.NAME.lock`,
/// [`nnu_fsio::CaseLock`]), as `nnu-predict` does, so that two runs on one output folder never work on
/// the same case at once. When another live process holds the lock, `work` is not run and that
/// process's pid is returned. `out_dir` is created when missing.
pub fn with_case_lock<T>(
    out_dir: &Path,
    name: &str,
    work: impl FnOnce() -> Result<T, PipelineError>,
) -> Result<Locked<T>, PipelineError> {
    std::fs::create_dir_all(out_dir).map_err(|e| PipelineError::io(out_dir, e))?;
    match nnu_fsio::CaseLock::acquire(out_dir, name)? {
        nnu_fsio::Acquired::Held(lock) => {
            let r = work();
            drop(lock);
            r.map(Locked::Done)
        }
        nnu_fsio::Acquired::Busy(owner) => Ok(Locked::Busy { pid: owner.pid }),
    }
}

/// Takes the lock of a file that several runs update in turn (`all_shape.txt`: `.NAME.lock` beside it),
/// waiting while another live process holds it, for at most `timeout`. The lock is released when the
/// returned guard is dropped.
pub fn wait_for_file_lock(
    file: &Path,
    timeout: std::time::Duration,
) -> Result<nnu_fsio::CaseLock, PipelineError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let t0 = std::time::Instant::now();
    loop {
        match nnu_fsio::CaseLock::acquire(dir, &name)? {
            nnu_fsio::Acquired::Held(lock) => return Ok(lock),
            nnu_fsio::Acquired::Busy(owner) if t0.elapsed() >= timeout => {
                return Err(PipelineError::Input {
                    path: file.to_path_buf(),
                    msg: format!(
                        "locked by another run (pid {}, lock file {}) for more than {} s",
                        owner.pid,
                        nnu_fsio::CaseLock::path_for(dir, &name).display(),
                        timeout.as_secs_f64()
                    ),
                })
            }
            nnu_fsio::Acquired::Busy(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// Prints the demo's table on standard output: the liver and tumour Dice of each case's
/// `out_dir/CASE.nii.gz` against `reference(CASE)`, then where the outputs are.
pub fn print_demo_dice(
    cases: &[Case],
    out_dir: &Path,
    reference: impl Fn(&str) -> PathBuf,
) -> Result<(), PipelineError> {
    println!("case                 liver Dice  tumour Dice");
    for case in cases {
        let pred = out_dir.join(format!("{}.nii.gz", case.name));
        let d = dice_per_label(&pred, &reference(&case.name), 2)?;
        println!("{:<20} {:>10.4}  {:>11.4}", case.name, d[0], d[1]);
    }
    println!(
        "segmentations and previews (.png) are in {}",
        out_dir.display()
    );
    Ok(())
}

/// Dice of each foreground label (1..=`num_labels`) between a predicted and a reference label file; NaN
/// where both are empty (nnU-Net's rule).
pub fn dice_per_label(
    pred: &Path,
    reference: &Path,
    num_labels: u8,
) -> Result<Vec<f64>, PipelineError> {
    let p = nnu_volume::read_labels(pred)?;
    let r = nnu_volume::read_labels(reference)?;
    let labels: Vec<i64> = (1..=num_labels as i64).collect();
    let counts =
        nnu_metrics::confusion_counts(r.data.view(), p.data.view(), &labels).map_err(|e| {
            PipelineError::Input {
                path: pred.to_path_buf(),
                msg: e.to_string(),
            }
        })?;
    Ok(counts.iter().map(nnu_metrics::dice).collect())
}

//! What `nnu-infer` runs: the model file of a model folder, the backend (a CPU network or the Ascend
//! devices), the run over the inputs, and the summary it prints.

use std::path::{Path, PathBuf};

use crate::run::{open_cpu_backend, CpuBackendOptions, NetworkInput};

use super::*;

/// Where an [`InferPlan`] runs.
#[derive(Debug, Clone)]
pub enum InferBackend {
    /// A CPU backend on the model's ONNX, `batch` patches per call.
    Cpu {
        /// The backend, its threads and arithmetic.
        options: CpuBackendOptions,
        /// Patches per network call (the ONNX's batch axis).
        batch: usize,
    },
    /// The `.om` model on these Ascend devices, one worker each (cargo feature `acl`).
    Acl {
        /// Device ids.
        devices: Vec<i32>,
        /// The `libascendcl.so` to load (default: `$NNU_ACL_LIB`, else CANN's usual places).
        library: Option<PathBuf>,
    },
}

/// `model` as given when it is a file; for a model folder, its `fold_K/model.onnx` (a CPU backend) or
/// `fold_K/model.om` (`acl`), the layout `nnu-predict` reads.
pub fn model_file(model: &Path, fold: usize, acl: bool) -> PathBuf {
    if !model.is_dir() {
        return model.to_path_buf();
    }
    let file = if acl { "model.om" } else { "model.onnx" };
    model.join(format!("fold_{fold}")).join(file)
}

/// Parses a list of Ascend device ids (`--device`): comma-separated, not negative, none twice.
pub fn parse_devices(text: &str) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let id = part
            .parse::<i32>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| format!("--device {text}: {part:?} is not a device id"))?;
        if out.contains(&id) {
            return Err(format!("--device {text}: device {id} is listed twice"));
        }
        out.push(id);
    }
    Ok(out)
}

/// Opens `model` on `backend` and runs every input of `input` on it (several devices at once for
/// [`InferBackend::Acl`]), printing how many were already done; `progress(done, total)` after each
/// input. The summary is [`print_summary`]'s to print.
pub fn run_inference(
    model: &Path,
    backend: &InferBackend,
    input: &InferInput,
    options: &InferOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<InferSummary, PipelineError> {
    match backend {
        InferBackend::Cpu {
            options: cpu,
            batch,
        } => {
            let network = NetworkInput::model_file(*batch);
            let mut backend = open_cpu_backend(model, None, &network, cpu, &mut false)?;
            let plan = InferPlan::new(input, options, backend.as_ref())?;
            report_skipped(plan.skipped());
            plan.run(backend.as_mut(), &mut |done, total| progress(done, total))
        }
        InferBackend::Acl { devices, library } => {
            run_acl(model, devices, library.clone(), input, options, progress)
        }
    }
}

#[cfg(feature = "acl")]
fn run_acl(
    model: &Path,
    devices: &[i32],
    library: Option<PathBuf>,
    input: &InferInput,
    options: &InferOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<InferSummary, PipelineError> {
    if matches!(input, InferInput::Random { .. }) && devices.len() != 1 {
        return Err(PipelineError::Devices(
            "--loop runs on one device; give a single --device".into(),
        ));
    }
    let mut devices = load_acl_devices(model, devices, library)?;
    let plan = InferPlan::new(input, options, devices[0].backend.as_ref())?;
    report_skipped(plan.skipped());
    plan.run_devices(&mut devices, progress)
}

#[cfg(not(feature = "acl"))]
fn run_acl(
    _: &Path,
    _: &[i32],
    _: Option<PathBuf>,
    _: &InferInput,
    _: &InferOptions,
    _: &(dyn Fn(usize, usize) + Sync),
) -> Result<InferSummary, PipelineError> {
    Err(PipelineError::Devices(
        "--backend acl: this nnu-infer was built without the `acl` cargo feature; rebuild it with \
         `cargo build --release -p nnu-infer --features acl` (the feature is on by default and needs no \
         CANN to build)"
            .into(),
    ))
}

fn report_skipped(skipped: usize) {
    if skipped > 0 {
        eprintln!("{skipped} already done (complete dumps), skipped");
    }
}

/// Prints `summary` on standard output, and where it was written when `options` has a dump folder.
/// Returns the message naming how many inputs could not be run, when some could not (each was
/// listed as it failed).
pub fn print_summary(summary: &InferSummary, options: &InferOptions) -> Option<String> {
    println!("{summary}");
    if let Some(dir) = &options.output_dir {
        println!(
            "[INFO] summary written to {}",
            dir.join(SUMMARY_FILE).display()
        );
    }
    (!summary.failed.is_empty()).then(|| {
        format!(
            "{} of {} input(s) could not be run (listed above); the others' dumps are written",
            summary.failed.len(),
            summary.failed.len() + summary.processed
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists() {
        assert_eq!(parse_devices("0").unwrap(), vec![0]);
        assert_eq!(parse_devices("3, 1,2").unwrap(), vec![3, 1, 2]);
        for bad in ["", "0,", "a", "-1", "0,,1", "1.5"] {
            let e = parse_devices(bad).unwrap_err();
            assert!(e.starts_with(&format!("--device {bad}:")), "{e}");
        }
        let e = parse_devices("0,1,0").unwrap_err();
        assert_eq!(e, "--device 0,1,0: device 0 is listed twice");
    }
}

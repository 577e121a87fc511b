//! Composition of the steps into nnU-Net v1 inference, in two paths built from the same stages:
//!
//! - [`stages`]: read and preprocess a case, predict it (tiles x mirrors through a backend, Gaussian merge,
//!   fold ensemble), export and write its outputs; each stage once.
//! - [`predict`]: the streaming path, all in memory; [`job`] runs it over the cases of an input
//!   (`nnu-predict`).
//! - [`bins`]: the file path to accelerators, the tiles written as bins (`nnu-preprocess`) and the device's
//!   dumps merged back (`nnu-postprocess`), [`bins_run`] over the cases of an input (`nnu-preprocess`);
//!   [`infer`] runs such bins on a backend (`nnu-infer`).
//! - [`cascade`]: the previous stage's segmentation of a cascade stage (`3d_cascade_fullres`), from a folder
//!   or predicted first in memory ([`predict::predict_case_cascade`] for v1, [`v2::predict_case_v2_cascade`]).
//! - [`evaluate`] scores a folder of predictions against references and writes nnU-Net's `summary.json`
//!   (`nnu-evaluate`).
//! - [`cases`] finds the cases of an input, [`model`] opens a model folder, [`run`] holds the batch
//!   bookkeeping (fold selection, sharding, loading backends, the demo's Dice), [`npy`] and [`preview`] the
//!   optional outputs, [`cli`] what the tools' command lines share (`nnu-cli`).
//!
//! Cargo features: `tract` and `native` (both on by default) are `nnu-engine`'s CPU backends, which
//! `run::load_cpu_backends` and `v2::load_v2_backends` load (with `export`, networks built in memory
//! from checkpoints); `acl` adds the Ascend NPUs to [`infer`]. `--no-default-features --features acl`
//! compiles no tract: what `nnu-infer` needs on an NPU-only machine.
//!
//! # Example
//!
//! Predict every case of a folder with the folds of a model folder (what `nnu-predict` does):
//!
//! ```no_run
//! use std::path::Path;
//!
//! use nnu_pipeline::cases::discover_cases;
//! use nnu_pipeline::model::ModelSpec;
//! use nnu_pipeline::predict::predict_case;
//! use nnu_pipeline::run::load_tract_backends;
//! use nnu_pipeline::stages::PredictOptions;
//!
//! let model = ModelSpec::open(Path::new("Task003_Liver/nnUNetTrainerV2__nnUNetPlansv2.1"))?;
//! // Every fold's model.onnx, two threads each.
//! let mut backends = load_tract_backends(&model, &[], None, 2)?;
//! let opts = PredictOptions::default(); // nnU-Net's: step 0.5, eight mirrors, Gaussian weights
//! for case in discover_cases(Path::new("imagesTs"))? {
//!     let report = predict_case(&case, &model, &mut backends, Path::new("out"), &opts, &mut |_, _| {})?;
//!     println!("{}: {} tiles -> {}", report.name, report.tiles, report.output.display());
//! }
//! # Ok::<(), nnu_pipeline::PipelineError>(())
//! ```

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

#[cfg(feature = "progress")]
pub mod bars;
pub mod bins;
pub mod bins_run;
pub mod bins_v2;
pub mod cascade;
pub mod cases;
pub mod cli;
pub mod evaluate;
pub mod infer;
#[cfg(feature = "export")]
pub mod job;
pub mod model;
pub mod npy;
pub mod npz;
pub mod predict;
pub mod preview;
pub mod run;
pub mod stages;
pub mod v2;
pub mod v2_out;

/// Everything that can go wrong while composing the pipeline; each variant names the file or value.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An input file or folder is not what the pipeline expects.
    #[error("{path}: {msg}")]
    Input {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Arrays whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Reading or writing a volume.
    #[error(transparent)]
    Volume(#[from] nnu_volume::VolumeError),
    /// Finding or reading a DICOM series (the message names its folder and SeriesInstanceUID).
    #[error(transparent)]
    Dicom(#[from] nnu_dicom::DicomError),
    /// Reading the model folder.
    #[error(transparent)]
    Artifacts(#[from] nnu_artifacts::error::Error),
    /// Preprocessing or export.
    #[error(transparent)]
    Preprocess(#[from] nnu_preprocessing::PreprocessError),
    /// Tiling or merging.
    #[error(transparent)]
    Tiling(#[from] nnu_tiling::TilingError),
    /// Matching, scoring or writing `summary.json` (the message names the file).
    #[error(transparent)]
    Metrics(#[from] nnu_metrics::MetricsError),
    /// Tile bins, `all_shape.txt`, dumps.
    #[error(transparent)]
    Bins(#[from] nnu_bins::BinsError),
    /// The inference backend.
    #[error(transparent)]
    Engine(#[from] nnu_engine::EngineError),
    /// The inference backend failed on a batch of tile files (named, in batch order).
    #[error("{}: {source}", fmt_paths(.inputs))]
    Run {
        /// The batch's input tiles.
        inputs: Vec<PathBuf>,
        /// What the backend reported.
        #[source]
        source: nnu_engine::EngineError,
    },
    /// A device list that cannot be run (empty, a device twice, a device that does not exist), or
    /// the runtime of the devices cannot be loaded.
    #[error("{0}")]
    Devices(String),
    /// One device of a multi-device run failed (every other worker stopped).
    #[error("device {device}: {source}")]
    Device {
        /// The device whose worker failed.
        device: i32,
        /// Its error.
        #[source]
        source: Box<PipelineError>,
    },
    /// The worker thread of one device panicked.
    #[error("device {device}: worker thread panicked: {message}")]
    WorkerPanic {
        /// The device whose worker panicked.
        device: i32,
        /// The panic message.
        message: String,
    },
    /// Building a fold's network from its checkpoint (no `model.onnx`; cargo feature `export`).
    #[cfg(feature = "export")]
    #[error(transparent)]
    Export(#[from] nnu_onnx_export::ExportError),
}

fn fmt_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl PipelineError {
    /// Wraps an IO error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        PipelineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `path` atomically and durably ([`nnu_fsio::write_atomic_with`]): `fill` writes a temporary file
/// in the same folder, which is `fsync`ed and renamed over `path`, so a reader never sees a partial file
/// and an interrupted run leaves none behind.
pub fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut nnu_fsio::Writer) -> std::io::Result<()>,
) -> Result<(), PipelineError> {
    nnu_fsio::write_atomic_with(path, fill).map_err(PipelineError::from)
}

impl From<nnu_fsio::FsioError> for PipelineError {
    fn from(e: nnu_fsio::FsioError) -> Self {
        let (path, source) = e.into_parts();
        PipelineError::Io { path, source }
    }
}

/// Makes `dir` ready to receive outputs: creates it (and its parents) and checks that a file can be created
/// in it, so that an unusable output folder is one clear error before any work, not one per case.
pub fn prepare_output_dir(dir: &Path) -> Result<(), PipelineError> {
    if dir.exists() && !dir.is_dir() {
        return Err(PipelineError::Input {
            path: dir.to_path_buf(),
            msg: "the output path is a file, not a folder".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::Input {
        path: dir.to_path_buf(),
        msg: format!("cannot create the output folder: {e}"),
    })?;
    let probe = nnu_fsio::temp_path(&dir.join("nnu-write-probe"))?;
    std::fs::File::create(&probe).map_err(|e| PipelineError::Input {
        path: dir.to_path_buf(),
        msg: format!("cannot write in the output folder: {e}"),
    })?;
    let _ = std::fs::remove_file(&probe);
    // Probes of runs killed between the two calls above (harmless to another run's live probe).
    remove_stale_temps(dir, |t| t == "nnu-write-probe");
    Ok(())
}

/// The file an atomic-write temporary stands for: `NAME` of `.NAME.PID-START-SEQ.tmp`
/// ([`nnu_fsio::temp_target`]); `None` for any other file name.
pub fn temp_target(file_name: &str) -> Option<&str> {
    nnu_fsio::temp_target(file_name).map(|t| t.target)
}

/// Deletes what killed runs left in `dir` for the files `owned` accepts, and returns how many were
/// deleted: temporaries (see [`temp_target`]; `owned` is asked about the file a temporary stands for)
/// and case locks (`.NAME.lock`; `owned` is asked about the lock's own name, as
/// [`stages::is_case_file`] accepts it). A temporary or lock whose process still runs (another run
/// sharing the folder) is never deleted ([`nnu_fsio::remove_stale_temps`],
/// [`nnu_fsio::remove_stale_locks`]).
pub fn remove_stale_temps(dir: &Path, owned: impl Fn(&str) -> bool) -> usize {
    nnu_fsio::remove_stale_temps(dir, &owned) + nnu_fsio::remove_stale_locks(dir, &owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_of_every_writer() {
        assert_eq!(temp_target(".a.nii.gz.123-456-0.tmp"), Some("a.nii.gz"));
        assert_eq!(
            temp_target(".c_0_32_0_32_0_32_0.bin.77-1-3.tmp"),
            Some("c_0_32_0_32_0_32_0.bin")
        );
        assert_eq!(temp_target(".a.nii.gz.123.tmp"), None);
        assert_eq!(temp_target("a.nii.gz"), None);
        assert_eq!(temp_target(".hidden"), None);
        assert_eq!(temp_target(".123.tmp"), None);
    }

    #[test]
    fn stale_temps_of_owned_files_only() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            // Processes that do not exist (pid 4000000 with start time 1).
            ".a.nii.gz.4000000-1-0.tmp",
            ".b.nii.gz.4000000-1-1.tmp",
            "a.nii.gz",
            ".a.png.4000000-1-2.tmp",
        ] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        let n = remove_stale_temps(d.path(), |t| t.starts_with("a."));
        assert_eq!(n, 2);
        let mut left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".b.nii.gz.4000000-1-1.tmp", "a.nii.gz"]);
    }

    #[test]
    fn output_dir_that_is_a_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let e = prepare_output_dir(&f).unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
        assert!(prepare_output_dir(&f.join("sub")).is_err());
        prepare_output_dir(&d.path().join("new/deeper")).unwrap();
        assert!(d.path().join("new/deeper").is_dir());
    }
}

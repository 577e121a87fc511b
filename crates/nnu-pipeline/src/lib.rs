//! Composition of the steps: streaming predict, bin preprocess/postprocess, per-case bookkeeping.
//!
//! (Being filled in.)

use std::io::Write;
use std::path::{Path, PathBuf};

pub mod bins;
pub mod cases;
pub mod infer;
pub mod model;
pub mod npy;
pub mod predict;
pub mod preview;
pub mod run;

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
    /// Reading the model folder.
    #[error(transparent)]
    Artifacts(#[from] nnu_artifacts::error::Error),
    /// Preprocessing or export.
    #[error(transparent)]
    Preprocess(#[from] nnu_preprocessing::PreprocessError),
    /// Tiling or merging.
    #[error(transparent)]
    Tiling(#[from] nnu_tiling::TilingError),
    /// Tile bins, `all_shape.txt`, dumps.
    #[error(transparent)]
    Bins(#[from] nnu_bins::BinsError),
    /// The inference backend.
    #[error(transparent)]
    Engine(#[from] nnu_engine::EngineError),
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

/// Writes `path` atomically: `fill` writes a temporary file in the same folder, which is then renamed over
/// `path`, so a reader never sees a partial file and an interrupted run leaves none behind.
pub fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), PipelineError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        w.flush()?;
        w.get_ref().sync_data()?;
        drop(w);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(PipelineError::io(path, e));
    }
    Ok(())
}

//! The bundled demo of nnu-rs, embedded in the binary: a small nnU-Net v1 UNet++ model folder and two
//! synthetic phantom CTs with their reference labels.
//!
//! The files are compiled in with `include_bytes!` (about 3.3 MB), so a tool built with this crate has its
//! demo wherever it is run from, an installed binary too. [`Demo::unpack`] writes them into a fresh
//! temporary folder (removed when the [`Demo`] is dropped) in the layouts the pipeline reads: an nnU-Net v1
//! model folder, a folder of images in nnU-Net raw naming, a folder of labels.
//!
//! ```
//! let demo = nnu_demo::Demo::unpack()?;
//! assert!(demo.model_dir().join("plans.pkl").is_file());
//! assert!(demo.model_dir().join("fold_0/model.onnx").is_file());
//! assert_eq!(demo.cases(), ["phantom_000", "phantom_001"]);
//! assert!(demo.label_path("phantom_000").is_file());
//! # Ok::<(), nnu_demo::DemoError>(())
//! ```
//!
//! How the model and phantoms were made is in `data/README.md` (`scripts/demo/`). This crate does not run
//! anything: `nnu-predict --demo` is the demo's front end.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// Errors while unpacking the demo; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Creating the temporary folder or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One embedded file: its path relative to the demo root, and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct DemoFile {
    /// Relative path, `/`-separated (e.g. `model/fold_0/model.onnx`).
    pub path: &'static str,
    /// The file's content.
    pub bytes: &'static [u8],
}

macro_rules! embed {
    ($($p:literal),* $(,)?) => {
        [$(DemoFile { path: $p, bytes: include_bytes!(concat!("../data/", $p)) }),*]
    };
}

/// Every embedded file. The model folder holds only what inference needs (`plans.pkl`, the exported
/// `fold_0/model.onnx`), not the torch checkpoint.
pub const FILES: [DemoFile; 7] = embed![
    "model/plans.pkl",
    "model/fold_0/model.onnx",
    "images/phantom_000_0000.nii.gz",
    "images/phantom_001_0000.nii.gz",
    "labels/phantom_000.nii.gz",
    "labels/phantom_001.nii.gz",
    "README.md",
];

/// Names of the classes the demo model segments, label 1 first (label 0 is background).
pub const LABEL_NAMES: [&str; 2] = ["liver", "tumour"];

/// The demo, unpacked into a temporary folder that is removed on drop.
#[derive(Debug)]
pub struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    /// Writes every embedded file into a fresh temporary folder (under the system's temporary directory).
    pub fn unpack() -> Result<Demo, DemoError> {
        let tmp = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix("nnu-demo-")
            .tempdir()
            .map_err(|source| DemoError::Io { path: tmp, source })?;
        write_files(dir.path())?;
        Ok(Demo { dir })
    }

    /// The folder the files were unpacked into.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The nnU-Net v1 model folder (`plans.pkl`, `fold_0/model.onnx`).
    pub fn model_dir(&self) -> PathBuf {
        self.root().join("model")
    }

    /// The images, in nnU-Net raw naming (`CASE_0000.nii.gz`).
    pub fn images_dir(&self) -> PathBuf {
        self.root().join("images")
    }

    /// The reference labels (`CASE.nii.gz`).
    pub fn labels_dir(&self) -> PathBuf {
        self.root().join("labels")
    }

    /// The reference label of `case`.
    pub fn label_path(&self, case: &str) -> PathBuf {
        self.labels_dir().join(format!("{case}.nii.gz"))
    }

    /// The case names, sorted.
    pub fn cases(&self) -> Vec<String> {
        cases()
    }
}

/// The embedded case names, sorted.
pub fn cases() -> Vec<String> {
    let mut v: Vec<String> = FILES
        .iter()
        .filter_map(|f| f.path.strip_prefix("labels/")?.strip_suffix(".nii.gz"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Writes every embedded file under `root` (folders created as needed, existing files replaced).
pub fn write_files(root: &Path) -> Result<(), DemoError> {
    for f in FILES {
        let path = root.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DemoError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, f.bytes).map_err(|source| DemoError::Io { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacked_files_equal_the_embedded_bytes_and_vanish_on_drop() {
        let demo = Demo::unpack().unwrap();
        let root = demo.root().to_path_buf();
        for f in FILES {
            assert_eq!(
                std::fs::read(root.join(f.path)).unwrap(),
                f.bytes,
                "{}",
                f.path
            );
        }
        // gzip magic on every volume, ONNX protobuf is non-trivial
        for f in FILES.iter().filter(|f| f.path.ends_with(".nii.gz")) {
            assert_eq!(&f.bytes[..2], &[0x1f, 0x8b], "{}", f.path);
        }
        assert!(FILES[1].bytes.len() > 1_000_000);
        drop(demo);
        assert!(!root.exists());
    }

    #[test]
    fn every_case_has_an_image_and_a_label() {
        let cases = cases();
        assert_eq!(cases.len(), 2);
        for c in &cases {
            let img = format!("images/{c}_0000.nii.gz");
            assert!(FILES.iter().any(|f| f.path == img), "{img}");
        }
    }
}

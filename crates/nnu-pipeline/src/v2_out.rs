//! What `nnUNetv2_predict --save_probabilities` writes beside a segmentation: `CASE.npz` (one array
//! `probabilities`, float32, (heads, z, y, x) in the image's numpy frame, deflated as
//! `np.savez_compressed` writes it) and `CASE.pkl` (the case's properties dict), the pair
//! `nnUNetv2_ensemble` reads back.
//!
//! The pickle is protocol 2 with plain Python values: `sitk_stuff` (`spacing`, `origin`, `direction`
//! tuples of floats, SimpleITK's order), `spacing` (a list of floats, numpy order), `shape_before_cropping`
//! (a tuple of ints), `bbox_used_for_cropping` (a list of `[start, end]` lists),
//! `shape_after_cropping_and_before_resampling` (a tuple of ints). nnunetv2 stores `spacing` as numpy
//! float64 scalars; plain floats compare equal to them and load without numpy.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use nnu_preprocessing::v2::{V2CaseProperties, V2Probabilities};
use nnu_volume::Geometry;

use crate::PipelineError;

/// The files one case of a v2 prediction writes in `out_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2OutputPaths {
    /// `CASE.nii.gz`
    pub segmentation: PathBuf,
    /// `CASE.npz` (with `--save-probabilities`)
    pub npz: PathBuf,
    /// `CASE.pkl` (with `--save-probabilities`)
    pub pkl: PathBuf,
    /// `CASE.png` (with `--preview`)
    pub png: PathBuf,
}

impl V2OutputPaths {
    /// The paths for case `name` in `out_dir` (nnunetv2's names).
    pub fn new(out_dir: &Path, name: &str) -> Self {
        V2OutputPaths {
            segmentation: out_dir.join(format!("{name}.nii.gz")),
            npz: out_dir.join(format!("{name}.npz")),
            pkl: out_dir.join(format!("{name}.pkl")),
            png: out_dir.join(format!("{name}.png")),
        }
    }

    /// Every path the options can make a case write.
    pub fn all(&self) -> Vec<PathBuf> {
        vec![
            self.segmentation.clone(),
            self.npz.clone(),
            self.pkl.clone(),
            self.png.clone(),
        ]
    }

    /// Whether the outputs `save_probabilities` and `preview` ask for exist and are whole: the
    /// segmentation is a file, the `.npz` ends with a zip's end-of-central-directory record, the `.pkl`
    /// with the pickle STOP opcode, the preview with its `IEND` chunk.
    pub fn complete(&self, save_probabilities: bool, preview: bool) -> bool {
        self.segmentation.is_file()
            && (!save_probabilities
                || (ends_with_zip_directory(&self.npz) && ends_with(&self.pkl, b".")))
            && (!preview || crate::preview::is_complete_png(&self.png))
    }
}

fn read_tail(path: &Path, n: u64) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len < n {
        return None;
    }
    f.seek(SeekFrom::Start(len - n)).ok()?;
    let mut buf = Vec::with_capacity(n as usize);
    f.take(n).read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn ends_with(path: &Path, tail: &[u8]) -> bool {
    read_tail(path, tail.len() as u64).is_some_and(|t| t == tail)
}

/// A zip without an archive comment ends with the 22-byte end-of-central-directory record.
fn ends_with_zip_directory(path: &Path) -> bool {
    read_tail(path, 22).is_some_and(|t| t.starts_with(b"PK\x05\x06"))
}

/// Stages `CASE.npz`: a zip holding `probabilities.npy` (little-endian f32, C order, (heads, z, y, x) in
/// the image's frame), deflated at `level` (0-9), written one head at a time as
/// [`V2Probabilities::for_each_head`] makes it ([`crate::npz::stage_npz_f32_pieces`]): one f32 channel of
/// the image is alive besides the cropped probabilities, never the whole array nor its compressed bytes.
pub fn stage_probabilities_npz(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    probabilities: &V2Probabilities,
    level: u32,
) -> Result<(), PipelineError> {
    let shape = probabilities.shape();
    crate::npz::stage_npz_f32_pieces(batch, path, "probabilities", &shape, level, |write| {
        probabilities.for_each_head(|_, head| write(head.into_dyn()))
    })
}

/// The properties dict nnunetv2 pickles beside the probabilities (see the module docs), from the case's
/// preprocessing properties and the geometry of its first channel, as pickle protocol 2 bytes.
pub fn properties_pickle(props: &V2CaseProperties, geometry: &Geometry) -> Vec<u8> {
    let mut p = Pickler(vec![0x80, 2]);
    p.0.push(b'}'); // EMPTY_DICT
    p.0.push(b'('); // MARK
    p.str("sitk_stuff");
    p.0.push(b'}');
    p.0.push(b'(');
    p.str("spacing");
    p.float_tuple(&geometry.spacing);
    p.str("origin");
    p.float_tuple(&geometry.origin);
    p.str("direction");
    p.float_tuple(&geometry.direction);
    p.0.push(b'u'); // SETITEMS
    p.str("spacing");
    p.0.push(b']'); // EMPTY_LIST
    p.0.push(b'(');
    for &s in &props.spacing {
        p.float(s);
    }
    p.0.push(b'e'); // APPENDS
    p.str("shape_before_cropping");
    p.int_tuple(&props.shape_before_cropping);
    p.str("bbox_used_for_cropping");
    p.0.push(b']');
    p.0.push(b'(');
    for [a, b] in props.bbox_used_for_cropping {
        p.0.push(b']');
        p.0.push(b'(');
        p.int(a);
        p.int(b);
        p.0.push(b'e');
    }
    p.0.push(b'e');
    p.str("shape_after_cropping_and_before_resampling");
    p.int_tuple(&props.shape_after_cropping_and_before_resampling);
    p.0.push(b'u');
    p.0.push(b'.'); // STOP
    p.0
}

/// Stages `CASE.pkl` ([`properties_pickle`]).
pub fn stage_properties_pkl(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    props: &V2CaseProperties,
    geometry: &Geometry,
) -> Result<(), PipelineError> {
    Ok(batch.stage(path, &properties_pickle(props, geometry))?)
}

/// A few pickle protocol 2 opcodes.
struct Pickler(Vec<u8>);

impl Pickler {
    /// BINUNICODE
    fn str(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// BINFLOAT (big-endian f64)
    fn float(&mut self, v: f64) {
        self.0.push(b'G');
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    /// BININT for 32-bit values, LONG1 (8 bytes, two's complement) beyond.
    fn int(&mut self, v: usize) {
        match i32::try_from(v) {
            Ok(i) => {
                self.0.push(b'J');
                self.0.extend_from_slice(&i.to_le_bytes());
            }
            Err(_) => {
                self.0.extend_from_slice(&[0x8a, 9]);
                self.0.extend_from_slice(&(v as u64).to_le_bytes());
                self.0.push(0); // a sign byte keeps the value positive
            }
        }
    }

    fn float_tuple(&mut self, v: &[f64]) {
        self.0.push(b'(');
        for &x in v {
            self.float(x);
        }
        self.0.push(b't'); // TUPLE
    }

    fn int_tuple(&mut self, v: &[usize]) {
        self.0.push(b'(');
        for &x in v {
            self.int(x);
        }
        self.0.push(b't');
    }
}

/// The model files `nnUNetPredictor.predict_from_files` saves into its output folder beside the
/// predictions, because `nnUNetv2_ensemble` and `nnUNetv2_apply_postprocessing` read them from there.
pub const MODEL_JSON_FILES: [&str; 2] = ["dataset.json", "plans.json"];

/// Copies the model's `dataset.json` and `plans.json` (from `model_dir`) into `out_dir`, as
/// `nnUNetv2_predict` does, each written atomically. A file already in `out_dir` with the same bytes is
/// left as it is (a resumed run); one with other bytes is never overwritten: it is left, and a note naming
/// it is returned for the caller to print (`nnUNetv2_ensemble` would read that other model's files).
///
/// # Errors
/// [`PipelineError::Io`] naming the file that cannot be read or written.
pub fn copy_model_json(model_dir: &Path, out_dir: &Path) -> Result<Vec<String>, PipelineError> {
    let mut notes = Vec::new();
    for name in MODEL_JSON_FILES {
        let src = model_dir.join(name);
        let bytes = std::fs::read(&src).map_err(|source| PipelineError::Io {
            path: src.clone(),
            source,
        })?;
        let dst = out_dir.join(name);
        match std::fs::read(&dst) {
            Ok(existing) if existing == bytes => {}
            Ok(_) => notes.push(format!(
                "{}: kept as it is, but it is not this model's {name} ({}); nnUNetv2_ensemble reads it \
                 from this folder",
                dst.display(),
                src.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                nnu_fsio::write_atomic(&dst, &bytes)?
            }
            Err(source) => return Err(PipelineError::Io { path: dst, source }),
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod model_json_tests {
    use super::*;

    /// Copied when missing, left when equal, never overwritten when different (a note names it).
    #[test]
    fn model_json_is_copied_once_and_never_overwritten() {
        let model = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::write(model.path().join("dataset.json"), b"{\"a\": 1}").unwrap();
        std::fs::write(model.path().join("plans.json"), b"{\"p\": 2}").unwrap();
        assert!(copy_model_json(model.path(), out.path())
            .unwrap()
            .is_empty());
        assert_eq!(
            std::fs::read(out.path().join("dataset.json")).unwrap(),
            b"{\"a\": 1}"
        );
        assert_eq!(
            std::fs::read(out.path().join("plans.json")).unwrap(),
            b"{\"p\": 2}"
        );
        assert!(copy_model_json(model.path(), out.path())
            .unwrap()
            .is_empty());
        std::fs::write(out.path().join("plans.json"), b"{\"other\": 3}").unwrap();
        let notes = copy_model_json(model.path(), out.path()).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("plans.json") && notes[0].contains("kept"),
            "{}",
            notes[0]
        );
        assert_eq!(
            std::fs::read(out.path().join("plans.json")).unwrap(),
            b"{\"other\": 3}"
        );
        std::fs::remove_file(model.path().join("dataset.json")).unwrap();
        let e = copy_model_json(model.path(), out.path()).unwrap_err();
        assert!(e.to_string().contains("dataset.json"), "{e}");
    }
}

//! Minimal `.npy` (format 1.0) writing and reading of little-endian f32 arrays, for
//! `CASE_probabilities.npy` and preprocessed volumes.

use std::io::Write;
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::PipelineError;

pub(crate) fn header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + header length (2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let mut h = Vec::with_capacity(unpadded + pad);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    let len = (dict.len() + pad + 1) as u16;
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    h
}

/// Writes `array` as a C-order little-endian f32 `.npy`, atomically.
pub fn write_npy_f32(path: &Path, array: ArrayViewD<f32>) -> Result<(), PipelineError> {
    let mut batch = nnu_fsio::Batch::new();
    stage_npy_f32(&mut batch, path, array)?;
    Ok(batch.commit()?)
}

/// Like [`write_npy_f32`], but staged in `batch` (the file appears when the batch is committed).
pub fn stage_npy_f32(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    array: ArrayViewD<f32>,
) -> Result<(), PipelineError> {
    Ok(batch.stage_with(path, |w| {
        w.write_all(&header(array.shape()))?;
        write_values(w, array)
    })?)
}

/// Like [`stage_npy_f32`] for an array of `shape` that is never whole in memory: `fill` hands its
/// C-order data to the `write` callback it is given, piece by piece (for instance one class of the
/// probabilities at a time, [`nnu_preprocessing::export_probabilities_per_class`]). The file is the one
/// [`stage_npy_f32`] writes for the whole array, byte for byte. An error of `fill` (or pieces that do not
/// add up to `shape`) removes the temporary and is returned as it is.
pub fn stage_npy_f32_pieces(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    shape: &[usize],
    fill: impl FnOnce(
        &mut dyn FnMut(ArrayViewD<f32>) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let expected: usize = shape.iter().product();
    let mut failure = None;
    let staged = batch.stage_with(path, |w| {
        w.write_all(&header(shape))?;
        let mut written = 0usize;
        let mut write = |piece: ArrayViewD<f32>| -> Result<(), PipelineError> {
            write_values(w, piece.view()).map_err(|e| PipelineError::io(path, e))?;
            written += piece.len();
            Ok(())
        };
        let result = fill(&mut write).and_then(|()| {
            if written == expected {
                Ok(())
            } else {
                Err(PipelineError::Shape(format!(
                    "{}: {written} values written, its header says {shape:?}",
                    path.display()
                )))
            }
        });
        result.map_err(|e| {
            failure = Some(e);
            std::io::Error::other("the array could not be written")
        })
    });
    match (failure, staged) {
        (Some(e), _) => Err(e),
        (None, r) => Ok(r?),
    }
}

/// The values of `array` in C order as little-endian f32.
pub(crate) fn write_values(w: &mut impl Write, array: ArrayViewD<f32>) -> std::io::Result<()> {
    if let Some(s) = array.as_slice() {
        if cfg!(target_endian = "little") {
            return w.write_all(bytemuck::cast_slice(s));
        }
    }
    for v in array.iter() {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// The header of a little-endian f32 C-order `.npy` at the start of `bytes`
/// ([`nnu_artifacts::numpy::npy_f32_header`]): the shape and where the data start; errors name `path`.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, usize), PipelineError> {
    nnu_artifacts::numpy::npy_f32_header(bytes).map_err(|e| npy_error(path, e))
}

/// An `.npy` error of `nnu-artifacts` as the pipeline's, naming `path`.
fn npy_error(path: &Path, e: nnu_artifacts::Error) -> PipelineError {
    PipelineError::Input {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// True when `path` is a whole `.npy` of little-endian f32: a readable header and exactly the data bytes
/// its shape needs (reads the header only).
pub fn is_complete_npy(path: &Path) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut head = Vec::with_capacity(4096);
    if f.take(4096).read_to_end(&mut head).is_err() {
        return false;
    }
    parse_header(path, &head).is_ok_and(|(shape, offset)| {
        shape
            .iter()
            .try_fold(4u64, |n, &d| n.checked_mul(d as u64))
            .and_then(|n| n.checked_add(offset as u64))
            == Some(len)
    })
}

/// Reads a little-endian f32 C-order `.npy` (format 1.x/2.x).
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>, PipelineError> {
    let bytes = std::fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    parse_npy_f32(path, &bytes)
}

/// Parses the bytes of a little-endian f32 C-order `.npy` (format 1.x/2.x) read from `path` (named in
/// errors), e.g. an array of an `.npz` ([`nnu_artifacts::numpy::parse_npy_f32`]).
pub fn parse_npy_f32(path: &Path, bytes: &[u8]) -> Result<ArrayD<f32>, PipelineError> {
    let (shape, values) =
        nnu_artifacts::numpy::parse_npy_f32(bytes).map_err(|e| npy_error(path, e))?;
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| PipelineError::Input {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_header_alignment() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        let a = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| {
            (i[0] * 100 + i[1] * 10 + i[2]) as f32
        });
        write_npy_f32(&p, a.view()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(read_npy_f32(&p).unwrap(), a);
        // the reference networks' input.npy is read as numpy wrote it
        let reference = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/reference/unet-small/input.npy");
        let r = read_npy_f32(&reference).unwrap();
        assert_eq!(r.shape(), &[1, 1, 32, 32, 32]);
    }

    /// A `.npy` written in pieces (one channel at a time) is the file of the whole array, byte for byte;
    /// pieces that do not add up, or an error of the filler, leave no file and no temporary.
    #[test]
    fn pieces_make_the_file_of_the_whole_array() {
        let d = tempfile::tempdir().unwrap();
        let a = ArrayD::from_shape_fn(IxDyn(&[3, 2, 4, 5]), |i| {
            (i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as f32 - 0.5
        });
        let whole = d.path().join("whole.npy");
        write_npy_f32(&whole, a.view()).unwrap();
        let pieces = d.path().join("pieces.npy");
        let mut batch = nnu_fsio::Batch::new();
        stage_npy_f32_pieces(&mut batch, &pieces, a.shape(), |write| {
            for c in a.outer_iter() {
                write(c)?;
            }
            Ok(())
        })
        .unwrap();
        batch.commit().unwrap();
        assert_eq!(
            std::fs::read(&pieces).unwrap(),
            std::fs::read(&whole).unwrap()
        );

        let short = d.path().join("short.npy");
        let mut batch = nnu_fsio::Batch::new();
        let e = stage_npy_f32_pieces(&mut batch, &short, a.shape(), |write| {
            write(a.index_axis(ndarray::Axis(0), 0))
        })
        .unwrap_err();
        assert!(e.to_string().contains("40 values written"), "{e}");
        let e = stage_npy_f32_pieces(&mut batch, &short, a.shape(), |_| {
            Err(PipelineError::Shape("the export failed".into()))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "shape mismatch: the export failed");
        drop(batch);
        let mut left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["pieces.npy", "whole.npy"]);
    }

    #[test]
    fn a_shape_that_overflows_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("huge.npy");
        let dict =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&p, &bytes).unwrap();
        let e = read_npy_f32(&p).unwrap_err().to_string();
        assert!(e.contains("huge.npy") && e.contains("too large"), "{e}");
        assert!(!is_complete_npy(&p));
    }
}

//! Streamed `.npz` writing: a zip holding one deflated little-endian f32 `.npy`, written as its pieces
//! are made, so that the array is never whole in memory (`nnUNetv2_predict --save_probabilities`'
//! `CASE.npz`, one head of the probabilities at a time).
//!
//! `np.savez_compressed` writes each array with `zipfile`'s `ZIP_DEFLATED` (zlib raw deflate, level 6 by
//! default) and `force_zip64=True`. We write the same structure without seeking back: the local header
//! has flag bit 3 set and a zip64 extra field, the CRC-32 and sizes follow the data in a zip64 data
//! descriptor, and the central directory, the zip64 end-of-central-directory record and locator and the
//! end-of-central-directory record carry the real values. This is what Python's `zipfile` itself writes
//! to an unseekable stream; `np.load`, `zipfile` and the `zip` crate read it. The modification time is
//! fixed (1980-01-01 00:00) so that a rerun writes the same bytes.

use std::io::Write;
use std::path::Path;

use flate2::write::DeflateEncoder;
use flate2::{Compression, CrcWriter};
use ndarray::ArrayViewD;

use crate::PipelineError;

const VERSION_ZIP64: u16 = 45;
/// Bit 3: CRC-32 and sizes are in the data descriptor after the data.
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
const METHOD_DEFLATED: u16 = 8;
/// MS-DOS date of 1980-01-01 (time 00:00 is 0).
const DOS_DATE_1980: u16 = (1 << 5) | 1;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// A 32-bit field whose value is in the zip64 extra field.
const IN_ZIP64: u32 = u32::MAX;

/// Stages `path` as an `.npz` holding one f32 array `name` (the entry `name.npy`) of `shape`, deflated at
/// `level` (0-9, higher clamped to 9). `fill` hands the array's C-order data to the `write` callback it is
/// given, piece by piece (see [`crate::npy::stage_npy_f32_pieces`], whose `.npy` bytes the entry holds).
/// An error of `fill`, or pieces that do not add up to `shape`, removes the temporary and is returned as it
/// is.
pub fn stage_npz_f32_pieces(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    name: &str,
    shape: &[usize],
    level: u32,
    fill: impl FnOnce(
        &mut dyn FnMut(ArrayViewD<f32>) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let expected = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| PipelineError::Shape(format!("{}: shape {shape:?}", path.display())))?;
    let entry = format!("{name}.npy");
    let header = crate::npy::header(shape);
    let uncompressed = header.len() as u64 + expected as u64 * 4;
    let mut failure = None;
    let staged = batch.stage_with(path, |w| {
        let mut out = Counting { inner: w, n: 0 };
        write_local_header(&mut out, &entry)?;
        let data_start = out.n;
        let mut data = CrcWriter::new(DeflateEncoder::new(
            &mut out,
            Compression::new(level.min(9)),
        ));
        data.write_all(&header)?;
        let mut written = 0usize;
        let mut write = |piece: ArrayViewD<f32>| -> Result<(), PipelineError> {
            crate::npy::write_values(&mut data, piece.view())
                .map_err(|e| PipelineError::io(path, e))?;
            written += piece.len();
            Ok(())
        };
        let result = fill(&mut write).and_then(|()| {
            if written == expected {
                Ok(())
            } else {
                Err(PipelineError::Shape(format!(
                    "{}: {written} values written, the array's shape is {shape:?}",
                    path.display()
                )))
            }
        });
        if let Err(e) = result {
            failure = Some(e);
            return Err(std::io::Error::other("the array could not be written"));
        }
        let crc = data.crc().sum();
        data.into_inner().finish()?;
        let compressed = out.n - data_start;
        write_trailer(&mut out, &entry, crc, compressed, uncompressed)
    });
    match (failure, staged) {
        (Some(e), _) => Err(e),
        (None, r) => Ok(r?),
    }
}

/// A writer that counts the bytes through it (the offsets of the zip records).
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u64le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// The fields every header shares after the signature (and, in the central directory, "version made
/// by"): version needed, flags, method, time, date.
fn common_fields(v: &mut Vec<u8>) {
    u16le(v, VERSION_ZIP64);
    u16le(v, FLAG_DATA_DESCRIPTOR);
    u16le(v, METHOD_DEFLATED);
    u16le(v, 0);
    u16le(v, DOS_DATE_1980);
}

/// The local file header at offset 0: sizes unknown (zip64 extra field of zeros, as `zipfile` writes it
/// to a stream).
fn write_local_header(w: &mut impl Write, entry: &str) -> std::io::Result<()> {
    let mut v = Vec::with_capacity(64);
    u32le(&mut v, 0x0403_4b50);
    common_fields(&mut v);
    u32le(&mut v, 0); // CRC-32: in the data descriptor
    u32le(&mut v, IN_ZIP64);
    u32le(&mut v, IN_ZIP64);
    u16le(&mut v, entry_name_len(entry)?);
    u16le(&mut v, 20);
    v.extend_from_slice(entry.as_bytes());
    u16le(&mut v, ZIP64_EXTRA_ID);
    u16le(&mut v, 16);
    u64le(&mut v, 0);
    u64le(&mut v, 0);
    w.write_all(&v)
}

fn entry_name_len(entry: &str) -> std::io::Result<u16> {
    u16::try_from(entry.len())
        .map_err(|_| std::io::Error::other(format!("zip entry name of {} bytes", entry.len())))
}

/// The data descriptor, the central directory (one entry, its local header at offset 0), the zip64
/// end-of-central-directory record and locator, and the end-of-central-directory record.
fn write_trailer(
    w: &mut Counting<impl Write>,
    entry: &str,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
) -> std::io::Result<()> {
    let mut v = Vec::with_capacity(256);
    u32le(&mut v, 0x0807_4b50);
    u32le(&mut v, crc);
    u64le(&mut v, compressed);
    u64le(&mut v, uncompressed);
    w.write_all(&v)?;

    let cd_offset = w.n;
    v.clear();
    u32le(&mut v, 0x0201_4b50);
    u16le(&mut v, (3 << 8) | VERSION_ZIP64); // made by: Unix, zip64
    common_fields(&mut v);
    u32le(&mut v, crc);
    u32le(&mut v, IN_ZIP64);
    u32le(&mut v, IN_ZIP64);
    u16le(&mut v, entry_name_len(entry)?);
    u16le(&mut v, 28);
    u16le(&mut v, 0); // comment
    u16le(&mut v, 0); // disk
    u16le(&mut v, 0); // internal attributes
    u32le(&mut v, 0o100644 << 16); // a regular file, rw-r--r--
    u32le(&mut v, IN_ZIP64); // local header offset
    v.extend_from_slice(entry.as_bytes());
    u16le(&mut v, ZIP64_EXTRA_ID);
    u16le(&mut v, 24);
    u64le(&mut v, uncompressed);
    u64le(&mut v, compressed);
    u64le(&mut v, 0);
    let cd_size = v.len() as u64;

    let eocd64_offset = cd_offset + cd_size;
    u32le(&mut v, 0x0606_4b50);
    u64le(&mut v, 44); // the record's size after this field
    u16le(&mut v, (3 << 8) | VERSION_ZIP64);
    u16le(&mut v, VERSION_ZIP64);
    u32le(&mut v, 0);
    u32le(&mut v, 0);
    u64le(&mut v, 1);
    u64le(&mut v, 1);
    u64le(&mut v, cd_size);
    u64le(&mut v, cd_offset);

    u32le(&mut v, 0x0706_4b50);
    u32le(&mut v, 0);
    u64le(&mut v, eocd64_offset);
    u32le(&mut v, 1);

    u32le(&mut v, 0x0605_4b50);
    u16le(&mut v, 0);
    u16le(&mut v, 0);
    u16le(&mut v, 1);
    u16le(&mut v, 1);
    u32le(&mut v, u32::try_from(cd_size).unwrap_or(IN_ZIP64));
    u32le(&mut v, u32::try_from(cd_offset).unwrap_or(IN_ZIP64));
    u16le(&mut v, 0); // comment
    w.write_all(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, Axis, IxDyn};
    use std::io::Read;

    /// The entry's name, its raw (deflated) bytes and the inflated `.npy` of an `.npz`, read with the
    /// `zip` crate.
    fn read_entry(bytes: &[u8]) -> (String, Vec<u8>, Vec<u8>) {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(z.len(), 1);
        let mut raw = Vec::new();
        let name = {
            let mut f = z.by_index_raw(0).unwrap();
            f.read_to_end(&mut raw).unwrap();
            f.name().to_owned()
        };
        let mut npy = Vec::new();
        z.by_index(0).unwrap().read_to_end(&mut npy).unwrap();
        (name, raw, npy)
    }

    /// The array's `.npz` written one channel at a time holds the `.npy` of the whole array, and the
    /// same deflated bytes as the `zip` crate's writer given the whole array (what `CASE.npz` was made
    /// with before it was streamed), at levels 1 and 6 (the `zip` crate refuses deflate level 0; at level 0
    /// only the `.npy` inside is compared).
    #[test]
    fn pieces_make_the_npz_of_the_whole_array() {
        let d = tempfile::tempdir().unwrap();
        let a = ArrayD::from_shape_fn(IxDyn(&[3, 5, 7, 9]), |i| {
            ((i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as f32 * 0.37).sin()
        });
        let whole_npy = {
            let p = d.path().join("whole.npy");
            crate::npy::write_npy_f32(&p, a.view()).unwrap();
            std::fs::read(p).unwrap()
        };
        for level in [0, 1, 6] {
            let path = d.path().join(format!("p{level}.npz"));
            let mut batch = nnu_fsio::Batch::new();
            stage_npz_f32_pieces(&mut batch, &path, "probabilities", a.shape(), level, |w| {
                for c in a.axis_iter(Axis(0)) {
                    w(c)?;
                }
                Ok(())
            })
            .unwrap();
            batch.commit().unwrap();
            let ours = std::fs::read(&path).unwrap();
            let (name, raw, npy) = read_entry(&ours);
            assert_eq!(name, "probabilities.npy");
            assert_eq!(npy, whole_npy, "level {level}");
            if level == 0 {
                continue;
            }

            let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .compression_level(Some(i64::from(level)));
            zw.start_file("probabilities.npy", options).unwrap();
            zw.write_all(&whole_npy).unwrap();
            let theirs = zw.finish().unwrap().into_inner();
            let (_, raw_theirs, npy_theirs) = read_entry(&theirs);
            assert_eq!(npy_theirs, whole_npy);
            assert_eq!(raw, raw_theirs, "level {level}: deflated bytes");
            assert!(ours.ends_with(&[0, 0]) && ours[ours.len() - 22..].starts_with(b"PK\x05\x06"));
        }
    }

    /// Pieces that do not add up, or an error of the filler, leave no file and no temporary.
    #[test]
    fn a_short_or_failed_fill_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let a = ArrayD::<f32>::zeros(IxDyn(&[2, 3, 4]));
        let path = d.path().join("x.npz");
        let mut batch = nnu_fsio::Batch::new();
        let e = stage_npz_f32_pieces(&mut batch, &path, "probabilities", a.shape(), 6, |w| {
            w(a.index_axis(Axis(0), 0))
        })
        .unwrap_err();
        assert!(e.to_string().contains("12 values written"), "{e}");
        let e = stage_npz_f32_pieces(&mut batch, &path, "probabilities", a.shape(), 6, |_| {
            Err(PipelineError::Shape("the export failed".into()))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "shape mismatch: the export failed");
        drop(batch);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}

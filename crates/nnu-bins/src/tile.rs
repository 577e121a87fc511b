//! Raw little-endian f32 files: input tiles `(C, P, P, P)` (C = 1 for CT) and output dumps
//! `(1, classes, P, P, P)`, C order, no header.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{ArrayView, ArrayView4, ArrayView5, Axis, Dimension, Ix4, Ix5};

use crate::atomic::write_atomic_with;
use crate::error::{BinsError, Result};
use crate::name::Mirror;

/// Bytes of one f32.
const F32: u64 = 4;

/// Bytes of a raw f32 file holding an array of `shape`.
pub fn file_len(shape: &[usize]) -> u64 {
    shape.iter().map(|&n| n as u64).product::<u64>() * F32
}

fn write_f32s(w: &mut impl Write, data: &[f32]) -> std::io::Result<()> {
    if cfg!(target_endian = "little") {
        w.write_all(bytemuck::cast_slice(data))
    } else {
        for v in data {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }
}

/// Writes a slice of f32 as a raw little-endian file, atomically.
pub fn write_f32_file(path: &Path, data: &[f32]) -> Result<()> {
    write_atomic_with(path, |w| write_f32s(w, data))
}

/// Reads a raw little-endian f32 file (what [`write_f32_file`] writes: a tile, a dump, a reference
/// network's input or logits) into memory; an error naming the file if it cannot be read or its size
/// is not a multiple of 4 bytes. [`MappedBin`] reads one without a copy.
pub fn read_f32_file(path: &Path) -> Result<Vec<f32>> {
    Ok(MappedBin::open(path)?.as_slice().to_vec())
}

/// Writes an array of any shape in C order as a raw little-endian f32 file, atomically. A standard-layout
/// array is written straight from its memory; any other view is written row by row.
pub fn write_array<D: Dimension>(path: &Path, array: ArrayView<'_, f32, D>) -> Result<()> {
    if let Some(s) = array.as_slice() {
        return write_f32_file(path, s);
    }
    let mut row = Vec::new();
    write_atomic_with(path, |w| {
        if array.ndim() == 0 {
            return write_f32s(w, &array.iter().copied().collect::<Vec<_>>());
        }
        for lane in array.rows() {
            row.clear();
            extend_lane(&mut row, lane);
            write_f32s(w, &row)?;
        }
        Ok(())
    })
}

/// Appends a 1-D lane in logical order, using slice copies for forward and reversed contiguous lanes.
fn extend_lane(out: &mut Vec<f32>, lane: ndarray::ArrayView1<'_, f32>) {
    if let Some(s) = lane.as_slice() {
        out.extend_from_slice(s);
    } else if lane.len() > 1 && lane.strides()[0] == -1 {
        if let Some(s) = lane.as_slice_memory_order() {
            out.extend(s.iter().rev());
            return;
        }
        out.extend(lane.iter());
    } else {
        out.extend(lane.iter());
    }
}

/// Writes input tiles the way the recipe's `save_as_bin` does: the channel-first tile `(C, P0, P1, P2)`,
/// flipped along the spatial axes of its [`Mirror`], as raw little-endian f32 in C order.
///
/// Keeps one scratch buffer between calls, so writing the eight mirrors of a tile allocates once. The
/// un-mirrored tile of a contiguous volume is written without any copy.
#[derive(Debug, Default)]
pub struct TileWriter {
    scratch: Vec<f32>,
}

impl TileWriter {
    /// A writer with an empty scratch buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `tile` (channel first, spatial axes in array order) mirrored by `mirror` to `path`, atomically.
    pub fn write(&mut self, path: &Path, tile: ArrayView4<'_, f32>, mirror: Mirror) -> Result<()> {
        let mut view = tile;
        for (axis, flip) in mirror.flips().into_iter().enumerate() {
            if flip {
                view.invert_axis(Axis(axis + 1));
            }
        }
        if let Some(s) = view.as_slice() {
            return write_f32_file(path, s);
        }
        self.scratch.clear();
        self.scratch.reserve(view.len());
        for lane in view.rows() {
            extend_lane(&mut self.scratch, lane);
        }
        write_f32_file(path, &self.scratch)
    }
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<f32>),
}

/// A raw f32 file opened for reading: memory-mapped, viewed as `&[f32]` without a copy.
///
/// Memory mapping is `unsafe` in Rust because another process could truncate or rewrite the file while it
/// is mapped, which would change (or, for truncation, fault on) memory that safe code believes immutable.
/// The promise callers make by using this type is the one the recipe's workflow already needs: tile and dump
/// files are not modified while they are being read (our writers never modify a file in place: they write
/// a new one and rename it). On a big-endian machine the file is read into memory and byte-swapped instead.
pub struct MappedBin {
    path: PathBuf,
    storage: Storage,
}

impl std::fmt::Debug for MappedBin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedBin")
            .field("path", &self.path)
            .field("len", &self.as_slice().len())
            .finish()
    }
}

impl MappedBin {
    /// Opens `path`; an error if its size is not a multiple of 4 bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| BinsError::io(path, e))?;
        let len = file.metadata().map_err(|e| BinsError::io(path, e))?.len();
        if len % F32 != 0 {
            return Err(BinsError::WrongSize {
                path: path.to_path_buf(),
                expected: len - len % F32,
                found: len,
            });
        }
        let storage = if cfg!(target_endian = "little") && len > 0 {
            // SAFETY: see the type's documentation: the file is not modified while mapped.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| BinsError::io(path, e))?;
            Storage::Mapped(map)
        } else {
            let bytes = std::fs::read(path).map_err(|e| BinsError::io(path, e))?;
            Storage::Owned(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        };
        Ok(MappedBin {
            path: path.to_path_buf(),
            storage,
        })
    }

    /// Opens `path` and checks that it holds exactly an array of `shape`.
    pub fn open_shape(path: impl AsRef<Path>, shape: &[usize]) -> Result<Self> {
        let path = path.as_ref();
        let expected = file_len(shape);
        // The size against the shape first, so a short file is reported against what the shape needs.
        let len = std::fs::metadata(path)
            .map_err(|e| BinsError::io(path, e))?
            .len();
        if len != expected {
            return Err(BinsError::WrongSize {
                path: path.to_path_buf(),
                expected,
                found: len,
            });
        }
        let bin = Self::open(path)?;
        let found = bin.as_slice().len() as u64 * F32;
        if found != expected {
            return Err(BinsError::WrongSize {
                path: bin.path,
                expected,
                found,
            });
        }
        Ok(bin)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's values.
    pub fn as_slice(&self) -> &[f32] {
        match &self.storage {
            // A mapping starts on a page boundary, so it is aligned for f32; the length is a multiple of 4.
            Storage::Mapped(m) => bytemuck::cast_slice(&m[..]),
            Storage::Owned(v) => v,
        }
    }

    fn view<D: Dimension>(&self, shape: D) -> Result<ArrayView<'_, f32, D>> {
        let dims = shape.slice().to_vec();
        ArrayView::from_shape(shape, self.as_slice()).map_err(|_| BinsError::WrongSize {
            path: self.path.clone(),
            expected: file_len(&dims),
            found: self.as_slice().len() as u64 * F32,
        })
    }

    /// The values as a 4-D array, e.g. an input tile `(C, P0, P1, P2)`.
    pub fn view4(&self, shape: [usize; 4]) -> Result<ArrayView4<'_, f32>> {
        self.view(Ix4(shape[0], shape[1], shape[2], shape[3]))
    }

    /// The values as a 5-D array, e.g. an output dump `(1, classes, P0, P1, P2)`.
    pub fn view5(&self, shape: [usize; 5]) -> Result<ArrayView5<'_, f32>> {
        self.view(Ix5(shape[0], shape[1], shape[2], shape[3], shape[4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, Array5};

    #[test]
    fn mirrored_tiles_match_flipped_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let vol = Array4::from_shape_fn((1, 5, 6, 7), |(c, z, y, x)| {
            (c * 1000 + z * 100 + y * 10 + x) as f32
        });
        // A non-contiguous tile of the volume.
        let tile = vol.slice(ndarray::s![.., 1..4, 2..5, 3..6]);
        let mut w = TileWriter::new();
        for m in Mirror::all() {
            let p = dir.path().join(format!("t{m}.bin"));
            w.write(&p, tile, m).unwrap();
            let mut expected = tile.to_owned();
            for (a, f) in m.flips().into_iter().enumerate() {
                if f {
                    expected.invert_axis(Axis(a + 1));
                }
            }
            let bin = MappedBin::open_shape(&p, &[1, 3, 3, 3]).unwrap();
            assert_eq!(
                bin.view4([1, 3, 3, 3]).unwrap(),
                expected.view(),
                "mirror {m}"
            );
        }
    }

    #[test]
    fn arrays_round_trip_and_sizes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out_1.bin");
        let a = Array5::from_shape_fn((1, 3, 2, 3, 4), |(_, c, z, y, x)| {
            (c + z * y + x) as f32 - 1.5
        });
        write_array(&p, a.view()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 3 * 24 * 4);
        let t = a.view().reversed_axes();
        let p2 = dir.path().join("t.bin");
        write_array(&p2, t).unwrap();
        let back = MappedBin::open(&p2).unwrap();
        assert_eq!(
            back.as_slice(),
            t.iter().copied().collect::<Vec<_>>().as_slice()
        );
        let bin = MappedBin::open(&p).unwrap();
        assert_eq!(bin.view5([1, 3, 2, 3, 4]).unwrap(), a.view());
        assert!(matches!(
            MappedBin::open_shape(&p, &[1, 3, 2, 3, 5]),
            Err(BinsError::WrongSize {
                expected: 360,
                found: 288,
                ..
            })
        ));
        std::fs::write(&p, [0u8; 7]).unwrap();
        assert!(MappedBin::open(&p).is_err());
    }
}

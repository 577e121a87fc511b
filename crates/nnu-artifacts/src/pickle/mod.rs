//! A pickle reader (protocols 0 to 5) that builds a [`Value`] tree and never executes anything.
//!
//! Known constructors are interpreted: `collections.OrderedDict`, `set`/`frozenset`, `bytearray`,
//! `_codecs.encode` (how protocol 2 stores bytes), numpy arrays, scalars and dtypes (both the
//! `numpy.core` and the numpy 2 `numpy._core` module names), and the torch pieces a checkpoint holds
//! (`_rebuild_tensor_v2`, `_rebuild_parameter`, storages named by persistent ids). Every other global becomes
//! an opaque [`Object`] or [`Value::Global`] that records its name, arguments and state.
//!
//! Bad input gives an [`Error`](crate::Error) and never a panic: truncated data, unknown opcodes, operands of
//! the wrong type, self-referencing structures, and anything beyond the [`Limits`].
//!
//! Out-of-band buffers (protocol 5 `NEXT_BUFFER`) and the extension registry (`EXT1`..`EXT4`) are refused.

mod construct;
mod graph;
mod literals;
mod vm;

pub use crate::value::{Dict, GlobalName, Object, Value};

use crate::error::Result;

/// Bounds that protect against hostile or damaged pickles. The defaults are far above what nnU-Net writes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest nesting of containers (default 200).
    pub max_depth: usize,
    /// Most items on the stack, marks included (default 16 Mi).
    pub max_stack: usize,
    /// Most memo entries (default 16 Mi).
    pub max_memo: usize,
    /// Most objects created (default 64 Mi).
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 200,
            max_stack: 1 << 24,
            max_memo: 1 << 24,
            max_nodes: 1 << 26,
        }
    }
}

/// Decodes one pickle from `data` with the default [`Limits`]. Bytes after `STOP` are ignored, as Python does.
///
/// This is the fuzzing entry point: any input returns `Ok` or `Err`, never panics.
///
/// ```
/// // pickle.dumps({'a': [1, 2.5, None]}, protocol=2)
/// let data = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00Ne\x73.";
/// let v = nnu_artifacts::pickle::from_slice(data)?;
/// let a = v.as_dict().unwrap().get_str("a").unwrap().as_seq().unwrap();
/// assert_eq!(a[0].as_i64(), Some(1));
/// assert_eq!(a[1].as_f64(), Some(2.5));
/// # Ok::<(), nnu_artifacts::Error>(())
/// ```
pub fn from_slice(data: &[u8]) -> Result<Value> {
    from_slice_with(data, Limits::default())
}

/// Decodes one pickle from `data` with the given limits.
pub fn from_slice_with(data: &[u8], limits: Limits) -> Result<Value> {
    vm::run(data, limits)
}

/// Reads and decodes a pickle file; errors name the file.
pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Value> {
    let path = path.as_ref();
    let data = std::fs::read(path).map_err(|source| crate::Error::Io {
        path: path.to_owned(),
        source,
    })?;
    from_slice(&data).map_err(|e| e.in_file(path))
}

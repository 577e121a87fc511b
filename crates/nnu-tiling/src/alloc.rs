//! Fallible allocation of volume-sized arrays (the class sums, the padded image, the merged
//! probabilities): one the process cannot have is a [`TilingError::OutOfMemory`] naming it and its
//! size, the case's error, instead of an abort of the process (issue 20). Tile-sized buffers stay
//! ordinary allocations. (`nnu-preprocessing` has the same helpers for its own error type.)

use ndarray::{Array, ArrayView, Dimension, IntoDimension};

use crate::TilingError;

/// The error for `count` elements of `T` that could not be allocated for `what` (bytes saturating).
fn out_of_memory<T>(count: u64, what: &'static str) -> TilingError {
    TilingError::OutOfMemory {
        what,
        bytes: count.saturating_mul(std::mem::size_of::<T>() as u64),
    }
}

/// An array of `shape` filled with `value` (standard layout), allocated fallibly (`Array::from_elem`).
pub(crate) fn try_from_elem<T: Clone, Sh: IntoDimension>(
    shape: Sh,
    value: T,
    what: &'static str,
) -> Result<Array<T, Sh::Dim>, TilingError> {
    let dim = shape.into_dimension();
    let count = dim
        .slice()
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let n = dim
        .size_checked()
        .ok_or_else(|| out_of_memory::<T>(count, what))?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory::<T>(count, what))?;
    v.resize(n, value);
    // The length is the shape's size, and a buffer that big exists, so the shape is valid.
    Array::from_shape_vec(dim, v).map_err(|_| out_of_memory::<T>(count, what))
}

/// An owned standard-layout copy of `view` (`to_owned()`), allocated fallibly.
pub(crate) fn try_to_owned<T: Clone, D: Dimension>(
    view: ArrayView<T, D>,
    what: &'static str,
) -> Result<Array<T, D>, TilingError> {
    let n = view.len();
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory::<T>(n as u64, what))?;
    match view.as_slice() {
        Some(s) => v.extend_from_slice(s),
        None => v.extend(view.iter().cloned()),
    }
    Array::from_shape_vec(view.raw_dim(), v).map_err(|_| out_of_memory::<T>(n as u64, what))
}

/// `bytes` in the unit that shows them (`512 bytes`, `3.2 MiB`, `1.5 GiB`), never `0.0 GiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_the_unit_that_shows_them() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn copies_keep_the_logical_order() {
        let a = ndarray::Array3::from_shape_fn((2, 3, 4), |(z, y, x)| z * 100 + y * 10 + x);
        let t = a.view().permuted_axes([2, 0, 1]);
        let c = try_to_owned(t, "a copy").unwrap();
        assert!(c.is_standard_layout());
        assert_eq!(c, t);
        assert_eq!(
            try_from_elem((2, 2), 7u8, "x").unwrap(),
            ndarray::Array2::from_elem((2, 2), 7u8)
        );
    }
}

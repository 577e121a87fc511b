//! Fallible allocation of volume-sized buffers: a buffer the process cannot have (an address-space limit,
//! a case larger than the machine) is a [`PreprocessError::OutOfMemory`] naming it and its size, the
//! case's error, instead of an abort of the whole process (issue 20). Buffers of a plane, a line or a
//! handful of values stay ordinary allocations.

use ndarray::{Array, ArrayView, Dimension, IntoDimension};

use crate::PreprocessError;

/// The error for `count` elements of `T` that could not be allocated for `what` (bytes saturating).
fn out_of_memory<T>(count: u64, what: &'static str) -> PreprocessError {
    PreprocessError::OutOfMemory {
        what,
        bytes: count.saturating_mul(std::mem::size_of::<T>() as u64),
    }
}

/// A `Vec` of `n` clones of `value`, its memory reserved fallibly.
pub(crate) fn try_vec<T: Clone>(
    n: usize,
    value: T,
    what: &'static str,
) -> Result<Vec<T>, PreprocessError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory::<T>(n as u64, what))?;
    v.resize(n, value);
    Ok(v)
}

/// An array of `shape` filled with `value` (standard layout), allocated fallibly (`Array::from_elem`).
pub(crate) fn try_from_elem<T: Clone, Sh: IntoDimension>(
    shape: Sh,
    value: T,
    what: &'static str,
) -> Result<Array<T, Sh::Dim>, PreprocessError> {
    let dim = shape.into_dimension();
    let count = dim
        .slice()
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let n = dim
        .size_checked()
        .ok_or_else(|| out_of_memory::<T>(count, what))?;
    let v = try_vec(n, value, what)?;
    // The length is the shape's size, and a buffer that big exists, so the shape is valid.
    Array::from_shape_vec(dim, v).map_err(|_| out_of_memory::<T>(count, what))
}

/// An owned copy of `view` in standard layout (`as_standard_layout().into_owned()`, `to_owned()`),
/// allocated fallibly.
pub(crate) fn try_to_owned<T: Clone, D: Dimension>(
    view: ArrayView<T, D>,
    what: &'static str,
) -> Result<Array<T, D>, PreprocessError> {
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

/// `v.push(x)` for a vector that can grow to volume size (a flood fill's stack): its growth is fallible.
pub(crate) fn try_push<T>(v: &mut Vec<T>, x: T, what: &'static str) -> Result<(), PreprocessError> {
    if v.len() == v.capacity() {
        let more = v.len().max(1024);
        v.try_reserve(more)
            .map_err(|_| out_of_memory::<T>((v.len() as u64).saturating_add(more as u64), what))?;
    }
    v.push(x);
    Ok(())
}

/// `array` itself when it is in standard layout, else a standard-layout copy ([`try_to_owned`]).
pub(crate) fn standard_layout<T: Clone, D: Dimension>(
    array: Array<T, D>,
    what: &'static str,
) -> Result<Array<T, D>, PreprocessError> {
    if array.is_standard_layout() {
        Ok(array)
    } else {
        try_to_owned(array.view(), what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_size_is_an_error_naming_the_buffer_and_its_bytes() {
        // 2^21 cubed f32 voxels: 2^65 bytes, past any address space (and past usize: saturated).
        let e = try_from_elem([1usize << 21; 3], 0.0f32, "the test volume").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("the test volume"), "{msg}");
        assert!(
            matches!(
                e,
                PreprocessError::OutOfMemory {
                    bytes: u64::MAX,
                    ..
                }
            ),
            "{e:?}"
        );
        // 2^48 bytes (256 TiB): a size that exists as a number but is past the 47-bit user address
        // space of x86-64 and aarch64 (whatever the overcommit setting).
        let e = try_vec(1usize << 46, 0.0f32, "the test buffer").unwrap_err();
        assert!(e.to_string().contains("281474976710656 bytes"), "{e}");
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

//! Fallible allocation of volume-sized buffers: a buffer the process cannot have (an address-space
//! limit, a case larger than the machine) is an [`AllocError`] naming it and its size, which the caller
//! turns into the case's error, instead of an abort of the whole process (issue 20). Buffers of a
//! plane, a line, a tile or a handful of values stay ordinary allocations.
//!
//! Users: `nnu-preprocessing` (the cropped, resampled and exported volumes, a flood fill's stack) and
//! `nnu-tiling` (the padded image, the class sums, the merged probabilities), each mapping
//! [`AllocError`] to its own `OutOfMemory` variant.
//!
//! ```
//! use nnu_alloc::{human_bytes, try_from_elem, try_vec, AllocError};
//!
//! let ok = try_from_elem((2, 3), 0.0f32, "a small array")?;
//! assert_eq!(ok.dim(), (2, 3));
//! // 2^46 f32 (256 TiB): past the 47-bit user address space of x86-64 and aarch64.
//! let e = try_vec(1usize << 46, 0.0f32, "the test buffer").unwrap_err();
//! assert_eq!(e, AllocError { what: "the test buffer", bytes: 1 << 48 });
//! assert_eq!(human_bytes(e.bytes), "256.0 TiB");
//! # Ok::<(), AllocError>(())
//! ```
//!
//! Deliberately not here: a global allocator or any accounting of memory in use; callers that must
//! refuse a case before starting it estimate its peak themselves.

#![warn(missing_docs)]

use ndarray::{Array, ArrayView, Dimension, IntoDimension};

/// A buffer that could not be allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: cannot allocate {} ({bytes} bytes) for {what}", human_bytes(*bytes))]
pub struct AllocError {
    /// The buffer, e.g. `the preprocessed volume`.
    pub what: &'static str,
    /// Its size in bytes (saturating at `u64::MAX`).
    pub bytes: u64,
}

/// The error for `count` elements of `T` that could not be allocated for `what` (bytes saturating).
fn out_of_memory<T>(count: u64, what: &'static str) -> AllocError {
    AllocError {
        what,
        bytes: count.saturating_mul(std::mem::size_of::<T>() as u64),
    }
}

/// A `Vec` of `n` clones of `value`, its memory reserved fallibly.
pub fn try_vec<T: Clone>(n: usize, value: T, what: &'static str) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory::<T>(n as u64, what))?;
    v.resize(n, value);
    Ok(v)
}

/// An array of `shape` filled with `value` (standard layout), allocated fallibly (`Array::from_elem`).
pub fn try_from_elem<T: Clone, Sh: IntoDimension>(
    shape: Sh,
    value: T,
    what: &'static str,
) -> Result<Array<T, Sh::Dim>, AllocError> {
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
pub fn try_to_owned<T: Clone, D: Dimension>(
    view: ArrayView<T, D>,
    what: &'static str,
) -> Result<Array<T, D>, AllocError> {
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
pub fn try_push<T>(v: &mut Vec<T>, x: T, what: &'static str) -> Result<(), AllocError> {
    if v.len() == v.capacity() {
        let more = v.len().max(1024);
        v.try_reserve(more)
            .map_err(|_| out_of_memory::<T>((v.len() as u64).saturating_add(more as u64), what))?;
    }
    v.push(x);
    Ok(())
}

/// `array` itself when it is in standard layout, else a standard-layout copy ([`try_to_owned`]).
pub fn standard_layout<T: Clone, D: Dimension>(
    array: Array<T, D>,
    what: &'static str,
) -> Result<Array<T, D>, AllocError> {
    if array.is_standard_layout() {
        Ok(array)
    } else {
        try_to_owned(array.view(), what)
    }
}

/// `bytes` in the unit that shows them (`512 bytes`, `3.2 MiB`, `1.5 GiB`), never `0.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
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
    fn an_impossible_size_is_an_error_naming_the_buffer_and_its_bytes() {
        // 2^21 cubed f32 voxels: 2^65 bytes, past any address space (and past usize: saturated).
        let e = try_from_elem([1usize << 21; 3], 0.0f32, "the test volume").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("the test volume"), "{msg}");
        assert_eq!(e.bytes, u64::MAX, "{e:?}");
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

    #[test]
    fn sizes_in_the_unit_that_shows_them() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}

//! Padding to at least the patch size, as batchgenerators' `pad_nd_image` does it for nnU-Net.

use std::ops::Range;

use ndarray::{s, ArrayView4, CowArray, Ix4};

use crate::error::{Result, TilingError};
use nnu_alloc::try_from_elem;

/// How an image of `shape` is padded to `padded_shape` (all (z, y, x)), and how to crop back.
///
/// Reproduces `batchgenerators.augmentations.utils.pad_nd_image(image, patch_size, "constant",
/// {"constant_values": 0}, return_slicer=True, shape_must_be_divisible_by=None)` (batchgenerators 0.25.5) as
/// nnU-Net 1.7.1's `_internal_predict_3D_3Dconv_tiled` calls it: every axis shorter than the patch is padded
/// with zeros to the patch length, `below = diff // 2` before and the rest after; longer axes are untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Padding {
    /// The unpadded image shape (z, y, x).
    pub shape: [usize; 3],
    /// The padded shape, `max(shape, patch)` per axis.
    pub padded_shape: [usize; 3],
    /// Zeros added before the image along each axis (`diff // 2`).
    pub below: [usize; 3],
}

impl Padding {
    /// The padding nnU-Net applies to an image of `shape` for a patch of `patch` (both (z, y, x)).
    pub fn for_patch(shape: [usize; 3], patch: [usize; 3]) -> Self {
        let padded_shape = std::array::from_fn(|a| shape[a].max(patch[a]));
        let below = std::array::from_fn(|a| (padded_shape[a] - shape[a]) / 2);
        Padding {
            shape,
            padded_shape,
            below,
        }
    }

    /// Zeros added after the image along each axis (`diff - diff // 2`).
    pub fn above(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.padded_shape[a] - self.shape[a] - self.below[a])
    }

    /// True when nothing is padded (nnU-Net then uses the image itself).
    pub fn is_identity(&self) -> bool {
        self.shape == self.padded_shape
    }

    /// The slicer back: the ranges of the padded volume that hold the image, per spatial axis.
    pub fn slicer(&self) -> [Range<usize>; 3] {
        std::array::from_fn(|a| self.below[a]..self.below[a] + self.shape[a])
    }
}

/// Pads a channel-first image (c, z, y, x) with zeros to at least `patch` (z, y, x).
///
/// Returns the padded array and the [`Padding`] that crops it back. Like `pad_nd_image`, the image itself is
/// returned (borrowed) when no axis needs padding. The streaming path does not need this copy at all:
/// [`crate::extract_tile`] reads tiles from the unpadded image with virtual zero padding.
pub fn pad_nd_image<'a, A: Copy + Default>(
    image: ArrayView4<'a, A>,
    patch: [usize; 3],
) -> Result<(CowArray<'a, A, Ix4>, Padding)> {
    let (_, z, y, x) = image.dim();
    let shape = [z, y, x];
    if shape.contains(&0) {
        return Err(TilingError::EmptyImage { shape });
    }
    if patch.contains(&0) {
        return Err(TilingError::EmptyPatch { patch });
    }
    let padding = Padding::for_patch(shape, patch);
    if padding.is_identity() {
        return Ok((CowArray::from(image), padding));
    }
    let [pz, py, px] = padding.padded_shape;
    let mut out = try_from_elem(
        (image.dim().0, pz, py, px),
        A::default(),
        "the padded image",
    )?;
    let [rz, ry, rx] = padding.slicer();
    out.slice_mut(s![.., rz, ry, rx]).assign(&image);
    Ok((CowArray::from(out), padding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    /// A padded copy that cannot be allocated (an image of 2^45 voxels, seen through a broadcast view,
    /// padded along z to 2) is an error, not an abort.
    #[test]
    fn a_padded_image_that_cannot_be_allocated_is_an_error() {
        let one = ndarray::arr0(1.0f32);
        let image = one.broadcast((1, 1, 1 << 23, 1 << 22)).unwrap();
        let e = pad_nd_image(image, [2, 1, 1]).unwrap_err();
        assert_eq!(
            e,
            TilingError::OutOfMemory {
                what: "the padded image",
                bytes: 4 << 46
            }
        );
    }

    #[test]
    fn pads_below_half_and_keeps_values() {
        let img = Array4::from_shape_fn((1, 3, 5, 2), |(_, z, y, x)| {
            (1 + z * 100 + y * 10 + x) as f32
        });
        let (p, pad) = pad_nd_image(img.view(), [4, 4, 5]).unwrap();
        assert_eq!(pad.padded_shape, [4, 5, 5]);
        assert_eq!(pad.below, [0, 0, 1]);
        assert_eq!(pad.above(), [1, 0, 2]);
        let [a, b, c] = pad.slicer();
        assert_eq!(p.slice(s![.., a, b, c]), img);
        assert_eq!(p.sum(), img.sum());
    }

    #[test]
    fn no_padding_borrows() {
        let img = Array4::<f32>::zeros((2, 4, 4, 4));
        let (p, pad) = pad_nd_image(img.view(), [4, 2, 3]).unwrap();
        assert!(pad.is_identity());
        assert!(p.is_view());
    }

    #[test]
    fn empty_inputs_are_errors() {
        let img = Array4::<f32>::zeros((1, 0, 4, 4));
        assert!(matches!(
            pad_nd_image(img.view(), [2, 2, 2]),
            Err(TilingError::EmptyImage { .. })
        ));
        let img = Array4::<f32>::zeros((1, 2, 4, 4));
        assert!(matches!(
            pad_nd_image(img.view(), [2, 0, 2]),
            Err(TilingError::EmptyPatch { .. })
        ));
    }
}

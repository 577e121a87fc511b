//! Crop to the nonzero region: nnU-Net 1.7.1 `preprocessing/cropping.py` (`create_nonzero_mask`,
//! `get_bbox_from_mask`, `crop_to_bbox`, `crop_to_nonzero`).

use ndarray::{s, Array3, ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::resample::shape3;
use crate::PreprocessError;
use nnu_alloc::{try_from_elem, try_push, try_to_owned, try_vec};

/// A crop box as nnU-Net stores `crop_bbox`: `[start, end)` per axis (z, y, x) of the original image.
pub type CropBbox = [[usize; 2]; 3];

/// The bounding box of the voxels that are nonzero in any channel (NaN counts as nonzero, as `data != 0`
/// does in numpy).
///
/// nnU-Net takes the box of `binary_fill_holes(mask)`; filling holes never changes the box (a hole is
/// enclosed by the mask, so it lies inside the box), so the box is computed from the mask directly.
///
/// # Errors
/// [`PreprocessError::NoChannels`], [`PreprocessError::ShapeMismatch`] when channel shapes differ, and
/// [`PreprocessError::AllZero`] when no voxel is nonzero.
pub fn nonzero_bbox(channels: &[ArrayView3<f32>]) -> Result<CropBbox, PreprocessError> {
    let shape = common_shape(channels)?;
    // Per z slice: Some((y_min, y_max, x_min, x_max)) over all channels.
    let per_slice: Vec<Option<[usize; 4]>> = (0..shape[0])
        .into_par_iter()
        .map(|z| {
            let mut b: Option<[usize; 4]> = None;
            for ch in channels {
                let plane = ch.index_axis(Axis(0), z);
                for (y, row) in plane.rows().into_iter().enumerate() {
                    let mut first = None;
                    let mut last = 0;
                    for (x, &v) in row.iter().enumerate() {
                        if v != 0.0 {
                            if first.is_none() {
                                first = Some(x);
                            }
                            last = x;
                        }
                    }
                    if let Some(f) = first {
                        b = Some(match b {
                            None => [y, y, f, last],
                            Some([y0, y1, x0, x1]) => {
                                [y0.min(y), y1.max(y), x0.min(f), x1.max(last)]
                            }
                        });
                    }
                }
            }
            b
        })
        .collect();
    let mut bbox: Option<CropBbox> = None;
    for (z, b) in per_slice.iter().enumerate() {
        if let Some([y0, y1, x0, x1]) = *b {
            bbox = Some(match bbox {
                None => [[z, z + 1], [y0, y1 + 1], [x0, x1 + 1]],
                Some(bb) => [
                    [bb[0][0], z + 1],
                    [bb[1][0].min(y0), bb[1][1].max(y1 + 1)],
                    [bb[2][0].min(x0), bb[2][1].max(x1 + 1)],
                ],
            });
        }
    }
    bbox.ok_or(PreprocessError::AllZero { shape })
}

/// The shape all channels share.
pub(crate) fn common_shape(channels: &[ArrayView3<f32>]) -> Result<[usize; 3], PreprocessError> {
    let first = channels.first().ok_or(PreprocessError::NoChannels)?;
    let shape = shape3(first.shape());
    for ch in channels.iter().skip(1) {
        if ch.shape() != first.shape() {
            return Err(PreprocessError::ShapeMismatch {
                what: "image channel",
                shape: ch.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
    }
    Ok(shape)
}

/// `crop_to_bbox`: a view of `bbox` in `volume`.
///
/// # Errors
/// [`PreprocessError::InvalidBbox`] when the box does not fit.
pub fn crop_to_bbox<'a, T>(
    volume: ArrayView3<'a, T>,
    bbox: &CropBbox,
) -> Result<ArrayView3<'a, T>, PreprocessError> {
    check_bbox(bbox, shape3(volume.shape()))?;
    Ok(volume.slice_move(s![
        bbox[0][0]..bbox[0][1],
        bbox[1][0]..bbox[1][1],
        bbox[2][0]..bbox[2][1]
    ]))
}

/// The mutable counterpart of [`crop_to_bbox`].
///
/// # Errors
/// [`PreprocessError::InvalidBbox`] when the box does not fit.
pub fn crop_to_bbox_mut<'a, T>(
    volume: ArrayViewMut3<'a, T>,
    bbox: &CropBbox,
) -> Result<ArrayViewMut3<'a, T>, PreprocessError> {
    check_bbox(bbox, shape3(volume.shape()))?;
    Ok(volume.slice_move(s![
        bbox[0][0]..bbox[0][1],
        bbox[1][0]..bbox[1][1],
        bbox[2][0]..bbox[2][1]
    ]))
}

pub(crate) fn check_bbox(bbox: &CropBbox, shape: [usize; 3]) -> Result<(), PreprocessError> {
    if (0..3).all(|i| bbox[i][0] < bbox[i][1] && bbox[i][1] <= shape[i]) {
        Ok(())
    } else {
        Err(PreprocessError::InvalidBbox { bbox: *bbox, shape })
    }
}

/// `create_nonzero_mask`: any channel nonzero, then `scipy.ndimage.binary_fill_holes` (6-connected
/// background: a zero voxel stays outside exactly when a 6-connected path of zero voxels links it to the
/// volume's border).
///
/// # Errors
/// As [`nonzero_bbox`] for the channel shapes (an all-zero image gives an all-false mask, not an error);
/// [`PreprocessError::OutOfMemory`] when the mask or the hole filling's buffers cannot be allocated.
pub fn nonzero_mask(channels: &[ArrayView3<f32>]) -> Result<Array3<bool>, PreprocessError> {
    let shape = common_shape(channels)?;
    let mut mask = try_from_elem(shape, false, "the nonzero mask")?;
    for ch in channels {
        ndarray::Zip::from(&mut mask)
            .and(ch)
            .par_for_each(|m, &v| *m |= v != 0.0);
    }
    fill_holes(&mut mask)?;
    Ok(mask)
}

/// `binary_fill_holes` with the default (6-connected) structure, in place.
///
/// # Errors
/// [`PreprocessError::OutOfMemory`] when its buffers (a copy of the mask in standard layout unless it is
/// one, a flag per voxel, the stack of voxels to visit) cannot be allocated; `mask` is unchanged then.
pub fn fill_holes(mask: &mut Array3<bool>) -> Result<(), PreprocessError> {
    let [nz, ny, nx] = shape3(mask.shape());
    if nz == 0 || ny == 0 || nx == 0 {
        return Ok(());
    }
    let copy;
    let m = match mask.as_slice() {
        Some(m) => m,
        None => {
            copy = try_to_owned(mask.view(), "the nonzero mask")?;
            copy.as_slice().unwrap_or_default()
        }
    };
    // reached[i]: background voxel connected to the border.
    let mut reached = try_vec(m.len(), false, "the hole filling's flags")?;
    let mut stack: Vec<usize> = Vec::new();
    let idx = |z: usize, y: usize, x: usize| (z * ny + y) * nx + x;
    let seed = |i: usize,
                reached: &mut Vec<bool>,
                stack: &mut Vec<usize>|
     -> Result<(), PreprocessError> {
        if !m[i] && !reached[i] {
            reached[i] = true;
            // The stack can grow to one entry per background voxel.
            try_push(stack, i, "the hole filling's stack")?;
        }
        Ok(())
    };
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                if z == 0 || z == nz - 1 || y == 0 || y == ny - 1 || x == 0 || x == nx - 1 {
                    seed(idx(z, y, x), &mut reached, &mut stack)?;
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let x = i % nx;
        let y = (i / nx) % ny;
        let z = i / (nx * ny);
        if x > 0 {
            seed(i - 1, &mut reached, &mut stack)?;
        }
        if x + 1 < nx {
            seed(i + 1, &mut reached, &mut stack)?;
        }
        if y > 0 {
            seed(i - nx, &mut reached, &mut stack)?;
        }
        if y + 1 < ny {
            seed(i + nx, &mut reached, &mut stack)?;
        }
        if z > 0 {
            seed(i - nx * ny, &mut reached, &mut stack)?;
        }
        if z + 1 < nz {
            seed(i + nx * ny, &mut reached, &mut stack)?;
        }
    }
    for (o, &r) in mask.iter_mut().zip(reached.iter()) {
        *o = !r;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_and_holes() {
        let mut a = Array3::<f32>::zeros((5, 6, 7));
        // a hollow cube 1..4 x 1..5 x 2..6 with a hole in the middle
        a.slice_mut(s![1..4, 1..5, 2..6]).fill(1.0);
        a[[2, 2, 3]] = 0.0;
        a[[2, 3, 4]] = 0.0;
        let bb = nonzero_bbox(&[a.view()]).unwrap();
        assert_eq!(bb, [[1, 4], [1, 5], [2, 6]]);
        let m = nonzero_mask(&[a.view()]).unwrap();
        assert!(m[[2, 2, 3]] && m[[2, 3, 4]]);
        assert!(!m[[0, 0, 0]] && !m[[2, 2, 1]]);
        assert_eq!(m.iter().filter(|&&b| b).count(), 3 * 4 * 4);
        // a gap open to the outside is not a hole
        a[[1, 1, 2]] = 0.0;
        let m = nonzero_mask(&[a.view()]).unwrap();
        assert!(!m[[1, 1, 2]]);
    }

    #[test]
    fn all_zero_is_an_error() {
        let a = Array3::<f32>::zeros((2, 3, 4));
        assert!(matches!(
            nonzero_bbox(&[a.view()]),
            Err(PreprocessError::AllZero { .. })
        ));
    }

    #[test]
    fn nan_counts_as_nonzero() {
        let mut a = Array3::<f32>::zeros((3, 3, 3));
        a[[1, 2, 0]] = f32::NAN;
        assert_eq!(nonzero_bbox(&[a.view()]).unwrap(), [[1, 2], [2, 3], [0, 1]]);
    }
}

//! nnU-Net 1.7.1's resampling policy: when an axis is resampled separately (`get_do_separate_z`,
//! `get_lowres_axis`), the target shape (`resample_patient`) and the interpolation orders.

use super::*;

/// nnU-Net's `RESAMPLING_SEPARATE_Z_ANISO_THRESHOLD`: an axis is resampled separately when the largest
/// spacing exceeds three times the smallest (strictly).
pub const SEPARATE_Z_ANISOTROPY_THRESHOLD: f64 = 3.0;

/// Spline interpolation order, as the `order` argument of `skimage.transform.resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Order {
    /// Order 0: nearest neighbour (`floor(c + 0.5)`, so exact halves round up).
    Nearest,
    /// Order 1: linear.
    Linear,
    /// Order 3: cubic B-spline with scipy's prefilter.
    Cubic,
}

impl Order {
    /// The order for an integer as nnU-Net writes it (0, 1 or 3).
    ///
    /// # Errors
    /// [`PreprocessError::UnsupportedOrder`] for any other value.
    pub fn from_int(order: u32) -> Result<Self, PreprocessError> {
        match order {
            0 => Ok(Order::Nearest),
            1 => Ok(Order::Linear),
            3 => Ok(Order::Cubic),
            other => Err(PreprocessError::UnsupportedOrder(other)),
        }
    }
}

/// nnU-Net's `get_do_separate_z`: `max(spacing) / min(spacing) > 3`.
pub fn do_separate_z(spacing: [f64; 3]) -> bool {
    let max = spacing.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = spacing.iter().cloned().fold(f64::INFINITY, f64::min);
    max / min > SEPARATE_Z_ANISOTROPY_THRESHOLD
}

/// nnU-Net's `get_lowres_axis`: every axis whose spacing equals the maximum (exact comparison of
/// `max / spacing == 1`, as numpy does it).
pub fn lowres_axes(spacing: [f64; 3]) -> Vec<usize> {
    let max = spacing.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (0..3).filter(|&i| max / spacing[i] == 1.0).collect()
}

/// The shape nnU-Net resamples to: `np.round((original_spacing / target_spacing) * shape)` (numpy rounds
/// half to even).
///
/// # Errors
/// [`PreprocessError::InvalidSpacing`] for non-finite or non-positive spacings and
/// [`PreprocessError::EmptyShape`] when an axis would get fewer than one voxel.
pub fn new_shape(
    shape: [usize; 3],
    original_spacing: [f64; 3],
    target_spacing: [f64; 3],
) -> Result<[usize; 3], PreprocessError> {
    check_spacing(original_spacing)?;
    check_spacing(target_spacing)?;
    let v: [f64; 3] = std::array::from_fn(|i| {
        ((original_spacing[i] / target_spacing[i]) * shape[i] as f64).round_ties_even()
    });
    let out = v.map(|x| x.max(0.0) as usize);
    if v.iter().any(|x| !(*x >= 1.0 && *x < 1e12)) {
        return Err(PreprocessError::EmptyShape {
            shape,
            new_shape: out,
        });
    }
    Ok(out)
}

pub(crate) fn check_spacing(spacing: [f64; 3]) -> Result<(), PreprocessError> {
    if spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(PreprocessError::InvalidSpacing(spacing))
    }
}

/// What to do with one case: the target shape and, when nnU-Net resamples one axis separately, that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResamplePlan {
    /// Shape after resampling (in the frame of the data being resampled).
    pub new_shape: [usize; 3],
    /// `Some(axis)`: in-plane resize of every slice along `axis`, then order 0 along `axis`
    /// (nnU-Net's `do_separate_z` with its `lowres_axis`). `None`: one 3-D resize.
    pub separate_z_axis: Option<usize>,
}

impl ResamplePlan {
    /// The decision of nnU-Net 1.7.1's `resample_patient(force_separate_z=None)`: separate z if the original
    /// spacing is anisotropic (lowres axis from it), else if the target spacing is (lowres axis from that);
    /// and no separate z when two or three axes share the largest spacing.
    ///
    /// # Errors
    /// As [`new_shape`].
    pub fn for_preprocessing(
        shape: [usize; 3],
        original_spacing: [f64; 3],
        target_spacing: [f64; 3],
    ) -> Result<Self, PreprocessError> {
        let new_shape = new_shape(shape, original_spacing, target_spacing)?;
        Ok(ResamplePlan {
            new_shape,
            separate_z_axis: decide_separate_z(original_spacing, target_spacing),
        })
    }

    /// The decision of nnU-Net 1.7.1's `save_segmentation_nifti_from_softmax(force_separate_z=None)`: the same
    /// rules applied to `properties['original_spacing']` first, then `properties['spacing_after_resampling']`
    /// (both as stored, i.e. without transposing; nnU-Net does the same), resampling to `cropped_shape`.
    pub fn for_export(
        cropped_shape: [usize; 3],
        original_spacing: [f64; 3],
        spacing_after_resampling: [f64; 3],
    ) -> Self {
        ResamplePlan {
            new_shape: cropped_shape,
            separate_z_axis: decide_separate_z(original_spacing, spacing_after_resampling),
        }
    }
}

pub(super) fn decide_separate_z(first: [f64; 3], second: [f64; 3]) -> Option<usize> {
    let axes = if do_separate_z(first) {
        lowres_axes(first)
    } else if do_separate_z(second) {
        lowres_axes(second)
    } else {
        return None;
    };
    (axes.len() == 1).then(|| axes[0])
}

//! The per-case preprocessing of nnU-Net 1.7.1 `GenericPreprocessor.preprocess_test_case`: crop, transpose,
//! NaN to 0, resample, normalise; and the properties it keeps for the export.

use ndarray::{Array3, Array4, ArrayView3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::crop::{common_shape, crop_to_bbox, nonzero_bbox, nonzero_mask, CropBbox};
use crate::normalize::{ct_value, normalize_channel, Normalization, Pointwise};
use crate::resample::{
    check_spacing, resample_channel_into, resample_channel_map_into, resample_mask, Order,
    ResamplePlan,
};
use crate::PreprocessError;
use nnu_alloc::try_from_elem;

/// The plan values preprocessing needs, independent of how the plans were read.
///
/// `nnu-pipeline` fills it from `nnu_artifacts::Plans`: `target_spacing` from
/// `plans['plans_per_stage'][stage]['current_spacing']`, the transposes from `plans['transpose_forward']` /
/// `['transpose_backward']`, and one [`Normalization`] per channel from `plans['normalization_schemes']`,
/// `plans['use_mask_for_norm']` and `plans['dataset_properties']['intensityproperties']`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessParams {
    /// Target spacing in the transposed frame, as nnU-Net's `current_spacing` is.
    pub target_spacing: [f64; 3],
    /// `transpose_forward` (identity `[0, 1, 2]` for most tasks).
    pub transpose_forward: [usize; 3],
    /// `transpose_backward`, the inverse permutation.
    pub transpose_backward: [usize; 3],
    /// One entry per channel.
    pub normalization: Vec<Normalization>,
    /// Interpolation order for the image (`resample_order_data`): 3 for `GenericPreprocessor`, 1 for
    /// `GenericPreprocessor_linearResampling`. Default 3.
    pub order_data: Order,
    /// Interpolation order for the nonzero mask (`resample_order_seg`, 1 in v1). Only used by schemes with
    /// `use_nonzero_mask`.
    pub order_seg: Order,
}

impl PreprocessParams {
    /// Parameters with identity transposes and nnU-Net's default orders (3 for data, 1 for the mask).
    pub fn new(target_spacing: [f64; 3], normalization: Vec<Normalization>) -> Self {
        PreprocessParams {
            target_spacing,
            transpose_forward: [0, 1, 2],
            transpose_backward: [0, 1, 2],
            normalization,
            order_data: Order::Cubic,
            order_seg: Order::Linear,
        }
    }
}

/// The image geometry as SimpleITK reports it (ITK order x, y, z; LPS).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ItkGeometry {
    /// `GetSpacing()`, (x, y, z).
    pub spacing: [f64; 3],
    /// `GetOrigin()`, (x, y, z).
    pub origin: [f64; 3],
    /// `GetDirection()`, row-major 3x3.
    pub direction: [f64; 9],
}

impl ItkGeometry {
    /// A geometry with the given (z, y, x) spacing, zero origin and identity direction.
    pub fn from_spacing_zyx(spacing_zyx: [f64; 3]) -> Self {
        ItkGeometry {
            spacing: [spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]],
            origin: [0.0; 3],
            direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        }
    }

    /// The spacing in array order (z, y, x), nnU-Net's `original_spacing`.
    pub fn spacing_zyx(&self) -> [f64; 3] {
        [self.spacing[2], self.spacing[1], self.spacing[0]]
    }
}

/// What nnU-Net keeps about a case (`properties`), with the same names. Shapes and the box are in array
/// order (z, y, x) of the original image, except `size_after_resampling` and `spacing_after_resampling`,
/// which are in the transposed frame as nnU-Net stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseProperties {
    /// Shape of the image as read.
    pub original_size_of_raw_data: [usize; 3],
    /// Spacing (z, y, x) of the image as read.
    pub original_spacing: [f64; 3],
    /// `[start, end)` per axis of the nonzero crop.
    pub crop_bbox: CropBbox,
    /// Shape after cropping (before transposing).
    pub size_after_cropping: [usize; 3],
    /// Shape after resampling (transposed frame).
    pub size_after_resampling: [usize; 3],
    /// The target spacing (transposed frame).
    pub spacing_after_resampling: [f64; 3],
    /// `itk_spacing` (x, y, z).
    pub itk_spacing: [f64; 3],
    /// `itk_origin` (x, y, z).
    pub itk_origin: [f64; 3],
    /// `itk_direction`, row-major 3x3.
    pub itk_direction: [f64; 9],
}

pub(crate) fn check_transpose(t: [usize; 3]) -> Result<(), PreprocessError> {
    let mut seen = [false; 3];
    for &a in &t {
        if a > 2 || seen[a] {
            return Err(PreprocessError::InvalidTranspose(t.to_vec()));
        }
        seen[a] = true;
    }
    Ok(())
}

pub(crate) fn permute<T: Copy>(v: [T; 3], t: [usize; 3]) -> [T; 3] {
    [v[t[0]], v[t[1]], v[t[2]]]
}

/// Preprocesses one case as nnU-Net 1.7.1 `GenericPreprocessor.preprocess_test_case` does: crop to the
/// nonzero box of all channels, `transpose_forward`, NaN to 0, resample to `params.target_spacing`
/// ([`ResamplePlan::for_preprocessing`], order `params.order_data`), normalise per channel.
///
/// `channels` are (z, y, x) volumes of one shape (the modalities `CASE_0000`, `CASE_0001`, ... already cast
/// to f32); they are consumed one at a time so that only one cropped channel besides the output is alive.
/// Returns the (c, z, y, x) preprocessed volume (transposed frame) and the case properties.
///
/// Differences to nnU-Net: an all-zero image and infinite voxels are errors (nnU-Net crashes or spreads
/// them); the modalities' geometries are the caller's to check (nnU-Net takes the first file's).
///
/// # Errors
/// [`PreprocessError`] for no channels, mismatched shapes or per-channel settings, invalid spacing or
/// transposes, an all-zero image, infinite voxels, or an empty resampled shape.
pub fn preprocess_case(
    mut channels: Vec<Array3<f32>>,
    geometry: &ItkGeometry,
    params: &PreprocessParams,
) -> Result<(Array4<f32>, CaseProperties), PreprocessError> {
    let views: Vec<ArrayView3<f32>> = channels.iter().map(|c| c.view()).collect();
    let shape = common_shape(&views)?;
    if params.normalization.len() != channels.len() {
        return Err(PreprocessError::ChannelCount {
            what: "normalization schemes",
            found: params.normalization.len(),
            expected: channels.len(),
        });
    }
    let tf = params.transpose_forward;
    check_transpose(tf)?;
    check_transpose(params.transpose_backward)?;
    let original_spacing = geometry.spacing_zyx();
    check_spacing(original_spacing)?;
    check_spacing(params.target_spacing)?;
    for (c, ch) in views.iter().enumerate() {
        if let Some((index, value)) = find_infinite(*ch) {
            return Err(PreprocessError::NonFinite {
                channel: c,
                index,
                value,
            });
        }
    }
    let bbox = nonzero_bbox(&views)?;
    let cropped_shape = [0, 1, 2].map(|i| bbox[i][1] - bbox[i][0]);
    let plan = ResamplePlan::for_preprocessing(
        permute(cropped_shape, tf),
        permute(original_spacing, tf),
        params.target_spacing,
    )?;
    // The nonzero mask (`seg[-1] >= 0`) is only computed when a scheme reads it.
    let mask = if params.normalization.iter().any(Normalization::needs_mask) {
        let full = nonzero_mask(&views)?;
        let cropped = crop_to_bbox(full.view(), &bbox)?.permuted_axes(tf);
        Some(resample_mask(cropped, &plan, params.order_seg)?)
    } else {
        None
    };
    drop(views);

    let [nz, ny, nx] = plan.new_shape;
    let mut out = try_from_elem(
        (channels.len(), nz, ny, nx),
        0.0f32,
        "the preprocessed volume",
    )?;
    for (c, (mut ch, mut dst)) in channels
        .drain(..)
        .zip(out.axis_iter_mut(Axis(0)))
        .enumerate()
    {
        // nnU-Net sets NaN to 0 after cropping and before resampling; the box above counted NaN as nonzero.
        ch.par_mapv_inplace(|v| if v.is_nan() { 0.0 } else { v });
        let src = crop_to_bbox(ch.view(), &bbox)?.permuted_axes(tf);
        let norm = &params.normalization[c];
        // CT without mask and noNorm are fused into the resampling's store (the same f32 operations)
        match norm.pointwise(c)? {
            Some(Pointwise::Identity) => {
                resample_channel_into(src, dst, &plan, params.order_data)?;
            }
            Some(Pointwise::Ct(p)) => {
                resample_channel_map_into(src, dst, &plan, params.order_data, move |v| {
                    ct_value(v, p)
                })?;
            }
            None => {
                resample_channel_into(src, dst.view_mut(), &plan, params.order_data)?;
                normalize_channel(dst, norm, mask.as_ref().map(|m| m.view()), c)?;
            }
        }
        drop(ch);
    }
    let props = CaseProperties {
        original_size_of_raw_data: shape,
        original_spacing,
        crop_bbox: bbox,
        size_after_cropping: cropped_shape,
        size_after_resampling: plan.new_shape,
        spacing_after_resampling: params.target_spacing,
        itk_spacing: geometry.spacing,
        itk_origin: geometry.origin,
        itk_direction: geometry.direction,
    };
    Ok((out, props))
}

fn find_infinite(ch: ArrayView3<f32>) -> Option<([usize; 3], f32)> {
    (0..ch.shape()[0]).into_par_iter().find_map_first(|z| {
        let plane = ch.index_axis(Axis(0), z);
        plane
            .indexed_iter()
            .find(|(_, v)| v.is_infinite())
            .map(|((y, x), &v)| ([z, y, x], v))
    })
}

/// [`preprocess_case`] for one resampling step only: the shape a case of `shape` (z, y, x) with spacing
/// `original_spacing` would get, without touching voxels. Useful to plan memory and tiling.
///
/// # Errors
/// As [`ResamplePlan::for_preprocessing`].
pub fn planned_shape(
    cropped_shape: [usize; 3],
    original_spacing: [f64; 3],
    params: &PreprocessParams,
) -> Result<[usize; 3], PreprocessError> {
    check_transpose(params.transpose_forward)?;
    let tf = params.transpose_forward;
    Ok(ResamplePlan::for_preprocessing(
        permute(cropped_shape, tf),
        permute(original_spacing, tf),
        params.target_spacing,
    )?
    .new_shape)
}

/// nnU-Net 1.7.1's cascade input (`preprocess_save_to_queue` with `segs_from_prev_stage`): `data` (the
/// preprocessed (c, z, y, x) channels) with the previous stage's segmentation stacked after them, as that
/// function builds it: `seg` is the segmentation in the image's numpy order (z, y, x) as read, of the
/// image's shape; it is transposed with `transpose_forward`, resized to the preprocessed shape with
/// `resize_segmentation(order=1)` ([`crate::resample::resize_segmentation`]) and one-hot encoded over
/// `classes` (`to_one_hot`, the foreground classes `1..num_classes`), one f32 channel per class.
///
/// Reproduced as nnU-Net does it, quirk included: the segmentation is **not** cropped to the image's
/// nonzero box first, so where the crop removed a margin, the whole uncropped segmentation is squeezed
/// into the cropped extent (the previous stage's labels land shifted and scaled against the image).
///
/// # Errors
/// [`PreprocessError::InvalidTranspose`] for a bad `transpose_forward`; as
/// [`crate::resample::resize_segmentation`].
pub fn append_prev_stage_v1(
    data: Array4<f32>,
    seg: ArrayView3<i32>,
    transpose_forward: [usize; 3],
    classes: &[i32],
) -> Result<Array4<f32>, PreprocessError> {
    check_transpose(transpose_forward)?;
    let (c, z, y, x) = data.dim();
    let resized = crate::resample::resize_segmentation(
        seg.permuted_axes(transpose_forward),
        [z, y, x],
        Order::Linear,
    )?;
    let mut out = try_from_elem(
        (c + classes.len(), z, y, x),
        0.0f32,
        "the preprocessed volume with the previous stage",
    )?;
    out.slice_mut(ndarray::s![..c, .., .., ..]).assign(&data);
    drop(data);
    for (k, &class) in classes.iter().enumerate() {
        out.index_axis_mut(Axis(0), c + k)
            .zip_mut_with(&resized, |o, &v| *o = if v == class { 1.0 } else { 0.0 });
    }
    Ok(out)
}

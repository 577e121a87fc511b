//! nnunetv2 (2.8.1) preprocessing: `DefaultPreprocessor.run_case_npy` for inference.
//!
//! The order differs from v1: `transpose_forward` first, crop to the nonzero box (holes filled), then the
//! per-channel normalisation chosen by scheme name *before* resampling, then the resampling function the
//! plans name (`resample_data_or_seg_to_shape` with its kwargs). Normalisation schemes
//! (`nnunetv2/preprocessing/normalization/default_normalization_schemes.py`):
//!
//! - `CTNormalization`: clip to the plans' `percentile_00_5` / `percentile_99_5`, subtract `mean`, divide by
//!   `max(std, 1e-8)`, in f32 (numpy applies Python-float statistics to f32 data in f32); the mask is never
//!   used.
//! - `ZScoreNormalization`: with `use_mask_for_norm`, mean and std over the nonzero mask (`seg >= 0`) and
//!   only those voxels rewritten (the rest are 0 already); otherwise over all voxels; division by
//!   `max(std, 1e-8)`.
//! - `NoNormalization`, `RescaleTo01Normalization` (`(x - min) / max(max - min, 1e-8)`),
//!   `RGBTo01Normalization` (`x / 255`, values must lie in `[0, 255]`).
//!
//! Deliberate differences: z-score statistics are accumulated in f64 (numpy sums f32 pairwise); infinite or
//! NaN voxels are errors (nnunetv2 lets them spread through the statistics); `order_z` other than 0 is
//! refused.

use ndarray::{Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut3, Axis};

use crate::case::{check_transpose, permute};
use crate::crop::{common_shape, crop_to_bbox, nonzero_bbox, nonzero_mask, CropBbox};
use crate::resample::{
    check_spacing, new_shape, resample_channel_into, resample_segmentation, Order, ResamplePlan,
};
use crate::PreprocessError;
use nnu_alloc::{standard_layout, try_from_elem, try_to_owned};

const EPS: f64 = 1e-8;

/// One channel's normalisation, as `DefaultPreprocessor._normalize` picks it by scheme name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum V2Normalization {
    /// `CTNormalization` with the plans' `foreground_intensity_properties_per_channel[c]`.
    Ct {
        /// `mean`
        mean: f64,
        /// `std`
        std: f64,
        /// `percentile_00_5`
        lower: f64,
        /// `percentile_99_5`
        upper: f64,
    },
    /// `ZScoreNormalization` with `use_mask_for_norm[c]`.
    ZScore {
        /// Statistics over the nonzero mask only.
        use_mask: bool,
    },
    /// `NoNormalization`
    NoNorm,
    /// `RescaleTo01Normalization`
    RescaleTo01,
    /// `RGBTo01Normalization`
    RgbTo01,
}

impl V2Normalization {
    /// The normalisation of scheme `scheme` for channel `channel`; `ct` holds the channel's
    /// `(mean, std, percentile_00_5, percentile_99_5)` when the plans have them.
    ///
    /// # Errors
    /// [`PreprocessError::Unsupported`] for an unknown scheme, [`PreprocessError::InvalidNormalization`] for
    /// `CTNormalization` without intensity properties.
    pub fn from_scheme(
        scheme: &str,
        use_mask: bool,
        ct: Option<(f64, f64, f64, f64)>,
        channel: usize,
    ) -> Result<Self, PreprocessError> {
        Ok(match scheme {
            "CTNormalization" => {
                let (mean, std, lower, upper) =
                    ct.ok_or(PreprocessError::InvalidNormalization {
                        channel,
                        name: "foreground_intensity_properties_per_channel",
                        value: f64::NAN,
                    })?;
                V2Normalization::Ct {
                    mean,
                    std,
                    lower,
                    upper,
                }
            }
            "ZScoreNormalization" => V2Normalization::ZScore { use_mask },
            "NoNormalization" => V2Normalization::NoNorm,
            "RescaleTo01Normalization" => V2Normalization::RescaleTo01,
            "RGBTo01Normalization" => V2Normalization::RgbTo01,
            other => {
                return Err(PreprocessError::Unsupported {
                    what: format!("normalization_schemes[{channel}] = {other:?}"),
                })
            }
        })
    }
}

/// `resampling_fn_data` with its kwargs (`resample_data_or_seg_to_shape`, is_seg false).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct V2Resampling {
    /// `order` (0, 1 or 3).
    pub order: Order,
    /// `force_separate_z`: `None` lets the spacings decide.
    pub force_separate_z: Option<bool>,
    /// `separate_z_anisotropy_threshold` (3 in nnunetv2).
    pub anisotropy_threshold: f64,
}

impl V2Resampling {
    /// Builds the resampling from the plans' function name and kwargs.
    ///
    /// # Errors
    /// [`PreprocessError::Unsupported`] for another function than `resample_data_or_seg_to_shape` or an
    /// `order_z` other than 0; [`PreprocessError::UnsupportedOrder`] for orders other than 0, 1, 3.
    pub fn from_plans(
        function: &str,
        order: usize,
        order_z: usize,
        force_separate_z: Option<bool>,
        anisotropy_threshold: f64,
    ) -> Result<Self, PreprocessError> {
        if function != "resample_data_or_seg_to_shape" {
            return Err(PreprocessError::Unsupported {
                what: format!("resampling function {function:?}"),
            });
        }
        if order_z != 0 {
            return Err(PreprocessError::Unsupported {
                what: format!("order_z = {order_z} (only 0 is implemented)"),
            });
        }
        Ok(V2Resampling {
            order: Order::from_int(u32::try_from(order).unwrap_or(u32::MAX))?,
            force_separate_z,
            anisotropy_threshold,
        })
    }

    /// `determine_do_sep_z_and_axis`: the axis resampled separately (order 0 along it), if any.
    pub fn separate_z_axis(&self, current: [f64; 3], new: [f64; 3]) -> Option<usize> {
        let aniso = |s: [f64; 3]| {
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = s.iter().copied().fold(f64::INFINITY, f64::min);
            max / min > self.anisotropy_threshold
        };
        let lowres = |s: [f64; 3]| {
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (0..3).filter(|&i| max / s[i] == 1.0).collect::<Vec<_>>()
        };
        let axes = match self.force_separate_z {
            Some(false) => return None,
            Some(true) => lowres(current),
            None if aniso(current) => lowres(current),
            None if aniso(new) => lowres(new),
            None => return None,
        };
        (axes.len() == 1).then(|| axes[0])
    }
}

/// What [`preprocess_case_v2`] needs from a configuration of the plans.
#[derive(Debug, Clone, PartialEq)]
pub struct V2PreprocessParams {
    /// `transpose_forward`
    pub transpose_forward: [usize; 3],
    /// The configuration's `spacing` (transposed frame): 3 entries, or 2 for a 2-D configuration (the
    /// first axis then keeps its spacing).
    pub spacing: Vec<f64>,
    /// One normalisation per channel.
    pub normalization: Vec<V2Normalization>,
    /// `resampling_fn_data` and its kwargs.
    pub resampling: V2Resampling,
}

/// What nnunetv2 records about a case for export (`properties` of `run_case`), axis orders as it keeps them.
/// Serialised (JSON, these field names) as the `CASE.json` the file path to accelerators keeps between
/// preprocessing and postprocessing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct V2CaseProperties {
    /// `spacing`: the image's spacing in numpy order (z, y, x), not transposed.
    pub spacing: [f64; 3],
    /// `shape_before_cropping` (transposed frame).
    pub shape_before_cropping: [usize; 3],
    /// `bbox_used_for_cropping`: `[start, end)` per axis of the transposed frame.
    pub bbox_used_for_cropping: CropBbox,
    /// `shape_after_cropping_and_before_resampling` (transposed frame).
    pub shape_after_cropping_and_before_resampling: [usize; 3],
    /// The target spacing used (transposed frame; for 2-D configurations with the first axis kept).
    pub target_spacing: [f64; 3],
    /// The shape after resampling (transposed frame), the network's input extent.
    pub shape_after_resampling: [usize; 3],
}

/// The configuration's target spacing in the transposed frame for an image whose transposed spacing is
/// `original_spacing`: the plans' 3 entries, or for a 2-D configuration (2 entries) the first axis kept.
fn target_spacing_v2(
    params: &V2PreprocessParams,
    original_spacing: [f64; 3],
) -> Result<[f64; 3], PreprocessError> {
    let target: [f64; 3] = match params.spacing.as_slice() {
        &[a, b, c] => [a, b, c],
        &[b, c] => [original_spacing[0], b, c],
        other => {
            return Err(PreprocessError::Unsupported {
                what: format!("configuration spacing {other:?} (2 or 3 entries expected)"),
            })
        }
    };
    check_spacing(target)?;
    Ok(target)
}

/// The shape (transposed frame) [`preprocess_case_v2`] resamples an image of `shape_zyx` at
/// `spacing_zyx` to, before cropping: with the uncropped shape an upper bound of the network's input
/// extent, from the header alone (for memory estimates).
pub fn planned_shape_v2(
    shape_zyx: [usize; 3],
    spacing_zyx: [f64; 3],
    params: &V2PreprocessParams,
) -> Result<[usize; 3], PreprocessError> {
    let tf = params.transpose_forward;
    check_transpose(tf)?;
    check_spacing(spacing_zyx)?;
    let original_spacing = permute(spacing_zyx, tf);
    let target_spacing = target_spacing_v2(params, original_spacing)?;
    new_shape(permute(shape_zyx, tf), original_spacing, target_spacing)
}

/// Preprocesses one case as nnunetv2 2.8.1 `DefaultPreprocessor.run_case_npy` does for inference (see
/// the module docs). `channels` are (z, y, x) volumes of one shape, `spacing_zyx` their spacing in numpy
/// order. Returns the (c, z, y, x) preprocessed array in the transposed frame and the properties.
///
/// # Errors
/// [`PreprocessError`] for no channels, mismatched shapes or channel counts, invalid spacings or transposes,
/// an all-zero image, non-finite voxels, RGB values outside `[0, 255]`, or an empty resampled shape.
pub fn preprocess_case_v2(
    channels: Vec<Array3<f32>>,
    spacing_zyx: [f64; 3],
    params: &V2PreprocessParams,
) -> Result<(Array4<f32>, V2CaseProperties), PreprocessError> {
    preprocess_case_v2_cascade(channels, None, spacing_zyx, params)
}

/// The previous stage's segmentation of a cascade stage (`3d_cascade_fullres`), as nnunetv2 takes it:
/// `run_case(image_files, seg_file)` reads it beside the images, and the data iterators stack its one-hot
/// encoding onto the preprocessed channels.
#[derive(Debug, Clone)]
pub struct V2PrevStage {
    /// The segmentation in numpy order (z, y, x), as read (`read_seg`: the label values as f32), the
    /// image's shape.
    pub seg: Array3<f32>,
    /// `resampling_fn_seg` with its kwargs (order 1, order_z 0 in nnunetv2's plans).
    pub resampling: V2Resampling,
    /// `label_manager.foreground_labels`: one input channel per label, in this order.
    pub foreground_labels: Vec<i64>,
}

/// [`preprocess_case_v2`] of a cascade stage: with `prev`, the previous stage's segmentation goes through
/// `run_case_npy` with the images, as nnunetv2 2.8.1 does it: transposed, cropped to the images' nonzero
/// box, `-1` written where it is 0 outside the (hole-filled) nonzero mask (`crop_to_nonzero`), resampled
/// to the preprocessed shape as a segmentation (`resampling_fn_seg`: [`crate::resample::resample_segmentation`],
/// the separate-z decision with its own kwargs), then `convert_labelmap_to_one_hot` over
/// `prev.foreground_labels` appended as f32 channels after the images' (what the data iterators
/// `np.vstack`). Without `prev` this is [`preprocess_case_v2`].
///
/// # Errors
/// As [`preprocess_case_v2`]; [`PreprocessError::ShapeMismatch`] when the segmentation's shape is not the
/// images', [`PreprocessError::Unsupported`] when it holds a value that is not an integer label.
pub fn preprocess_case_v2_cascade(
    channels: Vec<Array3<f32>>,
    prev: Option<V2PrevStage>,
    spacing_zyx: [f64; 3],
    params: &V2PreprocessParams,
) -> Result<(Array4<f32>, V2CaseProperties), PreprocessError> {
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
    check_spacing(spacing_zyx)?;
    for (c, ch) in views.iter().enumerate() {
        if let Some((index, value)) = ch.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(PreprocessError::NonFinite {
                channel: c,
                index: [index.0, index.1, index.2],
                value: *value,
            });
        }
    }
    let original_spacing = permute(spacing_zyx, tf);
    let target_spacing = target_spacing_v2(params, original_spacing)?;
    // The box and mask in the image's frame; transposing first (as nnunetv2 does) gives the same box,
    // permuted.
    let bbox = nonzero_bbox(&views)?;
    let needs_mask = params
        .normalization
        .iter()
        .any(|n| matches!(n, V2Normalization::ZScore { use_mask: true }))
        || prev.is_some();
    let mask = if needs_mask {
        let m = nonzero_mask(&views)?;
        let cropped = crop_to_bbox(m.view(), &bbox)?.permuted_axes(tf);
        Some(try_to_owned(cropped, "the cropped nonzero mask")?)
    } else {
        None
    };
    // The previous stage's labels, cropped and transposed, -1 outside the mask where they are 0.
    let prev_seg = match &prev {
        Some(p) => {
            if p.seg.shape() != shape.as_slice() {
                return Err(PreprocessError::ShapeMismatch {
                    what: "the previous stage's segmentation",
                    shape: p.seg.shape().to_vec(),
                    expected: shape.to_vec(),
                });
            }
            if let Some((index, v)) = p
                .seg
                .indexed_iter()
                .find(|(_, v)| !(v.is_finite() && v.fract() == 0.0 && v.abs() < 1e9))
            {
                return Err(PreprocessError::Unsupported {
                    what: format!(
                        "the previous stage's segmentation holds {v} at voxel {:?}: not a label",
                        [index.0, index.1, index.2]
                    ),
                });
            }
            let cropped = crop_to_bbox(p.seg.view(), &bbox)?.permuted_axes(tf);
            let mut labels = try_from_elem(cropped.raw_dim(), 0i32, "the cropped previous stage")?;
            labels.zip_mut_with(&cropped, |o, &v| *o = v as i32);
            if let Some(m) = &mask {
                labels.zip_mut_with(m, |o, &inside| {
                    if *o == 0 && !inside {
                        *o = -1;
                    }
                });
            }
            Some(labels)
        }
        None => None,
    };
    // `_normalize` masks with `seg >= 0`: with a previous stage that is the nonzero mask plus every
    // voxel the previous stage labelled (nnunetv2 writes -1 only where that segmentation is 0).
    let mask = match &prev_seg {
        Some(labels) => Some(labels.mapv(|v| v >= 0)),
        None => mask,
    };
    drop(views);
    let cropped = [0, 1, 2].map(|i| bbox[i][1] - bbox[i][0]);
    let cropped_t = permute(cropped, tf);
    let plan = ResamplePlan {
        new_shape: new_shape(cropped_t, original_spacing, target_spacing)?,
        separate_z_axis: params
            .resampling
            .separate_z_axis(original_spacing, target_spacing),
    };
    let [nz, ny, nx] = plan.new_shape;
    let n_prev = prev.as_ref().map_or(0, |p| p.foreground_labels.len());
    let n_images = channels.len();
    let mut out = try_from_elem(
        (n_images + n_prev, nz, ny, nx),
        0.0f32,
        "the preprocessed volume",
    )?;
    if let (Some(p), Some(labels)) = (&prev, prev_seg) {
        let seg_plan = ResamplePlan {
            new_shape: plan.new_shape,
            separate_z_axis: p
                .resampling
                .separate_z_axis(original_spacing, target_spacing),
        };
        let resampled = resample_segmentation(labels.view(), &seg_plan, p.resampling.order)?;
        drop(labels);
        for (k, &label) in p.foreground_labels.iter().enumerate() {
            let mut dst = out.index_axis_mut(Axis(0), n_images + k);
            dst.zip_mut_with(&resampled, |o, &v| {
                *o = if i64::from(v) == label { 1.0 } else { 0.0 }
            });
        }
    }
    for (c, (ch, dst)) in channels
        .into_iter()
        .zip(out.axis_iter_mut(Axis(0)).take(n_images))
        .enumerate()
    {
        let mut src = try_to_owned(
            crop_to_bbox(ch.view(), &bbox)?.permuted_axes(tf),
            "a cropped channel",
        )?;
        drop(ch);
        normalize_v2(
            src.view_mut(),
            &params.normalization[c],
            mask.as_ref().map(|m| m.view()),
            c,
        )?;
        resample_channel_into(src.view(), dst, &plan, params.resampling.order)?;
    }
    let props = V2CaseProperties {
        spacing: spacing_zyx,
        shape_before_cropping: permute(shape, tf),
        bbox_used_for_cropping: permute(bbox, tf),
        shape_after_cropping_and_before_resampling: cropped_t,
        target_spacing,
        shape_after_resampling: plan.new_shape,
    };
    Ok((out, props))
}

/// Mean and population standard deviation (numpy's default `ddof=0`) of the selected voxels, in f64.
fn mean_std<'a>(values: impl Iterator<Item = &'a f32> + Clone) -> (f64, f64, usize) {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0.0f64), |(n, s), &v| (n + 1, s + f64::from(v)));
    if n == 0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let mean = sum / n as f64;
    let var = values.fold(0.0f64, |a, &v| {
        let d = f64::from(v) - mean;
        a + d * d
    }) / n as f64;
    (mean, var.sqrt(), n)
}

/// Applies one channel's scheme in place (see the module docs for each scheme's arithmetic). `mask` is the
/// cropped, transposed nonzero mask (needed for z-score with `use_mask`).
///
/// # Errors
/// [`PreprocessError::InvalidNormalization`] for RGB values outside `[0, 255]` or a masked z-score with an
/// empty mask; [`PreprocessError::ShapeMismatch`] when the mask does not fit.
pub fn normalize_v2(
    mut image: ArrayViewMut3<f32>,
    norm: &V2Normalization,
    mask: Option<ArrayView3<bool>>,
    channel: usize,
) -> Result<(), PreprocessError> {
    match *norm {
        V2Normalization::Ct {
            mean,
            std,
            lower,
            upper,
        } => {
            let (lo, hi, m, d) = (lower as f32, upper as f32, mean as f32, std.max(EPS) as f32);
            image.par_mapv_inplace(|v| (v.clamp(lo, hi) - m) / d);
        }
        V2Normalization::ZScore { use_mask: true } => {
            let mask = mask.ok_or(PreprocessError::InvalidNormalization {
                channel,
                name: "use_mask_for_norm (no mask)",
                value: f64::NAN,
            })?;
            if mask.shape() != image.shape() {
                return Err(PreprocessError::ShapeMismatch {
                    what: "nonzero mask",
                    shape: mask.shape().to_vec(),
                    expected: image.shape().to_vec(),
                });
            }
            let (mean, std, n) = {
                let sel = image
                    .iter()
                    .zip(mask.iter())
                    .filter(|(_, &m)| m)
                    .map(|(v, _)| v);
                mean_std(sel)
            };
            if n == 0 {
                return Err(PreprocessError::InvalidNormalization {
                    channel,
                    name: "use_mask_for_norm (empty mask)",
                    value: 0.0,
                });
            }
            let (m, d) = (mean as f32, std.max(EPS) as f32);
            image.zip_mut_with(&mask, |v, &inside| {
                if inside {
                    *v = (*v - m) / d;
                }
            });
        }
        V2Normalization::ZScore { use_mask: false } => {
            let (mean, std, _) = mean_std(image.iter());
            let (m, d) = (mean as f32, std.max(EPS) as f32);
            image.par_mapv_inplace(|v| (v - m) / d);
        }
        V2Normalization::NoNorm => {}
        V2Normalization::RescaleTo01 => {
            let min = image.iter().copied().fold(f32::INFINITY, f32::min);
            image.par_mapv_inplace(|v| v - min);
            let max = image.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let d = f64::from(max).max(EPS) as f32;
            image.par_mapv_inplace(|v| v / d);
        }
        V2Normalization::RgbTo01 => {
            if let Some(&bad) = image.iter().find(|v| !(0.0..=255.0).contains(*v)) {
                return Err(PreprocessError::InvalidNormalization {
                    channel,
                    name: "RGB value outside [0, 255]",
                    value: f64::from(bad),
                });
            }
            image.par_mapv_inplace(|v| v / 255.0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn schemes_by_name() {
        assert!(matches!(
            V2Normalization::from_scheme("MyNorm", false, None, 1),
            Err(PreprocessError::Unsupported { what }) if what.contains("MyNorm")
        ));
        assert!(V2Normalization::from_scheme("CTNormalization", false, None, 0).is_err());
        assert_eq!(
            V2Normalization::from_scheme("ZScoreNormalization", true, None, 0).unwrap(),
            V2Normalization::ZScore { use_mask: true }
        );
    }

    #[test]
    fn rescale_and_rgb() {
        let mut a = Array3::from_shape_vec((1, 1, 3), vec![2.0f32, 4.0, 6.0]).unwrap();
        normalize_v2(a.view_mut(), &V2Normalization::RescaleTo01, None, 0).unwrap();
        assert_eq!(a.as_slice().unwrap(), &[0.0, 0.5, 1.0]);
        let mut a = Array3::from_shape_vec((1, 1, 2), vec![0.0f32, 255.0]).unwrap();
        normalize_v2(a.view_mut(), &V2Normalization::RgbTo01, None, 0).unwrap();
        assert_eq!(a.as_slice().unwrap(), &[0.0, 1.0]);
        let mut a = Array3::from_shape_vec((1, 1, 2), vec![0.0f32, 256.0]).unwrap();
        assert!(normalize_v2(a.view_mut(), &V2Normalization::RgbTo01, None, 0).is_err());
    }

    #[test]
    fn separate_z_follows_force_and_threshold() {
        let r = |force| V2Resampling {
            order: Order::Cubic,
            force_separate_z: force,
            anisotropy_threshold: 3.0,
        };
        assert_eq!(r(None).separate_z_axis([4.0, 1.0, 1.0], [1.0; 3]), Some(0));
        assert_eq!(r(None).separate_z_axis([1.0; 3], [1.0, 1.0, 3.5]), Some(2));
        assert_eq!(r(None).separate_z_axis([2.0, 1.0, 1.0], [1.0; 3]), None);
        assert_eq!(
            r(Some(false)).separate_z_axis([4.0, 1.0, 1.0], [1.0; 3]),
            None
        );
        assert_eq!(
            r(Some(true)).separate_z_axis([2.0, 1.0, 1.0], [1.0; 3]),
            Some(0)
        );
        // Two axes sharing the largest spacing: no separate axis.
        assert_eq!(r(None).separate_z_axis([4.0, 4.0, 1.0], [1.0; 3]), None);
        assert!(V2Resampling::from_plans("resample_torch_fornnunet", 3, 0, None, 3.0).is_err());
        assert!(
            V2Resampling::from_plans("resample_data_or_seg_to_shape", 3, 1, None, 3.0).is_err()
        );
    }

    /// Each head made on its own in the image's frame is that head of the whole array, which is the
    /// cropped probabilities pasted into the box (background 1 for head 0 of softmax models, else 0) and
    /// transposed back, index by index.
    #[test]
    fn heads_one_at_a_time_are_the_whole_array() {
        for (tb, background_one) in [([0, 1, 2], true), ([2, 0, 1], true), ([1, 2, 0], false)] {
            let cropped = Array4::from_shape_fn((3, 2, 3, 4), |(h, z, y, x)| {
                (h * 1000 + z * 100 + y * 10 + x) as f32 + 0.25
            });
            let bbox = [[1, 3], [0, 3], [2, 6]];
            let full = [4, 3, 7];
            let p = V2Probabilities {
                cropped: cropped.clone(),
                bbox,
                shape_before_cropping: full,
                transpose_backward: tb,
                background_one,
            };
            let shape = p.shape();
            assert_eq!(shape, [3, full[tb[0]], full[tb[1]], full[tb[2]]]);
            let mut expected = Array4::<f32>::zeros(shape);
            for (h, i0, i1, i2) in all_indices(3, full) {
                let i = [i0, i1, i2];
                let inside = (0..3).all(|a| (bbox[a][0]..bbox[a][1]).contains(&i[a]));
                let v = if inside {
                    cropped[[h, i0 - bbox[0][0], i1 - bbox[1][0], i2 - bbox[2][0]]]
                } else if h == 0 && background_one {
                    1.0
                } else {
                    0.0
                };
                expected[[h, i[tb[0]], i[tb[1]], i[tb[2]]]] = v;
            }
            assert_eq!(p.to_array().unwrap(), expected, "{tb:?}");
            let mut heads = Vec::new();
            p.for_each_head(|h, head| -> Result<(), PreprocessError> {
                assert_eq!(head, expected.index_axis(Axis(0), h), "{tb:?} head {h}");
                assert!(head.is_standard_layout());
                heads.push(h);
                Ok(())
            })
            .unwrap();
            assert_eq!(heads, [0, 1, 2]);
        }
    }

    fn all_indices(
        heads: usize,
        [z, y, x]: [usize; 3],
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        (0..heads).flat_map(move |h| {
            (0..z).flat_map(move |a| (0..y).flat_map(move |b| (0..x).map(move |c| (h, a, b, c))))
        })
    }
}

/// How the label manager turns logits into labels (`LabelManager`, nnunetv2 2.8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Labels {
    /// `softmax_helper_dim0` over the heads, then `argmax(0)`: the label is the head index.
    Softmax,
    /// Region-based training: `sigmoid` per head; head `i` (a region) sets label `class_order[i]` where
    /// its probability is above 0.5, heads in order (a later region overwrites an earlier one).
    Regions {
        /// `regions_class_order` of `dataset.json`, one label per head.
        class_order: Vec<u8>,
    },
}

/// What the export of a v2 prediction needs from the plans and `dataset.json`
/// (`convert_predicted_logits_to_segmentation_with_correct_shape`).
#[derive(Debug, Clone, PartialEq)]
pub struct V2ExportParams {
    /// `transpose_forward`
    pub transpose_forward: [usize; 3],
    /// `transpose_backward`
    pub transpose_backward: [usize; 3],
    /// The configuration's `spacing` (transposed frame; 2 entries for a 2-D configuration).
    pub spacing: Vec<f64>,
    /// `resampling_fn_probabilities` and its kwargs.
    pub resampling: V2Resampling,
    /// The label manager's non-linearity and label mapping.
    pub labels: V2Labels,
}

/// The export of one case: the segmentation in the image's frame and, when asked, the probabilities.
#[derive(Debug, Clone)]
pub struct V2Exported {
    /// Labels (z, y, x) in the original image's frame (cropping reverted, `transpose_backward` applied).
    pub segmentation: Array3<u8>,
    /// The probabilities, made in the image's frame one head at a time when they are written
    /// ([`V2Probabilities::for_each_head`]).
    pub probabilities: Option<V2Probabilities>,
}

/// The probabilities of an export (heads, z, y, x in the original image's frame, as nnunetv2's
/// `revert_cropping_on_probabilities` then `transpose([0] + [i + 1 for i in transpose_backward])` make
/// them: outside the crop box head 0 is 1 and the others 0 for softmax models, all 0 for region models),
/// held as the cropped probabilities in the transposed frame that the segmentation was made from. A head
/// in the image's frame is made only when it is asked for, so that writing them all costs one f32 channel
/// of the image rather than one per head.
#[derive(Debug, Clone)]
pub struct V2Probabilities {
    /// (heads, z, y, x) inside `bbox`, transposed frame.
    cropped: Array4<f32>,
    bbox: [[usize; 2]; 3],
    shape_before_cropping: [usize; 3],
    transpose_backward: [usize; 3],
    /// Head 0's value outside the crop box (1 for softmax models).
    background_one: bool,
}

impl V2Probabilities {
    /// Number of heads (the first axis).
    pub fn heads(&self) -> usize {
        self.cropped.shape()[0]
    }

    /// The shape of the whole array: (heads, z, y, x) in the image's numpy frame.
    pub fn shape(&self) -> [usize; 4] {
        let [z, y, x] = permute(self.shape_before_cropping, self.transpose_backward);
        [self.heads(), z, y, x]
    }

    /// Calls `f(head, probabilities)` for every head in order with that head in the image's frame (C
    /// order, the array's `[head]`). One (z, y, x) buffer is allocated (fallibly) and reused.
    ///
    /// # Errors
    /// [`PreprocessError::OutOfMemory`] (converted) when the buffer cannot be allocated; the first error
    /// of `f`, returned as it is.
    pub fn for_each_head<E: From<PreprocessError>>(
        &self,
        mut f: impl FnMut(usize, ArrayView3<f32>) -> Result<(), E>,
    ) -> Result<(), E> {
        let tb = self.transpose_backward;
        let mut channel = try_from_elem(
            permute(self.shape_before_cropping, tb),
            0.0f32,
            "one head of the probabilities in the image's frame",
        )
        .map_err(PreprocessError::from)?;
        // The channel indexed in the transposed frame: axis `a` of this view is the channel's axis `k`
        // with `tb[k] == a`.
        let mut inverse = [0usize; 3];
        for (k, &a) in tb.iter().enumerate() {
            inverse[a] = k;
        }
        let b = self.bbox;
        let crop = ndarray::s![b[0][0]..b[0][1], b[1][0]..b[1][1], b[2][0]..b[2][1]];
        for (h, head) in self.cropped.outer_iter().enumerate() {
            channel.fill(if h == 0 && self.background_one {
                1.0
            } else {
                0.0
            });
            channel
                .view_mut()
                .permuted_axes(inverse)
                .slice_mut(crop)
                .assign(&head);
            f(h, channel.view())?;
        }
        Ok(())
    }

    /// The whole array (heads, z, y, x) in the image's frame, standard layout (what
    /// [`V2Probabilities::for_each_head`] gives, head after head).
    ///
    /// # Errors
    /// [`PreprocessError::OutOfMemory`] when it cannot be allocated.
    pub fn to_array(&self) -> Result<Array4<f32>, PreprocessError> {
        let [z, y, x] = self.shape_before_cropping;
        let mut p = try_from_elem(
            (self.heads(), z, y, x),
            0.0f32,
            "the probabilities in the image's frame",
        )?;
        if self.background_one {
            p.index_axis_mut(Axis(0), 0).fill(1.0);
        }
        let b = self.bbox;
        p.slice_mut(ndarray::s![
            ..,
            b[0][0]..b[0][1],
            b[1][0]..b[1][1],
            b[2][0]..b[2][1]
        ])
        .assign(&self.cropped);
        let tb = self.transpose_backward;
        Ok(standard_layout(
            p.permuted_axes([0, tb[0] + 1, tb[1] + 1, tb[2] + 1]),
            "the probabilities in the image's frame",
        )?)
    }
}

/// Resamples merged logits (heads, z, y, x, the preprocessed frame) to the cropped shape before
/// resampling with `resampling_fn_probabilities`: from the configuration's spacing to the image's spacing
/// (both transposed), per head in f64, stored as f32 (nnunetv2 keeps the logits' dtype).
///
/// # Errors
/// [`PreprocessError`] for spacings or shapes that do not fit.
pub fn resample_logits_v2(
    logits: ArrayView4<f32>,
    props: &V2CaseProperties,
    params: &V2ExportParams,
) -> Result<Array4<f32>, PreprocessError> {
    let original = permute(props.spacing, params.transpose_forward);
    let current: [f64; 3] = match params.spacing.as_slice() {
        &[a, b, c] => [a, b, c],
        &[b, c] => [original[0], b, c],
        other => {
            return Err(PreprocessError::Unsupported {
                what: format!("configuration spacing {other:?} (2 or 3 entries expected)"),
            })
        }
    };
    let plan = ResamplePlan {
        new_shape: props.shape_after_cropping_and_before_resampling,
        separate_z_axis: params.resampling.separate_z_axis(current, original),
    };
    let [z, y, x] = plan.new_shape;
    let mut out = try_from_elem(
        (logits.shape()[0], z, y, x),
        0.0f32,
        "the logits resampled to the image's spacing",
    )?;
    for (src, dst) in logits.outer_iter().zip(out.outer_iter_mut()) {
        resample_channel_into(src, dst, &plan, params.resampling.order)?;
    }
    Ok(out)
}

/// The label manager's `apply_inference_nonlin` in place over the heads (axis 0): softmax (max
/// subtracted, `exp`, sum over heads, division) or, for regions, `sigmoid` per voxel, in f32.
pub fn apply_nonlin_v2(values: &mut Array4<f32>, labels: &V2Labels) {
    match labels {
        V2Labels::Regions { .. } => values.par_mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
        V2Labels::Softmax => {
            let heads = values.shape()[0];
            ndarray::Zip::from(values.lanes_mut(Axis(0))).par_for_each(|mut lane| {
                let max = lane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for v in lane.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                if heads > 0 {
                    lane.mapv_inplace(|v| v / sum);
                }
            });
        }
    }
}

/// `convert_probabilities_to_segmentation`: the first largest head per voxel (`argmax(0)`), or for
/// regions label `class_order[i]` where head `i` exceeds 0.5 (later heads win).
///
/// # Errors
/// [`PreprocessError::OutOfMemory`] when the label map cannot be allocated.
pub fn probabilities_to_labels_v2(
    probs: ArrayView4<f32>,
    labels: &V2Labels,
) -> Result<Array3<u8>, PreprocessError> {
    let (_, z, y, x) = probs.dim();
    let mut seg = try_from_elem((z, y, x), 0u8, "the label map")?;
    match labels {
        V2Labels::Softmax => {
            ndarray::Zip::from(&mut seg)
                .and(probs.lanes(Axis(0)))
                .par_for_each(|s, lane| {
                    let mut best = 0usize;
                    for (i, &v) in lane.iter().enumerate() {
                        if v > lane[best] {
                            best = i;
                        }
                    }
                    *s = best as u8;
                });
        }
        V2Labels::Regions { class_order } => {
            for (head, &label) in probs.outer_iter().zip(class_order) {
                ndarray::Zip::from(&mut seg)
                    .and(&head)
                    .par_for_each(|s, &p| {
                        if p > 0.5 {
                            *s = label;
                        }
                    });
            }
        }
    }
    Ok(seg)
}

/// nnunetv2's export of merged logits (heads, z, y, x in the preprocessed frame):
/// [`resample_logits_v2`], [`apply_nonlin_v2`], [`probabilities_to_labels_v2`], the labels pasted into
/// `shape_before_cropping` at `bbox_used_for_cropping`, then `transpose_backward`; with
/// `with_probabilities` the probabilities too ([`V2Probabilities`]: kept cropped, each head made in the
/// image's frame when it is written).
///
/// # Errors
/// [`PreprocessError`] for shapes that do not fit the properties, more heads than labels fit in a u8, or a
/// region model whose `class_order` does not have one label per head.
pub fn export_v2(
    logits: ArrayView4<f32>,
    props: &V2CaseProperties,
    params: &V2ExportParams,
    with_probabilities: bool,
) -> Result<V2Exported, PreprocessError> {
    let heads = logits.shape()[0];
    match &params.labels {
        V2Labels::Softmax if heads > 256 => {
            return Err(PreprocessError::Unsupported {
                what: format!(
                    "{heads} output heads (labels above 255 do not fit the u8 segmentation)"
                ),
            })
        }
        V2Labels::Regions { class_order } if class_order.len() != heads => {
            return Err(PreprocessError::ChannelCount {
                what: "regions_class_order entries",
                found: class_order.len(),
                expected: heads,
            })
        }
        _ => {}
    }
    check_transpose(params.transpose_backward)?;
    let mut probs = resample_logits_v2(logits, props, params)?;
    apply_nonlin_v2(&mut probs, &params.labels);
    let seg = probabilities_to_labels_v2(probs.view(), &params.labels)?;
    let bbox = props.bbox_used_for_cropping;
    let full_shape = props.shape_before_cropping;
    let inside = [0, 1, 2].map(|a| bbox[a][1].checked_sub(bbox[a][0]));
    if inside != seg.shape().iter().map(|&s| Some(s)).collect::<Vec<_>>()[..]
        || (0..3).any(|a| bbox[a][1] > full_shape[a])
    {
        return Err(PreprocessError::ShapeMismatch {
            what: "exported segmentation vs bbox_used_for_cropping",
            shape: seg.shape().to_vec(),
            expected: inside.iter().map(|v| v.unwrap_or(0)).collect(),
        });
    }
    let crop = ndarray::s![
        bbox[0][0]..bbox[0][1],
        bbox[1][0]..bbox[1][1],
        bbox[2][0]..bbox[2][1]
    ];
    let mut full = try_from_elem(full_shape, 0u8, "the segmentation in the image's frame")?;
    full.slice_mut(crop).assign(&seg);
    drop(seg);
    let tb = params.transpose_backward;
    let segmentation = standard_layout(
        full.permuted_axes(tb),
        "the segmentation in the image's frame",
    )?;
    let probabilities = with_probabilities.then(|| V2Probabilities {
        cropped: probs,
        bbox,
        shape_before_cropping: full_shape,
        transpose_backward: tb,
        background_one: params.labels == V2Labels::Softmax,
    });
    Ok(V2Exported {
        segmentation,
        probabilities,
    })
}

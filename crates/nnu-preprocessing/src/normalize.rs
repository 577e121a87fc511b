//! Intensity normalisation: the scheme loop of nnU-Net 1.7.1 `GenericPreprocessor.resample_and_normalize`.

use ndarray::{ArrayView3, ArrayViewMut3, Axis, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PreprocessError;

/// One channel's foreground intensity statistics, `plans['dataset_properties']['intensityproperties'][c]`.
///
/// nnU-Net stores them as numpy float32 scalars, and numpy computes `f32 array op f32 scalar` in f32, so they
/// are kept as f32 here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntensityProperties {
    /// `mean`.
    pub mean: f32,
    /// `sd`.
    pub sd: f32,
    /// `percentile_00_5`.
    pub percentile_00_5: f32,
    /// `percentile_99_5`.
    pub percentile_99_5: f32,
}

/// The normalisation of one channel: `plans['normalization_schemes'][c]` with
/// `plans['use_mask_for_norm'][c]` and, for the CT schemes, the channel's intensity properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Normalization {
    /// `"CT"`: clip to `[percentile_00_5, percentile_99_5]`, then `(x - mean) / sd` with the dataset
    /// statistics, in f32. With `use_nonzero_mask`, voxels outside the nonzero mask are set to 0 afterwards.
    Ct {
        /// Dataset statistics.
        stats: IntensityProperties,
        /// `use_mask_for_norm[c]`.
        use_nonzero_mask: bool,
    },
    /// `"CT2"`: clip to the percentiles, then z-score with the mean and sd of this image's voxels that lay
    /// strictly between the percentiles before clipping (no epsilon). Mask as for `Ct`.
    Ct2 {
        /// `percentile_00_5`.
        percentile_00_5: f32,
        /// `percentile_99_5`.
        percentile_99_5: f32,
        /// `use_mask_for_norm[c]`.
        use_nonzero_mask: bool,
    },
    /// `"noNorm"`: the data is left as it is.
    NoNorm,
    /// Any other scheme name (nnU-Net writes `"nonCT"`): z-score per image, `(x - mean) / (std + 1e-8)`;
    /// with `use_nonzero_mask`, statistics over the nonzero mask only and 0 outside it.
    NonCt {
        /// `use_mask_for_norm[c]`.
        use_nonzero_mask: bool,
    },
}

impl Normalization {
    /// Builds a channel's normalisation from the plan's values, as `GenericPreprocessor` dispatches on the
    /// scheme name: `"CT"`, `"CT2"`, `"noNorm"`, anything else is the z-score branch.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidNormalization`] when a CT scheme has no intensity properties.
    pub fn from_scheme(
        scheme: &str,
        use_nonzero_mask: bool,
        stats: Option<IntensityProperties>,
        channel: usize,
    ) -> Result<Self, PreprocessError> {
        let need = |stats: Option<IntensityProperties>| {
            stats.ok_or(PreprocessError::InvalidNormalization {
                channel,
                name: "intensityproperties",
                value: f64::NAN,
            })
        };
        Ok(match scheme {
            "CT" => Normalization::Ct {
                stats: need(stats)?,
                use_nonzero_mask,
            },
            "CT2" => {
                let s = need(stats)?;
                Normalization::Ct2 {
                    percentile_00_5: s.percentile_00_5,
                    percentile_99_5: s.percentile_99_5,
                    use_nonzero_mask,
                }
            }
            "noNorm" => Normalization::NoNorm,
            _ => Normalization::NonCt { use_nonzero_mask },
        })
    }

    /// Whether this scheme reads the nonzero mask.
    pub fn needs_mask(&self) -> bool {
        match self {
            Normalization::Ct {
                use_nonzero_mask, ..
            }
            | Normalization::Ct2 {
                use_nonzero_mask, ..
            }
            | Normalization::NonCt { use_nonzero_mask } => *use_nonzero_mask,
            Normalization::NoNorm => false,
        }
    }

    /// The scheme as a per-voxel map with fixed parameters, when it is one (`CT` without mask, `noNorm`):
    /// preprocessing then fuses it into the resampling, so the output is written once. `None` for schemes
    /// that need statistics of the resampled image or the mask.
    ///
    /// # Errors
    /// As [`normalize_channel`] for an unusable CT `sd`.
    pub(crate) fn pointwise(&self, channel: usize) -> Result<Option<Pointwise>, PreprocessError> {
        match self {
            Normalization::NoNorm => Ok(Some(Pointwise::Identity)),
            Normalization::Ct {
                stats,
                use_nonzero_mask: false,
            } => Ok(Some(Pointwise::Ct(ct_params(stats, channel)?))),
            _ => Ok(None),
        }
    }
}

/// A per-voxel normalisation (see [`Normalization::pointwise`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pointwise {
    /// `noNorm`.
    Identity,
    /// `CT`: `(lb, ub, mean, sd)` for [`ct_value`].
    Ct([f32; 4]),
}

/// The CT scheme's `(percentile_00_5, percentile_99_5, mean, sd)`, checked.
fn ct_params(stats: &IntensityProperties, channel: usize) -> Result<[f32; 4], PreprocessError> {
    if !(stats.sd != 0.0 && stats.sd.is_finite()) {
        return Err(PreprocessError::InvalidNormalization {
            channel,
            name: "sd",
            value: stats.sd as f64,
        });
    }
    Ok([
        stats.percentile_00_5,
        stats.percentile_99_5,
        stats.mean,
        stats.sd,
    ])
}

/// The CT scheme on one voxel, in f32 as numpy computes it: `(np.clip(v, lb, ub) - mean) / sd`.
#[inline]
pub(crate) fn ct_value(v: f32, [lb, ub, mean, sd]: [f32; 4]) -> f32 {
    (np_clip(v, lb, ub) - mean) / sd
}

/// Normalises one resampled channel in place.
///
/// `mask` is the resampled nonzero mask (`seg[-1] >= 0` in nnU-Net), required when
/// [`Normalization::needs_mask`]. Statistics (mean, std) are accumulated in f64 and then rounded to f32;
/// numpy accumulates f32 arrays pairwise in f32, so the two can differ by a few f32 ulps of the statistic.
///
/// # Errors
/// [`PreprocessError::ShapeMismatch`] for a missing or mis-shaped mask and
/// [`PreprocessError::InvalidNormalization`] when a statistic is unusable (CT `sd` of 0, no voxel inside the
/// CT2 window or the mask).
pub fn normalize_channel(
    mut data: ArrayViewMut3<f32>,
    norm: &Normalization,
    mask: Option<ArrayView3<bool>>,
    channel: usize,
) -> Result<(), PreprocessError> {
    let mask = if norm.needs_mask() {
        let m = mask.ok_or_else(|| PreprocessError::ShapeMismatch {
            what: "nonzero mask (missing)",
            shape: vec![],
            expected: data.shape().to_vec(),
        })?;
        if m.shape() != data.shape() {
            return Err(PreprocessError::ShapeMismatch {
                what: "nonzero mask",
                shape: m.shape().to_vec(),
                expected: data.shape().to_vec(),
            });
        }
        Some(m)
    } else {
        None
    };
    let invalid = |name, value: f64| PreprocessError::InvalidNormalization {
        channel,
        name,
        value,
    };
    match norm {
        Normalization::NoNorm => {}
        Normalization::Ct { stats, .. } => {
            let p = ct_params(stats, channel)?;
            par_map(&mut data, |v| ct_value(v, p));
            if let Some(m) = mask {
                zero_outside(&mut data, m);
            }
        }
        Normalization::Ct2 {
            percentile_00_5: lb,
            percentile_99_5: ub,
            ..
        } => {
            let (lb, ub) = (*lb, *ub);
            let inside = |v: f32| v > lb && v < ub;
            let (n, mean, sd) = moments(data.view(), |v, _| inside(v), None);
            if n == 0 {
                return Err(invalid("percentile window (no voxel inside)", lb as f64));
            }
            let (mean, sd) = (mean as f32, sd as f32);
            par_map(&mut data, |v| (np_clip(v, lb, ub) - mean) / sd);
            if let Some(m) = mask {
                zero_outside(&mut data, m);
            }
        }
        Normalization::NonCt { .. } => match mask {
            None => {
                let (_, mean, sd) = moments(data.view(), |_, _| true, None);
                let (mean, den) = (mean as f32, sd as f32 + 1e-8f32);
                par_map(&mut data, |v| (v - mean) / den);
            }
            Some(m) => {
                let (n, mean, sd) = moments(data.view(), |_, inside| inside, Some(m));
                if n == 0 {
                    return Err(invalid("nonzero mask (empty)", 0.0));
                }
                let (mean, den) = (mean as f32, sd as f32 + 1e-8f32);
                Zip::from(&mut data)
                    .and(m)
                    .par_for_each(|v, &inside| *v = if inside { (*v - mean) / den } else { 0.0 });
            }
        },
    }
    Ok(())
}

/// `np.clip(v, lb, ub)`: `minimum(maximum(v, lb), ub)`.
fn np_clip(v: f32, lb: f32, ub: f32) -> f32 {
    let v = if v < lb { lb } else { v };
    if v > ub {
        ub
    } else {
        v
    }
}

fn par_map(data: &mut ArrayViewMut3<f32>, f: impl Fn(f32) -> f32 + Sync) {
    Zip::from(data).par_for_each(|v| *v = f(*v));
}

fn zero_outside(data: &mut ArrayViewMut3<f32>, mask: ArrayView3<bool>) {
    Zip::from(data).and(mask).par_for_each(|v, &m| {
        if !m {
            *v = 0.0
        }
    });
}

/// Count, mean and population standard deviation (numpy's `std`, ddof 0) of the selected voxels, two-pass
/// in f64, parallel over slices.
fn moments(
    data: ArrayView3<f32>,
    select: impl Fn(f32, bool) -> bool + Sync,
    mask: Option<ArrayView3<bool>>,
) -> (usize, f64, f64) {
    let per_slice = |z: usize, mean: Option<f64>| -> (usize, f64) {
        let plane = data.index_axis(Axis(0), z);
        let mut n = 0usize;
        let mut acc = 0.0f64;
        let mut add = |v: f32, inside: bool| {
            if select(v, inside) {
                n += 1;
                acc += match mean {
                    None => v as f64,
                    Some(m) => (v as f64 - m) * (v as f64 - m),
                };
            }
        };
        match mask {
            Some(mk) => {
                let mp = mk.index_axis(Axis(0), z);
                Zip::from(&plane).and(&mp).for_each(|&v, &i| add(v, i));
            }
            None => plane.iter().for_each(|&v| add(v, true)),
        }
        (n, acc)
    };
    // Per-slice partial sums in parallel, then added in slice order, so the result does not depend on
    // how rayon splits the work (byte-identical outputs for any thread count).
    let nz = data.shape()[0];
    let in_order = |parts: Vec<(usize, f64)>| {
        parts
            .into_iter()
            .fold((0usize, 0.0f64), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let (n, sum) = in_order(
        (0..nz)
            .into_par_iter()
            .map(|z| per_slice(z, None))
            .collect(),
    );
    if n == 0 {
        return (0, f64::NAN, f64::NAN);
    }
    let mean = sum / n as f64;
    let (_, ss) = in_order(
        (0..nz)
            .into_par_iter()
            .map(|z| per_slice(z, Some(mean)))
            .collect(),
    );
    (n, mean, (ss / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn ct_clips_then_scores() {
        let mut a =
            Array3::from_shape_vec((1, 1, 4), vec![-2000.0f32, 0.0, 100.0, 5000.0]).unwrap();
        let stats = IntensityProperties {
            mean: 50.0,
            sd: 25.0,
            percentile_00_5: -100.0,
            percentile_99_5: 200.0,
        };
        let n = Normalization::from_scheme("CT", false, Some(stats), 0).unwrap();
        normalize_channel(a.view_mut(), &n, None, 0).unwrap();
        assert_eq!(a.as_slice().unwrap(), &[-6.0, -2.0, 2.0, 6.0]);
    }

    #[test]
    fn nonct_with_mask_zeroes_outside() {
        let mut a = Array3::from_shape_vec((1, 1, 4), vec![1.0f32, 3.0, 100.0, 7.0]).unwrap();
        let m = Array3::from_shape_vec((1, 1, 4), vec![true, true, false, false]).unwrap();
        let n = Normalization::from_scheme("nonCT", true, None, 0).unwrap();
        normalize_channel(a.view_mut(), &n, Some(m.view()), 0).unwrap();
        let v = a.as_slice().unwrap();
        assert!(
            (v[0] + 1.0).abs() < 1e-6 && (v[1] - 1.0).abs() < 1e-6 && v[2] == 0.0 && v[3] == 0.0
        );
        // a scheme that needs a mask refuses to run without one
        assert!(normalize_channel(a.view_mut(), &n, None, 0).is_err());
    }
}

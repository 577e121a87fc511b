//! Resampling: `skimage.transform.resize` and nnU-Net's `resample_data_or_seg` / `resample_patient` rules.
//!
//! References (the versions the goldens were made with): nnU-Net 1.7.1 `preprocessing/preprocessing.py`
//! (`get_do_separate_z`, `get_lowres_axis`, `resample_patient`, `resample_data_or_seg`), scikit-image 0.26.0
//! `skimage.transform.resize`, scipy 1.17.1 `scipy.ndimage.zoom` / `map_coordinates`.
//!
//! Memory: an order-3 3-D resize that changes z holds one f64 buffer of `in_z x out_y x out_x` samples (the
//! in-plane passes, done per slice in parallel) besides its f32 input and output; the z pass runs in column
//! blocks. Every other resampling is streamed (`PlaneStream`): output planes along the first axis are produced by
//! parallel tasks that hold at most two in-plane-resized input planes each.

mod dense;
mod labels;
mod mask;
mod policy;
mod stream;

pub(crate) use dense::*;
pub use labels::{resample_segmentation, resize_segmentation};
pub(crate) use mask::*;
pub use policy::*;
pub(crate) use stream::*;

use ndarray::{
    s, Array3, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernel::AxisPlan;
use crate::PreprocessError;
/// `skimage.transform.resize(image.astype(float64), out_shape, order, mode='edge', anti_aliasing=False)`
/// (clip on) cast to f32: what nnU-Net does to each channel when it does not resample z separately.
///
/// The output is clipped to the input's `[min, max]` as skimage does. Same shape: a copy of the input
/// (skimage and scipy return the input unchanged then).
///
/// # Errors
/// [`PreprocessError::EmptyShape`] for an empty input or output shape.
pub fn resize(
    input: ArrayView3<f32>,
    out_shape: [usize; 3],
    order: Order,
) -> Result<Array3<f32>, PreprocessError> {
    let mut out = nnu_alloc::try_from_elem(out_shape, 0.0f32, "the resized volume")?;
    resize_into(input, out.view_mut(), order)?;
    Ok(out)
}

/// [`resize`] into a caller's standard-layout array of the output shape.
///
/// # Errors
/// As [`resize`].
pub fn resize_into(
    input: ArrayView3<f32>,
    out: ArrayViewMut3<f32>,
    order: Order,
) -> Result<(), PreprocessError> {
    let plan = ResamplePlan {
        new_shape: shape3(out.shape()),
        separate_z_axis: None,
    };
    resample_channel_map_into(input, out, &plan, order, |v| v)
}

/// nnU-Net 1.7.1's `resample_data_or_seg(is_seg=False)` for one channel, into `out` (shape
/// `plan.new_shape`, standard layout).
///
/// Without separate z this is [`resize_into`]. With separate z on `axis`, every slice along `axis` is
/// resized in-plane as [`resize`] does (order `order`, clipped to that slice's range, cast to f32), and the
/// slices are then picked along `axis` with `map_coordinates(order=0, mode='nearest')` at
/// `(k + 0.5) * in / out - 0.5`. nnU-Net's `order_z` is always 0; only that is implemented. An unchanged
/// shape copies the input.
///
/// # Errors
/// [`PreprocessError::EmptyShape`] for empty shapes, [`PreprocessError::ShapeMismatch`] when `out` does not
/// have `plan.new_shape`.
pub fn resample_channel_into(
    input: ArrayView3<f32>,
    out: ArrayViewMut3<f32>,
    plan: &ResamplePlan,
    order: Order,
) -> Result<(), PreprocessError> {
    resample_channel_map_into(input, out, plan, order, |v| v)
}

/// [`resample_channel_into`] with every output value passed through `map` (a per-voxel normalisation fused
/// into the store, so the output is written once). `out` may have any layout.
pub(crate) fn resample_channel_map_into(
    input: ArrayView3<f32>,
    out: ArrayViewMut3<f32>,
    plan: &ResamplePlan,
    order: Order,
    map: impl Fn(f32) -> f32 + Sync,
) -> Result<(), PreprocessError> {
    let out_shape = shape3(out.shape());
    if out_shape != plan.new_shape {
        return Err(PreprocessError::ShapeMismatch {
            what: "resampling output",
            shape: out_shape.to_vec(),
            expected: plan.new_shape.to_vec(),
        });
    }
    if let Some(stream) = PlaneStream::new(input, plan, order)? {
        stream.write_into(out, &|v| map(v as f32));
        return Ok(());
    }
    match plan.separate_z_axis {
        None => {
            let (lo, hi) = min_max(input);
            resize3d(input, out, order, |v| map(clip(v, lo, hi) as f32))
        }
        Some(axis) => resize_separate_z(input, out, axis, order, map),
    }
}

/// [`resample_channel_into`] returning a new array.
///
/// # Errors
/// As [`resample_channel_into`].
pub fn resample_channel(
    input: ArrayView3<f32>,
    plan: &ResamplePlan,
    order: Order,
) -> Result<Array3<f32>, PreprocessError> {
    let mut out = nnu_alloc::try_from_elem(plan.new_shape, 0.0f32, "the resampled channel")?;
    resample_channel_into(input, out.view_mut(), plan, order)?;
    Ok(out)
}

pub(crate) fn shape3(s: &[usize]) -> [usize; 3] {
    [s[0], s[1], s[2]]
}

fn check_nonempty(in_shape: [usize; 3], out_shape: [usize; 3]) -> Result<(), PreprocessError> {
    if in_shape.contains(&0) || out_shape.contains(&0) {
        return Err(PreprocessError::EmptyShape {
            shape: in_shape,
            new_shape: out_shape,
        });
    }
    Ok(())
}

#[inline]
fn clip(v: f64, lo: f64, hi: f64) -> f64 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Minimum and maximum of a volume (as f64), in parallel over slices. NaN is ignored.
pub(crate) fn min_max(input: ArrayView3<f32>) -> (f64, f64) {
    let (lo, hi) = input
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|p| min_max_2d(p))
        .reduce(
            || (f32::INFINITY, f32::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
    (lo as f64, hi as f64)
}

fn min_max_2d(p: ArrayView2<f32>) -> (f32, f32) {
    let merge = |a: (f32, f32), b: (f32, f32)| (a.0.min(b.0), a.1.max(b.1));
    match p.as_slice() {
        Some(v) => min_max_slice(v),
        None => p
            .rows()
            .into_iter()
            .map(|r| match r.as_slice() {
                Some(v) => min_max_slice(v),
                None => r
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |a, &v| merge(a, (v, v))),
            })
            .fold((f32::INFINITY, f32::NEG_INFINITY), merge),
    }
}

/// Minimum and maximum of a slice, ignoring NaN (`f32::min` / `f32::max`), in independent lanes so that
/// the loop vectorises.
fn min_max_slice(v: &[f32]) -> (f32, f32) {
    const LANES: usize = 16;
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    let (mut l, mut h) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..LANES {
        l = l.min(lo[i]);
        h = h.max(hi[i]);
    }
    for &x in rest {
        l = l.min(x);
        h = h.max(x);
    }
    (l, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separate_z_rules() {
        assert!(do_separate_z([5.0, 1.0, 1.0]));
        assert!(!do_separate_z([3.0, 1.0, 1.0]));
        assert_eq!(lowres_axes([5.0, 1.0, 1.0]), vec![0]);
        assert_eq!(lowres_axes([0.24, 1.25, 1.25]), vec![1, 2]);
        let p = ResamplePlan::for_preprocessing([10, 10, 10], [0.24, 1.25, 1.25], [1.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(p.separate_z_axis, None);
        let p = ResamplePlan::for_preprocessing([10, 10, 10], [1.0, 1.0, 1.0], [4.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(p.separate_z_axis, Some(0));
        assert_eq!(p.new_shape, [2, 10, 10]); // 2.5 rounds half to even
    }

    #[test]
    fn streamed_planes_and_argmax_agree_with_channelwise() {
        let shape = [5, 7, 6];
        let classes: Vec<Array3<f32>> = (0..3)
            .map(|c| {
                Array3::from_shape_fn(shape, |(z, y, x)| {
                    ((z * 7 + y * 3 + x * 5 + c * 11) % 13) as f32 * 0.1
                })
            })
            .collect();
        let plans = [
            // upsampling z with separate z repeats planes; 3-D order 0 too
            ([13, 9, 4], Some(0)),
            ([11, 5, 9], None),
            ([3, 7, 6], None),
        ];
        for (new_shape, separate_z_axis) in plans {
            let plan = ResamplePlan {
                new_shape,
                separate_z_axis,
            };
            for order in [Order::Nearest, Order::Linear, Order::Cubic] {
                let Some(streams) = classes
                    .iter()
                    .map(|c| PlaneStream::new(c.view(), &plan, order).unwrap())
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                // every plane written directly equals the output that copies repeated planes
                let whole: Vec<Array3<f32>> = classes
                    .iter()
                    .map(|c| resample_channel(c.view(), &plan, order).unwrap())
                    .collect();
                for (st, w) in streams.iter().zip(&whole) {
                    let mut direct = Array3::<f32>::zeros(new_shape);
                    let (mut sc, mut cache) = (Scratch::default(), PlaneCache::default());
                    for k in 0..new_shape[0] {
                        let plane = direct.index_axis_mut(Axis(0), k);
                        st.write_plane(k, &mut sc, &mut cache, plane, &|v| v as f32);
                    }
                    assert_eq!(&direct, w, "{plan:?} {order:?}");
                }
                let mut labels = Array3::<u8>::from_elem(new_shape, 9);
                argmax_into(&streams, labels.view_mut());
                for (idx, &l) in labels.indexed_iter() {
                    let v: Vec<f32> = whole.iter().map(|w| w[idx]).collect();
                    let first_max = (0..v.len()).fold(0, |b, c| if v[c] > v[b] { c } else { b });
                    assert_eq!(l as usize, first_max, "{plan:?} {order:?} {idx:?}");
                }
            }
        }
    }

    #[test]
    fn cubic_along_z_only_reads_a_strided_input_directly() {
        let big = Array3::from_shape_fn((5, 22, 19), |(z, y, x)| {
            ((z * 31 + y * 17 + x * 7) % 23) as f32 - 11.0 + z as f32
        });
        // (4, 20, 17): rows contiguous, planes not; a plane spans two column blocks
        let view = big.slice(s![1..5, 1..21, 2..19]);
        let got = resize(view, [9, 20, 17], Order::Cubic).unwrap();
        let plan = AxisPlan::new(4, 9, Order::Cubic);
        let (lo, hi) = min_max(view);
        let mut line = vec![0.0; plan.padded_len()];
        let mut out = vec![0.0; 9];
        for y in 0..20 {
            for x in 0..17 {
                for z in 0..4 {
                    line[plan.pad() + z] = view[[z, y, x]] as f64;
                }
                plan.apply_line(&mut line, &mut out);
                for (k, &v) in out.iter().enumerate() {
                    let d = (clip(v, lo, hi) as f32 - got[[k, y, x]]).abs();
                    assert!(d <= 1e-5, "{k} {y} {x}: {d}");
                }
            }
        }
    }

    #[test]
    fn bad_spacing_is_an_error() {
        assert!(new_shape([4, 4, 4], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]).is_err());
        assert!(new_shape([4, 4, 4], [1.0, f64::NAN, 1.0], [1.0, 1.0, 1.0]).is_err());
        assert!(new_shape([4, 4, 4], [1.0, 1.0, 1.0], [1.0, 1.0, 1000.0]).is_err());
    }
}

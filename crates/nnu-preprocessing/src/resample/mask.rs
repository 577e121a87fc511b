//! The nonzero mask resampled as nnU-Net resamples a two-label segmentation (score per label, argmax,
//! ties to the nearest sample).

use super::*;
use nnu_alloc::{try_from_elem, try_to_owned};

/// Resamples per-voxel class scores of a two-label map and returns, per output voxel, whether label 1
/// ("inside") wins: nnU-Net's `resize_segmentation(order)` for the labels {-1, 0} that `crop_to_nonzero`
/// writes, as batchgenerators 0.25.5 computes it (`_resample_seg_by_argmax` with `seg_tiebreak='nearest'`):
/// each label's indicator is resized in f64 with clipping, the larger score wins, and exact ties go to the
/// order-0 (nearest) sample. With separate z the in-plane step is done per slice and the slices are picked
/// with order 0, as `resample_data_or_seg(is_seg=True, order_z=0)` does.
pub(crate) fn resample_mask(
    inside: ArrayView3<bool>,
    plan: &ResamplePlan,
    order: Order,
) -> Result<Array3<bool>, PreprocessError> {
    let in_shape = shape3(inside.shape());
    let out_shape = plan.new_shape;
    check_nonempty(in_shape, out_shape)?;
    if in_shape == out_shape {
        return Ok(try_to_owned(inside, "the resampled nonzero mask")?);
    }
    let any_in = inside.iter().any(|&b| b);
    let any_out = inside.iter().any(|&b| !b);
    if !(any_in && any_out) {
        // A single label: batchgenerators returns it everywhere.
        return Ok(try_from_elem(
            out_shape,
            any_in,
            "the resampled nonzero mask",
        )?);
    }
    match plan.separate_z_axis {
        None => {
            let mut ind_in = try_from_elem(in_shape, 0.0f32, "the nonzero mask's indicators")?;
            ind_in.zip_mut_with(&inside, |v, &b| *v = if b { 1.0 } else { 0.0 });
            let mut ind_out = try_from_elem(in_shape, 0.0f32, "the nonzero mask's indicators")?;
            ind_out.zip_mut_with(&inside, |v, &b| *v = if b { 0.0 } else { 1.0 });
            let what = "the nonzero mask's resampled scores";
            let mut s_in = try_from_elem(out_shape, 0.0f64, what)?;
            let mut s_out = try_from_elem(out_shape, 0.0f64, what)?;
            let mut nn = try_from_elem(out_shape, 0.0f32, what)?;
            let (lo, hi) = min_max(ind_in.view());
            resize3d(ind_in.view(), s_in.view_mut(), order, |v| clip(v, lo, hi))?;
            let (lo, hi) = min_max(ind_out.view());
            resize3d(ind_out.view(), s_out.view_mut(), order, |v| clip(v, lo, hi))?;
            resize3d(ind_in.view(), nn.view_mut(), Order::Nearest, |v| v as f32)?;
            let mut res = try_from_elem(out_shape, false, "the resampled nonzero mask")?;
            ndarray::Zip::from(&mut res)
                .and(&s_in)
                .and(&s_out)
                .and(&nn)
                .par_for_each(|r, &a, &b, &n| *r = mask_winner(a, b, n > 0.5));
            Ok(res)
        }
        Some(axis) => {
            if axis > 2 {
                return Err(PreprocessError::InvalidAxis(axis));
            }
            let (a0, a1) = in_plane_axes(axis);
            let o2 = [out_shape[a0], out_shape[a1]];
            let pz = AxisPlan::new(in_shape[axis], out_shape[axis], Order::Nearest);
            let mut res = try_from_elem(out_shape, false, "the resampled nonzero mask")?;
            res.axis_iter_mut(Axis(axis))
                .into_par_iter()
                .enumerate()
                .try_for_each(|(k, mut oslice)| -> Result<(), PreprocessError> {
                    let src = pz.nearest_index(k);
                    let sl = inside.index_axis(Axis(axis), src);
                    let w = resize_mask_plane(sl, o2, order)?;
                    oslice.assign(&w);
                    Ok(())
                })?;
            Ok(res)
        }
    }
}

pub(super) fn mask_winner(score_inside: f64, score_outside: f64, nearest_inside: bool) -> bool {
    if score_inside > score_outside {
        true
    } else if score_inside < score_outside {
        false
    } else if score_inside > 0.0 {
        nearest_inside
    } else {
        // both zero cannot happen inside the image (indicators sum to one); keep the first label (-1).
        false
    }
}

pub(super) fn resize_mask_plane(
    plane: ArrayView2<bool>,
    out2: [usize; 2],
    order: Order,
) -> Result<Array2Bool, PreprocessError> {
    let (h, w) = (plane.shape()[0], plane.shape()[1]);
    if [h, w] == out2 {
        return Ok(plane.to_owned());
    }
    let any_in = plane.iter().any(|&b| b);
    let any_out = plane.iter().any(|&b| !b);
    if !(any_in && any_out) {
        return Ok(ndarray::Array2::from_elem(out2, any_in));
    }
    let p0 = AxisPlan::new(h, out2[0], order);
    let p1 = AxisPlan::new(w, out2[1], order);
    let n0 = AxisPlan::new(h, out2[0], Order::Nearest);
    let n1 = AxisPlan::new(w, out2[1], Order::Nearest);
    let ind_in = plane.mapv(|b| if b { 1.0f32 } else { 0.0 });
    let ind_out = plane.mapv(|b| if b { 0.0f32 } else { 1.0 });
    let mut s = Scratch::default();
    let mut s_in = ndarray::Array2::<f64>::zeros(out2);
    let mut s_out = ndarray::Array2::<f64>::zeros(out2);
    let mut nn = ndarray::Array2::<f64>::zeros(out2);
    write_plane(ind_in.view(), &p0, &p1, &mut s, s_in.view_mut());
    write_plane(ind_out.view(), &p0, &p1, &mut s, s_out.view_mut());
    write_plane(ind_in.view(), &n0, &n1, &mut s, nn.view_mut());
    let mut res = ndarray::Array2::from_elem(out2, false);
    ndarray::Zip::from(&mut res)
        .and(&s_in)
        .and(&s_out)
        .and(&nn)
        .for_each(|r, &a, &b, &n| *r = mask_winner(a, b, n > 0.5));
    Ok(res)
}

pub(super) type Array2Bool = ndarray::Array2<bool>;

pub(super) fn write_plane(
    src: ArrayView2<f32>,
    p0: &AxisPlan,
    p1: &AxisPlan,
    s: &mut Scratch,
    mut dst: ArrayViewMut2<f64>,
) {
    // indicators are in [0, 1] with both values present, so clipping is to [0, 1]
    resize_plane(src, p0, p1, s, |r, row| {
        for (o, &v) in dst.row_mut(r).iter_mut().zip(row) {
            *o = clip(v, 0.0, 1.0);
        }
    });
}

//! Label maps resampled as batchgenerators 0.25.5 `resize_segmentation` does (each label's indicator
//! resized, the larger score wins, exact ties to the nearest sample), for any number of labels: the
//! previous stage's segmentation of a cascade.

use super::*;
use nnu_alloc::try_from_elem;

/// The running per-voxel winner of `_resample_seg_by_argmax` with `seg_tiebreak='nearest'`.
#[derive(Clone, Copy)]
struct Winner {
    /// Index (into the sorted labels) of the label with the best score so far.
    win: u16,
    /// The best score so far.
    best: f64,
    /// Whether the nearest sample's label currently has the top score.
    nn_top: bool,
}

impl Winner {
    /// The state after the first label (index 0) scored `score`, with `nn` the nearest sample's label
    /// index.
    fn first(score: f64, nn: u16) -> Self {
        Winner {
            win: 0,
            best: score,
            nn_top: nn == 0 && score > 0.0,
        }
    }

    /// Label `i` (ascending) scored `score`: a strictly larger score takes the lead, an equal positive
    /// score of the nearest sample's label keeps the nearest sample in the race.
    fn update(&mut self, i: u16, score: f64, nn: u16) {
        let is_nn = nn == i;
        if score == self.best && score > 0.0 && is_nn {
            self.nn_top = true;
        }
        if score > self.best {
            self.nn_top = is_nn;
            self.win = i;
        }
        self.best = self.best.max(score);
    }

    /// The final label index: the nearest sample's where its label ended tied for (or holding) the top.
    fn finish(self, nn: u16) -> u16 {
        if self.nn_top {
            nn
        } else {
            self.win
        }
    }
}

/// The sorted distinct values of a label map (`np.unique`).
fn unique_labels(seg: &ArrayView3<i32>) -> Vec<i32> {
    let mut labels: Vec<i32> = seg.iter().copied().collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

/// The index of `value` in the sorted `labels` (a nearest sample is always one of them).
fn label_index(labels: &[i32], value: f64) -> u16 {
    let v = value.round() as i32;
    labels.binary_search(&v).unwrap_or(0) as u16
}

/// batchgenerators 0.25.5 `resize_segmentation(seg, out_shape, order)` of a 3-D label map, with its
/// default `seg_tiebreak='nearest'`: for every distinct label (ascending) its indicator is resized with
/// `skimage.transform.resize(order, mode='edge', clip=True, anti_aliasing=False)` in f64, each output
/// voxel takes the label with the strictly largest score, and where the top score is shared by the
/// label of the order-0 (nearest) sample, that label. A single label fills the output; order 0 is the
/// nearest sample itself. Used by nnU-Net 1.7.1's cascade (`preprocess_save_to_queue`: the previous
/// stage's segmentation resized with `order=1` to the preprocessed shape) and, per slice, by
/// [`resample_segmentation`].
///
/// # Errors
/// [`PreprocessError::EmptyShape`] for an empty input or output shape, [`PreprocessError::OutOfMemory`]
/// when a buffer cannot be allocated, [`PreprocessError::Unsupported`] for more than 65535 labels.
pub fn resize_segmentation(
    seg: ArrayView3<i32>,
    out_shape: [usize; 3],
    order: Order,
) -> Result<Array3<i32>, PreprocessError> {
    let in_shape = shape3(seg.shape());
    check_nonempty(in_shape, out_shape)?;
    let labels = unique_labels(&seg);
    check_label_count(&labels)?;
    if labels.len() == 1 {
        return Ok(try_from_elem(
            out_shape,
            labels[0],
            "the resized segmentation",
        )?);
    }
    let as_f32 = |f: &dyn Fn(i32) -> f32| -> Result<Array3<f32>, PreprocessError> {
        let mut a = try_from_elem(in_shape, 0.0f32, "a label's indicator")?;
        a.zip_mut_with(&seg, |o, &v| *o = f(v));
        Ok(a)
    };
    let values = as_f32(&|v| v as f32)?;
    let mut nn = try_from_elem(out_shape, 0u16, "the nearest labels")?;
    resize3d(values.view(), nn.view_mut(), Order::Nearest, |v| {
        label_index(&labels, v)
    })?;
    drop(values);
    if order == Order::Nearest {
        return Ok(nn.mapv(|i| labels[i as usize]));
    }
    let mut state = try_from_elem(
        out_shape,
        Winner::first(0.0, u16::MAX),
        "the resized segmentation's scores",
    )?;
    let mut score = try_from_elem(out_shape, 0.0f64, "a label's resized indicator")?;
    for (i, &label) in labels.iter().enumerate() {
        let indicator = as_f32(&|v| if v == label { 1.0 } else { 0.0 })?;
        // both values occur (at least two labels), so skimage clips to [0, 1]
        resize3d(indicator.view(), score.view_mut(), order, |v| {
            clip(v, 0.0, 1.0)
        })?;
        let i = i as u16;
        ndarray::Zip::from(&mut state)
            .and(&score)
            .and(&nn)
            .par_for_each(|w, &s, &n| {
                if i == 0 {
                    *w = Winner::first(s, n);
                } else {
                    w.update(i, s, n);
                }
            });
    }
    let mut out = try_from_elem(out_shape, 0i32, "the resized segmentation")?;
    ndarray::Zip::from(&mut out)
        .and(&state)
        .and(&nn)
        .par_for_each(|o, w, &n| *o = labels[w.finish(n) as usize]);
    Ok(out)
}

fn check_label_count(labels: &[i32]) -> Result<(), PreprocessError> {
    if labels.len() > usize::from(u16::MAX) {
        return Err(PreprocessError::Unsupported {
            what: format!("a segmentation with {} distinct labels", labels.len()),
        });
    }
    Ok(())
}

/// [`resize_segmentation`] of one 2-D plane (`skimage.transform.resize` of a 2-D array).
fn resize_segmentation_plane(
    plane: ArrayView2<i32>,
    out2: [usize; 2],
    order: Order,
    s: &mut Scratch,
) -> ndarray::Array2<i32> {
    let (h, w) = (plane.shape()[0], plane.shape()[1]);
    let mut labels: Vec<i32> = plane.iter().copied().collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.len() == 1 {
        return ndarray::Array2::from_elem(out2, labels[0]);
    }
    let n0 = AxisPlan::new(h, out2[0], Order::Nearest);
    let n1 = AxisPlan::new(w, out2[1], Order::Nearest);
    let values = plane.mapv(|v| v as f32);
    let mut nn = ndarray::Array2::<u16>::zeros(out2);
    resize_plane(values.view(), &n0, &n1, s, |r, row| {
        for (o, &v) in nn.row_mut(r).iter_mut().zip(row) {
            *o = label_index(&labels, v);
        }
    });
    if order == Order::Nearest {
        return nn.mapv(|i| labels[i as usize]);
    }
    let p0 = AxisPlan::new(h, out2[0], order);
    let p1 = AxisPlan::new(w, out2[1], order);
    let mut state = ndarray::Array2::from_elem(out2, Winner::first(0.0, u16::MAX));
    for (i, &label) in labels.iter().enumerate() {
        let indicator = plane.mapv(|v| if v == label { 1.0f32 } else { 0.0 });
        let i = i as u16;
        resize_plane(indicator.view(), &p0, &p1, s, |r, row| {
            for ((w, &n), &v) in state.row_mut(r).iter_mut().zip(nn.row(r).iter()).zip(row) {
                let sc = clip(v, 0.0, 1.0);
                if i == 0 {
                    *w = Winner::first(sc, n);
                } else {
                    w.update(i, sc, n);
                }
            }
        });
    }
    let mut out = ndarray::Array2::<i32>::zeros(out2);
    ndarray::Zip::from(&mut out)
        .and(&state)
        .and(&nn)
        .for_each(|o, w, &n| *o = labels[w.finish(n) as usize]);
    out
}

/// nnunetv2 2.8.1 `resample_data_or_seg(is_seg=True, order_z=0)` of one label map to `plan.new_shape`:
/// without separate z [`resize_segmentation`] of the whole volume; with separate z on `axis`, every slice
/// along `axis` resized in-plane by `resize_segmentation` (its own labels), then the slices picked along
/// `axis` with `map_coordinates(order=0, mode='nearest')`. An unchanged shape returns a copy. This is
/// `resampling_fn_seg` of `DefaultPreprocessor.run_case` for the previous stage's segmentation of a
/// cascade.
///
/// # Errors
/// As [`resize_segmentation`]; [`PreprocessError::InvalidAxis`] for a separate axis outside 0..3.
pub fn resample_segmentation(
    seg: ArrayView3<i32>,
    plan: &ResamplePlan,
    order: Order,
) -> Result<Array3<i32>, PreprocessError> {
    let in_shape = shape3(seg.shape());
    let out_shape = plan.new_shape;
    check_nonempty(in_shape, out_shape)?;
    if in_shape == out_shape {
        return Ok(nnu_alloc::try_to_owned(seg, "the resampled segmentation")?);
    }
    let Some(axis) = plan.separate_z_axis else {
        return resize_segmentation(seg, out_shape, order);
    };
    if axis > 2 {
        return Err(PreprocessError::InvalidAxis(axis));
    }
    check_label_count(&unique_labels(&seg))?;
    let (a0, a1) = in_plane_axes(axis);
    let o2 = [out_shape[a0], out_shape[a1]];
    let pz = AxisPlan::new(in_shape[axis], out_shape[axis], Order::Nearest);
    let mut res = try_from_elem(out_shape, 0i32, "the resampled segmentation")?;
    res.axis_iter_mut(Axis(axis))
        .into_par_iter()
        .enumerate()
        .for_each_init(Scratch::default, |s, (k, mut oslice)| {
            let sl = seg.index_axis(Axis(axis), pz.nearest_index(k));
            oslice.assign(&resize_segmentation_plane(sl, o2, order, s));
        });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two labels: the same winner as the nonzero mask's resampling (which the goldens check).
    #[test]
    fn two_labels_agree_with_the_mask_resampling() {
        let seg = Array3::from_shape_fn((5, 7, 6), |(z, y, x)| {
            i32::from((z * 3 + y * 5 + x * 7) % 11 < 5) - 1
        });
        for order in [Order::Linear, Order::Cubic] {
            for plan in [
                ResamplePlan {
                    new_shape: [9, 4, 11],
                    separate_z_axis: None,
                },
                ResamplePlan {
                    new_shape: [9, 4, 11],
                    separate_z_axis: Some(0),
                },
                ResamplePlan {
                    new_shape: [3, 14, 11],
                    separate_z_axis: Some(2),
                },
            ] {
                let ours = resample_segmentation(seg.view(), &plan, order).unwrap();
                let inside = seg.mapv(|v| v == 0);
                let mask = resample_mask(inside.view(), &plan, order).unwrap();
                assert_eq!(
                    ours,
                    mask.mapv(|b| if b { 0 } else { -1 }),
                    "{plan:?} {order:?}"
                );
            }
        }
    }

    /// Three labels upsampled: each output voxel takes the label of the larger interpolated
    /// indicator, and an identity resize reproduces the map.
    #[test]
    fn three_labels_take_the_largest_score() {
        let seg = ndarray::arr3(&[[[0, 1, 2, 2]]]);
        let out = resize_segmentation(seg.view(), [1, 1, 8], Order::Linear).unwrap();
        // sample k at k / 2 - 0.25: -0.25 (edge) 0.25 0.75 1.25 1.75 2.25 2.75 3.25 (edge)
        assert_eq!(out.as_slice().unwrap(), &[0, 0, 1, 1, 2, 2, 2, 2]);
        let same = resize_segmentation(seg.view(), [1, 1, 4], Order::Linear).unwrap();
        assert_eq!(same, seg);
    }
}

//! Resampling: `skimage.transform.resize` and nnU-Net's `resample_data_or_seg` / `resample_patient` rules.
//!
//! References (the versions the goldens were made with): nnU-Net 1.7.1 `preprocessing/preprocessing.py`
//! (`get_do_separate_z`, `get_lowres_axis`, `resample_patient`, `resample_data_or_seg`), scikit-image 0.26.0
//! `skimage.transform.resize`, scipy 1.17.1 `scipy.ndimage.zoom` / `map_coordinates`.
//!
//! Memory: a 3-D resize holds one f64 buffer of `in_z x out_y x out_x` samples (the in-plane passes, done per
//! slice in parallel) besides its f32 input and output; the z pass runs in column blocks.

use ndarray::{s, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernel::AxisPlan;
use crate::PreprocessError;

/// nnU-Net's `RESAMPLING_SEPARATE_Z_ANISO_THRESHOLD`: an axis is resampled separately when the largest
/// spacing exceeds three times the smallest (strictly).
pub const SEPARATE_Z_ANISOTROPY_THRESHOLD: f64 = 3.0;

/// Columns per block in the outer-axis (z) pass: a block of `n_z x 256` f64 stays in L2 cache.
const COLUMN_BLOCK: usize = 256;

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

fn decide_separate_z(first: [f64; 3], second: [f64; 3]) -> Option<usize> {
    let axes = if do_separate_z(first) {
        lowres_axes(first)
    } else if do_separate_z(second) {
        lowres_axes(second)
    } else {
        return None;
    };
    (axes.len() == 1).then(|| axes[0])
}

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
    let mut out = Array3::<f32>::zeros(out_shape);
    resize_into(input, out.view_mut(), order)?;
    Ok(out)
}

/// [`resize`] into a caller's standard-layout array of the output shape.
///
/// # Errors
/// As [`resize`].
pub fn resize_into(
    input: ArrayView3<f32>,
    mut out: ArrayViewMut3<f32>,
    order: Order,
) -> Result<(), PreprocessError> {
    let in_shape = shape3(input.shape());
    let out_shape = shape3(out.shape());
    check_nonempty(in_shape, out_shape)?;
    if in_shape == out_shape {
        out.assign(&input);
        return Ok(());
    }
    let (lo, hi) = min_max(input);
    resize3d(input, out, order, move |v| clip(v, lo, hi) as f32)
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
    let in_shape = shape3(input.shape());
    let out_shape = shape3(out.shape());
    if out_shape != plan.new_shape {
        return Err(PreprocessError::ShapeMismatch {
            what: "resampling output",
            shape: out_shape.to_vec(),
            expected: plan.new_shape.to_vec(),
        });
    }
    check_nonempty(in_shape, out_shape)?;
    if in_shape == out_shape {
        let mut out = out;
        out.assign(&input);
        return Ok(());
    }
    match plan.separate_z_axis {
        None => resize_into(input, out, order),
        Some(axis) => resize_separate_z(input, out, axis, order),
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
    let mut out = Array3::<f32>::zeros(plan.new_shape);
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
    p.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Per-task scratch buffers.
#[derive(Default)]
struct Scratch {
    line: Vec<f64>,
    block: Vec<f64>,
    acc: Vec<f64>,
    /// Transposed block for the vectorised cubic pass along axis 1.
    block_t: Vec<f64>,
    acc_t: Vec<f64>,
}

/// Resizes one plane: 1-D passes along its axis 1 (lines) then its axis 0 (rows); output row `r` of the
/// `p0.n_out x p1.n_out` result goes to `emit(r, row)`.
fn resize_plane(
    src: ArrayView2<f32>,
    p0: &AxisPlan,
    p1: &AxisPlan,
    s: &mut Scratch,
    mut emit: impl FnMut(usize, &[f64]),
) {
    let m = p1.n_out;
    let pad0 = p0.pad();
    let pad1 = p1.pad();
    s.block.clear();
    s.block.resize(p0.padded_len() * m, 0.0);
    if p1.pad() > 0 {
        // Cubic along axis 1: the recursive prefilter is latency bound on single lines, so the plane is
        // transposed and the pass runs on whole rows (the same operations per line, vectorised across lines).
        let n0 = p0.n_in;
        let pt = p1.padded_len();
        s.block_t.clear();
        s.block_t.resize(pt * n0, 0.0);
        for (r, lane) in src.rows().into_iter().enumerate() {
            for (j, &v) in lane.iter().enumerate() {
                s.block_t[(pad1 + j) * n0 + r] = v as f64;
            }
        }
        s.acc_t.clear();
        s.acc_t.resize(n0, 0.0);
        let block = &mut s.block;
        p1.apply_rows(&mut s.block_t, n0, &mut s.acc_t, |k, col| {
            for (r, &v) in col.iter().enumerate() {
                block[(pad0 + r) * m + k] = v;
            }
        });
    } else {
        s.line.clear();
        s.line.resize(p1.padded_len(), 0.0);
        for (r, lane) in src.rows().into_iter().enumerate() {
            let dst = &mut s.block[(pad0 + r) * m..(pad0 + r + 1) * m];
            if p1.is_identity() {
                for (d, &v) in dst.iter_mut().zip(lane.iter()) {
                    *d = v as f64;
                }
            } else {
                for (d, &v) in s.line[pad1..pad1 + p1.n_in].iter_mut().zip(lane.iter()) {
                    *d = v as f64;
                }
                p1.apply_line(&mut s.line, dst);
            }
        }
    }
    s.acc.clear();
    s.acc.resize(m, 0.0);
    p0.apply_rows(&mut s.block, m, &mut s.acc, &mut emit);
}

/// Separable 3-D resize (in-plane per z slice, then z in column blocks), each output sample stored through
/// `store`. `out` must be in standard layout.
fn resize3d<T: Copy + Send + Sync + Default>(
    input: ArrayView3<f32>,
    mut out: ArrayViewMut3<T>,
    order: Order,
    store: impl Fn(f64) -> T + Sync,
) -> Result<(), PreprocessError> {
    let [iz, iy, ix] = shape3(input.shape());
    let [oz, oy, ox] = shape3(out.shape());
    let pz = AxisPlan::new(iz, oz, order);
    let py = AxisPlan::new(iy, oy, order);
    let px = AxisPlan::new(ix, ox, order);
    if pz.is_identity() {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each_init(Scratch::default, |s, (z, mut oplane)| {
                resize_plane(input.index_axis(Axis(0), z), &py, &px, s, |r, row| {
                    for (o, &v) in oplane.row_mut(r).iter_mut().zip(row) {
                        *o = store(v);
                    }
                })
            });
        return Ok(());
    }
    if order != Order::Cubic {
        return resize3d_streaming(input, out, &pz, &py, &px, store);
    }
    // In-plane passes into one f64 buffer of in_z x out_y x out_x.
    let plane = oy * ox;
    let mut buf = vec![0.0f64; iz * plane];
    buf.par_chunks_mut(plane)
        .enumerate()
        .for_each_init(Scratch::default, |s, (z, bplane)| {
            resize_plane(input.index_axis(Axis(0), z), &py, &px, s, |r, row| {
                bplane[r * ox..(r + 1) * ox].copy_from_slice(row);
            })
        });
    // z pass in column blocks.
    let mut out_flat = out
        .view_mut()
        .into_shape_with_order((oz, plane))
        .map_err(|_| PreprocessError::ShapeMismatch {
            what: "resampling output (not in standard layout)",
            shape: vec![oz, oy, ox],
            expected: vec![oz, oy, ox],
        })?;
    let pad = pz.pad();
    let padded = pz.padded_len();
    let buf = &buf;
    out_flat
        .axis_chunks_iter_mut(Axis(1), COLUMN_BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each_init(Scratch::default, |s, (bi, mut ochunk)| {
            let c0 = bi * COLUMN_BLOCK;
            let mc = ochunk.shape()[1];
            s.block.clear();
            s.block.resize(padded * mc, 0.0);
            for z in 0..iz {
                s.block[(pad + z) * mc..(pad + z + 1) * mc]
                    .copy_from_slice(&buf[z * plane + c0..z * plane + c0 + mc]);
            }
            s.acc.clear();
            s.acc.resize(mc, 0.0);
            pz.apply_rows(&mut s.block, mc, &mut s.acc, |k, row| {
                for (o, &v) in ochunk.row_mut(k).iter_mut().zip(row) {
                    *o = store(v);
                }
            });
        });
    Ok(())
}

/// Orders 0 and 1 along z need at most two input planes per output plane, and no prefilter: each task
/// takes a block of output planes and keeps the (at most two) in-plane-resized input planes it is
/// combining in a small cache, so no volume-sized intermediate is allocated. Input planes that no output
/// plane reads are never resized.
fn resize3d_streaming<T: Copy + Send + Sync + Default>(
    input: ArrayView3<f32>,
    mut out: ArrayViewMut3<T>,
    pz: &AxisPlan,
    py: &AxisPlan,
    px: &AxisPlan,
    store: impl Fn(f64) -> T + Sync,
) -> Result<(), PreprocessError> {
    let (oy, ox) = (py.n_out, px.n_out);
    let plane = oy * ox;
    let oz = pz.n_out;
    let Some(out_flat) = out.as_slice_mut() else {
        return Err(PreprocessError::ShapeMismatch {
            what: "resampling output (not in standard layout)",
            shape: vec![oz, oy, ox],
            expected: vec![oz, oy, ox],
        });
    };
    // A few blocks per thread balance the load; each block re-resizes at most one boundary plane.
    let blocks = 4 * rayon::current_num_threads();
    let block = oz.div_ceil(blocks).max(1);
    out_flat
        .par_chunks_mut(plane * block)
        .enumerate()
        .for_each_init(
            || (Scratch::default(), PlaneCache::default()),
            |(s, cache), (bi, chunk)| {
                for (j, oplane) in chunk.chunks_mut(plane).enumerate() {
                    let k = bi * block + j;
                    let Some((i0, i1, w0, w1)) = pz.short_taps(k) else {
                        return;
                    };
                    cache.ensure(i0, i1, |i, buf| {
                        buf.resize(plane, 0.0);
                        resize_plane(input.index_axis(Axis(0), i), py, px, s, |r, row| {
                            buf[r * ox..(r + 1) * ox].copy_from_slice(row);
                        });
                    });
                    let (p0, p1) = cache.pair(i0, i1);
                    if w1 == 0.0 {
                        for (o, &a) in oplane.iter_mut().zip(p0) {
                            *o = store(w0 * a);
                        }
                    } else {
                        for ((o, &a), &b) in oplane.iter_mut().zip(p0).zip(p1) {
                            *o = store(w0 * a + w1 * b);
                        }
                    }
                }
            },
        );
    Ok(())
}

/// Two in-plane-resized input planes, by input index.
#[derive(Default)]
struct PlaneCache {
    idx: [Option<usize>; 2],
    planes: [Vec<f64>; 2],
}

impl PlaneCache {
    /// Makes planes `i0` and `i1` present, computing missing ones with `fill(index, buffer)`.
    fn ensure(&mut self, i0: usize, i1: usize, mut fill: impl FnMut(usize, &mut Vec<f64>)) {
        for (need, other) in [(i0, i1), (i1, i0)] {
            if self.idx.contains(&Some(need)) {
                continue;
            }
            // evict the slot that does not hold the other needed plane
            let slot = if self.idx[0] == Some(other) { 1 } else { 0 };
            fill(need, &mut self.planes[slot]);
            self.idx[slot] = Some(need);
        }
    }

    fn pair(&self, i0: usize, i1: usize) -> (&[f64], &[f64]) {
        let find = |i| {
            if self.idx[0] == Some(i) {
                &self.planes[0]
            } else {
                &self.planes[1]
            }
        };
        (find(i0), find(i1))
    }
}

/// The two in-plane axes for a separate-z axis, in increasing order.
pub(crate) fn in_plane_axes(axis: usize) -> (usize, usize) {
    match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

/// nnU-Net's separate-z path (see [`resample_channel_into`]).
fn resize_separate_z(
    input: ArrayView3<f32>,
    mut out: ArrayViewMut3<f32>,
    axis: usize,
    order: Order,
) -> Result<(), PreprocessError> {
    if axis > 2 {
        return Err(PreprocessError::InvalidAxis(axis));
    }
    let in_shape = shape3(input.shape());
    let out_shape = shape3(out.shape());
    let (a0, a1) = in_plane_axes(axis);
    let p0 = AxisPlan::new(in_shape[a0], out_shape[a0], order);
    let p1 = AxisPlan::new(in_shape[a1], out_shape[a1], order);
    let pz = AxisPlan::new(in_shape[axis], out_shape[axis], Order::Nearest);
    let in_plane_identity = p0.is_identity() && p1.is_identity();
    // Output slices that read the same input slice as their predecessor are copied afterwards, so every
    // input slice is resized at most once.
    let duplicate = |k: usize| k > 0 && pz.nearest_index(k - 1) == pz.nearest_index(k);
    out.axis_iter_mut(Axis(axis))
        .into_par_iter()
        .enumerate()
        .for_each_init(Scratch::default, |s, (k, mut oslice)| {
            if duplicate(k) {
                return;
            }
            let islice = input.index_axis(Axis(axis), pz.nearest_index(k));
            if in_plane_identity {
                oslice.assign(&islice);
                return;
            }
            let (lo, hi) = min_max_2d(islice);
            let (lo, hi) = (lo as f64, hi as f64);
            resize_plane(islice, &p0, &p1, s, |r, row| {
                for (o, &v) in oslice.row_mut(r).iter_mut().zip(row) {
                    *o = clip(v, lo, hi) as f32;
                }
            });
        });
    for k in 1..out_shape[axis] {
        if duplicate(k) {
            copy_slice(&mut out, axis, k - 1, k);
        }
    }
    Ok(())
}

fn copy_slice<T: Copy>(out: &mut ArrayViewMut3<T>, axis: usize, from: usize, to: usize) {
    let (src, mut dst) = match axis {
        0 => out.multi_slice_mut((s![from, .., ..], s![to, .., ..])),
        1 => out.multi_slice_mut((s![.., from, ..], s![.., to, ..])),
        _ => out.multi_slice_mut((s![.., .., from], s![.., .., to])),
    };
    dst.assign(&src);
}

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
        return Ok(inside.to_owned());
    }
    let any_in = inside.iter().any(|&b| b);
    let any_out = inside.iter().any(|&b| !b);
    if !(any_in && any_out) {
        // A single label: batchgenerators returns it everywhere.
        return Ok(Array3::from_elem(out_shape, any_in));
    }
    let ind_in = inside.mapv(|b| if b { 1.0f32 } else { 0.0 });
    let ind_out = inside.mapv(|b| if b { 0.0f32 } else { 1.0 });
    match plan.separate_z_axis {
        None => {
            let mut s_in = Array3::<f64>::zeros(out_shape);
            let mut s_out = Array3::<f64>::zeros(out_shape);
            let mut nn = Array3::<f32>::zeros(out_shape);
            let (lo, hi) = min_max(ind_in.view());
            resize3d(ind_in.view(), s_in.view_mut(), order, |v| clip(v, lo, hi))?;
            let (lo, hi) = min_max(ind_out.view());
            resize3d(ind_out.view(), s_out.view_mut(), order, |v| clip(v, lo, hi))?;
            resize3d(ind_in.view(), nn.view_mut(), Order::Nearest, |v| v as f32)?;
            let mut res = Array3::from_elem(out_shape, false);
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
            let mut res = Array3::from_elem(out_shape, false);
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

fn mask_winner(score_inside: f64, score_outside: f64, nearest_inside: bool) -> bool {
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

fn resize_mask_plane(
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

type Array2Bool = ndarray::Array2<bool>;

fn write_plane(
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
    fn bad_spacing_is_an_error() {
        assert!(new_shape([4, 4, 4], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]).is_err());
        assert!(new_shape([4, 4, 4], [1.0, f64::NAN, 1.0], [1.0, 1.0, 1.0]).is_err());
        assert!(new_shape([4, 4, 4], [1.0, 1.0, 1.0], [1.0, 1.0, 1000.0]).is_err());
    }
}

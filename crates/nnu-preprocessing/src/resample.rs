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

use ndarray::{
    s, Array3, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis,
};
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

/// Per-task scratch buffers. They only grow; every pass overwrites the part it reads, so nothing is
/// zero-filled between planes.
#[derive(Default)]
pub(crate) struct Scratch {
    line: Vec<f64>,
    block: Vec<f64>,
    acc: Vec<f64>,
    /// Transposed block for the vectorised cubic pass along axis 1.
    block_t: Vec<f64>,
    acc_t: Vec<f64>,
}

/// The first `n` samples of `v`, grown (never shrunk or cleared) as needed.
fn sized(v: &mut Vec<f64>, n: usize) -> &mut [f64] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Rows of `src` that are transposed together in the cubic pass along axis 1: 8 f64 (one cache line) are
/// written per transposed row, instead of one sample per row at a stride of the input's height.
const TRANSPOSE_TILE: usize = 8;

/// Resizes one plane: 1-D passes along its axis 1 (lines) then its axis 0 (rows); output row `r` of the
/// `p0.n_out x p1.n_out` result goes to `emit(r, row)`.
fn resize_plane(
    src: ArrayView2<f32>,
    p0: &AxisPlan,
    p1: &AxisPlan,
    s: &mut Scratch,
    emit: impl FnMut(usize, &[f64]),
) {
    let m = p1.n_out;
    pass_axis1(src, p0, p1, s);
    let acc = sized(&mut s.acc, m);
    p0.apply_rows(&mut s.block[..p0.padded_len() * m], m, acc, emit);
}

/// [`resize_plane`] into `dst` (`p0.n_out x p1.n_out`, row-major).
fn resize_plane_into(
    src: ArrayView2<f32>,
    p0: &AxisPlan,
    p1: &AxisPlan,
    s: &mut Scratch,
    dst: &mut [f64],
) {
    let m = p1.n_out;
    pass_axis1(src, p0, p1, s);
    p0.apply_rows_into(&mut s.block[..p0.padded_len() * m], m, dst);
}

/// The pass along axis 1 of [`resize_plane`]: fills rows `[pad0 .. pad0 + n_in]` of `s.block`
/// (`p0.padded_len()` rows of `p1.n_out`).
fn pass_axis1(src: ArrayView2<f32>, p0: &AxisPlan, p1: &AxisPlan, s: &mut Scratch) {
    let m = p1.n_out;
    let pad0 = p0.pad();
    let pad1 = p1.pad();
    let block = sized(&mut s.block, p0.padded_len() * m);
    if pad1 > 0 {
        // Cubic along axis 1: the recursive prefilter is latency bound on single lines, so the plane is
        // transposed and the pass runs on whole rows (the same operations per line, vectorised across lines).
        let n0 = p0.n_in;
        let pt = p1.padded_len();
        let block_t = sized(&mut s.block_t, pt * n0);
        let n1 = p1.n_in;
        for r0 in (0..n0).step_by(TRANSPOSE_TILE) {
            let r1 = (r0 + TRANSPOSE_TILE).min(n0);
            let rows: Vec<_> = (r0..r1).map(|r| src.row(r)).collect();
            let slices: Option<Vec<&[f32]>> = rows.iter().map(|r| r.as_slice()).collect();
            match slices {
                Some(sl) => {
                    for j in 0..n1 {
                        let dst = &mut block_t[(pad1 + j) * n0 + r0..(pad1 + j) * n0 + r1];
                        for (d, row) in dst.iter_mut().zip(&sl) {
                            *d = row[j] as f64;
                        }
                    }
                }
                None => {
                    for (i, lane) in rows.iter().enumerate() {
                        for (j, &v) in lane.iter().enumerate() {
                            block_t[(pad1 + j) * n0 + r0 + i] = v as f64;
                        }
                    }
                }
            }
        }
        let acc_t = sized(&mut s.acc_t, n0);
        p1.apply_rows(block_t, n0, acc_t, |k, col| {
            for (r, &v) in col.iter().enumerate() {
                block[(pad0 + r) * m + k] = v;
            }
        });
    } else {
        for (r, lane) in src.rows().into_iter().enumerate() {
            let dst = &mut block[(pad0 + r) * m..(pad0 + r + 1) * m];
            match lane.as_slice() {
                Some(l) => p1.apply_line_f32(l, dst),
                None => {
                    let line = sized(&mut s.line, p1.n_in);
                    for (d, &v) in line.iter_mut().zip(lane.iter()) {
                        *d = v as f64;
                    }
                    p1.apply_line(line, dst);
                }
            }
        }
    }
}

/// Output planes (along axis 0) per parallel task: a few tasks per thread balance the load, and each task
/// owns its scratch (allocated once per task, not per plane).
fn planes_per_task(n: usize) -> usize {
    n.div_ceil(4 * rayon::current_num_threads()).max(1)
}

/// Separable 3-D resize (in-plane per z slice, then z in column blocks), each output sample stored through
/// `store`. Orders 0 and 1, and order 3 without a change along z, stream plane by plane ([`PlaneStream`]);
/// order 3 holds one f64 buffer of `in_z x out_y x out_x`.
fn resize3d<T: Copy + Send + Sync>(
    input: ArrayView3<f32>,
    out: ArrayViewMut3<T>,
    order: Order,
    store: impl Fn(f64) -> T + Sync,
) -> Result<(), PreprocessError> {
    let [iz, iy, ix] = shape3(input.shape());
    let [oz, oy, ox] = shape3(out.shape());
    let pz = AxisPlan::new(iz, oz, order);
    if order != Order::Cubic || pz.is_identity() {
        // the caller's store clips; the stream's own clip is a no-op
        let stream = PlaneStream::Stream3d {
            input,
            pz,
            py: AxisPlan::new(iy, oy, order),
            px: AxisPlan::new(ix, ox, order),
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        };
        stream.write_into(out, &store);
        return Ok(());
    }
    let py = AxisPlan::new(iy, oy, order);
    let px = AxisPlan::new(ix, ox, order);
    // In-plane passes into one f64 buffer of in_z x out_y x out_x; with an unchanged plane (a common case:
    // the target spacing is the dataset's median) the z pass reads the input itself and no buffer is made.
    let plane = oy * ox;
    let in_plane_identity = py.is_identity() && px.is_identity();
    let mut buf = Vec::new();
    if !in_plane_identity {
        buf = vec![0.0f64; iz * plane];
        let zb = planes_per_task(iz);
        buf.par_chunks_mut(plane * zb)
            .enumerate()
            .for_each(|(bi, bchunk)| {
                let mut s = Scratch::default();
                for (j, bplane) in bchunk.chunks_mut(plane).enumerate() {
                    let src = input.index_axis(Axis(0), bi * zb + j);
                    resize_plane_into(src, &py, &px, &mut s, bplane);
                }
            });
    }
    // z pass in column blocks; each task takes several consecutive blocks with one scratch.
    let mut out_flat =
        out.into_shape_with_order((oz, plane))
            .map_err(|_| PreprocessError::ShapeMismatch {
                what: "resampling output (not in standard layout)",
                shape: vec![oz, oy, ox],
                expected: vec![oz, oy, ox],
            })?;
    let pad = pz.pad();
    let padded = pz.padded_len();
    let buf = &buf;
    let n_blocks = plane.div_ceil(COLUMN_BLOCK);
    let per_task = planes_per_task(n_blocks) * COLUMN_BLOCK;
    out_flat
        .axis_chunks_iter_mut(Axis(1), per_task)
        .into_par_iter()
        .enumerate()
        .for_each(|(ti, mut tchunk)| {
            let mut s = Scratch::default();
            for (bi, mut ochunk) in tchunk
                .axis_chunks_iter_mut(Axis(1), COLUMN_BLOCK)
                .enumerate()
            {
                let c0 = ti * per_task + bi * COLUMN_BLOCK;
                let mc = ochunk.shape()[1];
                let block = sized(&mut s.block, padded * mc);
                for z in 0..iz {
                    let dst = &mut block[(pad + z) * mc..(pad + z + 1) * mc];
                    if in_plane_identity {
                        copy_flat_range(input.index_axis(Axis(0), z), c0, dst);
                    } else {
                        dst.copy_from_slice(&buf[z * plane + c0..z * plane + c0 + mc]);
                    }
                }
                let acc = sized(&mut s.acc, mc);
                pz.apply_rows(block, mc, acc, |k, row| {
                    store_row(ochunk.row_mut(k), row, &store);
                });
            }
        });
    Ok(())
}

/// `dst[i] = plane.flat[c0 + i]` (row-major flat index of the plane, any strides), as f64.
fn copy_flat_range(plane: ArrayView2<f32>, c0: usize, dst: &mut [f64]) {
    let w = plane.shape()[1];
    let (mut c, mut d) = (c0, 0);
    while d < dst.len() {
        let (y, x) = (c / w, c % w);
        let n = (w - x).min(dst.len() - d);
        let seg = plane.slice(s![y, x..x + n]);
        match seg.as_slice() {
            Some(v) => {
                for (o, &v) in dst[d..d + n].iter_mut().zip(v) {
                    *o = v as f64;
                }
            }
            None => {
                for (o, &v) in dst[d..d + n].iter_mut().zip(seg.iter()) {
                    *o = v as f64;
                }
            }
        }
        c += n;
        d += n;
    }
}

/// A resampling of one channel that can be produced one output plane (along axis 0) at a time, from
/// per-task state only: what lets the export resample every class and take the argmax plane by plane,
/// and lets any output layout be written without a volume-sized intermediate.
pub(crate) enum PlaneStream<'a> {
    /// Same shape: output plane `k` is input plane `k`.
    Copy(ArrayView3<'a, f32>),
    /// 3-D resize whose z pass has at most two taps (orders 0 and 1, or no change along z): output plane
    /// `k` combines at most two in-plane-resized input planes, clipped to `[lo, hi]` (the input's range).
    Stream3d {
        input: ArrayView3<'a, f32>,
        pz: AxisPlan,
        py: AxisPlan,
        px: AxisPlan,
        lo: f64,
        hi: f64,
    },
    /// Separate z along axis 0: output plane `k` is the in-plane resize of input plane `pz.nearest_index(k)`,
    /// clipped to that plane's range (or the plane itself when the in-plane shape is unchanged).
    SepZ {
        input: ArrayView3<'a, f32>,
        pz: AxisPlan,
        py: AxisPlan,
        px: AxisPlan,
    },
}

impl<'a> PlaneStream<'a> {
    /// The stream for `resample_channel_into(input, plan, order)`, or `None` where that needs a whole
    /// volume at once (order 3 changing z without separate z; separate z along axis 1 or 2).
    ///
    /// # Errors
    /// [`PreprocessError::EmptyShape`] for empty shapes, [`PreprocessError::InvalidAxis`] for an axis > 2.
    pub(crate) fn new(
        input: ArrayView3<'a, f32>,
        plan: &ResamplePlan,
        order: Order,
    ) -> Result<Option<Self>, PreprocessError> {
        let [iz, iy, ix] = shape3(input.shape());
        let [oz, oy, ox] = plan.new_shape;
        check_nonempty([iz, iy, ix], plan.new_shape)?;
        if [iz, iy, ix] == plan.new_shape {
            return Ok(Some(PlaneStream::Copy(input)));
        }
        match plan.separate_z_axis {
            None => {
                let pz = AxisPlan::new(iz, oz, order);
                if order == Order::Cubic && !pz.is_identity() {
                    return Ok(None);
                }
                let (lo, hi) = min_max(input);
                Ok(Some(PlaneStream::Stream3d {
                    input,
                    pz,
                    py: AxisPlan::new(iy, oy, order),
                    px: AxisPlan::new(ix, ox, order),
                    lo,
                    hi,
                }))
            }
            Some(0) => Ok(Some(PlaneStream::SepZ {
                input,
                pz: AxisPlan::new(iz, oz, Order::Nearest),
                py: AxisPlan::new(iy, oy, order),
                px: AxisPlan::new(ix, ox, order),
            })),
            Some(1 | 2) => Ok(None),
            Some(axis) => Err(PreprocessError::InvalidAxis(axis)),
        }
    }

    /// The z taps `(i0, i1, w0, w1)` of output plane `k` of a [`PlaneStream::Stream3d`].
    fn taps(pz: &AxisPlan, k: usize) -> (usize, usize, f64, f64) {
        if pz.is_identity() {
            (k, k, 1.0, 0.0)
        } else {
            // not cubic (see `new`), so short taps exist
            pz.short_taps(k)
                .unwrap_or((k.min(pz.n_in - 1), k.min(pz.n_in - 1), 1.0, 0.0))
        }
    }

    /// True when output plane `k > 0` equals output plane `k - 1` (both read the same input).
    pub(crate) fn repeats(&self, k: usize) -> bool {
        if k == 0 {
            return false;
        }
        match self {
            PlaneStream::Copy(_) => false,
            PlaneStream::Stream3d { pz, .. } => Self::taps(pz, k) == Self::taps(pz, k - 1),
            PlaneStream::SepZ { pz, .. } => pz.nearest_index(k) == pz.nearest_index(k - 1),
        }
    }

    /// Writes output plane `k`, each value through `store`. `cache` must only ever be used with this stream.
    pub(crate) fn write_plane<T>(
        &self,
        k: usize,
        s: &mut Scratch,
        cache: &mut PlaneCache,
        mut out: ArrayViewMut2<T>,
        store: &impl Fn(f64) -> T,
    ) {
        match self {
            PlaneStream::Copy(input) => {
                ndarray::Zip::from(&mut out)
                    .and(input.index_axis(Axis(0), k))
                    .for_each(|o, &v| *o = store(v as f64));
            }
            PlaneStream::Stream3d {
                input,
                pz,
                py,
                px,
                lo,
                hi,
            } => {
                let (i0, i1, w0, w1) = Self::taps(pz, k);
                let ox = px.n_out;
                let plane = py.n_out * ox;
                cache.ensure(i0, i1, |i, buf| {
                    resize_plane_into(input.index_axis(Axis(0), i), py, px, s, sized(buf, plane));
                });
                let (p0, p1) = cache.pair(i0, i1);
                let (lo, hi) = (*lo, *hi);
                for (r, orow) in out.rows_mut().into_iter().enumerate() {
                    let a = &p0[r * ox..(r + 1) * ox];
                    if w1 == 0.0 {
                        store_row(orow, a, |x| store(clip(w0 * x, lo, hi)));
                    } else {
                        let b = &p1[r * ox..(r + 1) * ox];
                        store_row2(orow, a, b, |x, y| store(clip(w0 * x + w1 * y, lo, hi)));
                    }
                }
            }
            PlaneStream::SepZ { input, pz, py, px } => {
                let islice = input.index_axis(Axis(0), pz.nearest_index(k));
                if py.is_identity() && px.is_identity() {
                    ndarray::Zip::from(&mut out)
                        .and(islice)
                        .for_each(|o, &v| *o = store(v as f64));
                    return;
                }
                let (lo, hi) = min_max_2d(islice);
                let (lo, hi) = (lo as f64, hi as f64);
                resize_plane(islice, py, px, s, |r, row| {
                    store_row(out.row_mut(r), row, |v| store(clip(v, lo, hi)));
                });
            }
        }
    }

    /// Writes every output plane into `out` (any layout), in parallel over blocks of planes.
    pub(crate) fn write_into<T: Copy + Send + Sync>(
        &self,
        mut out: ArrayViewMut3<T>,
        store: &(impl Fn(f64) -> T + Sync),
    ) {
        let block = planes_per_task(out.shape()[0]);
        out.axis_chunks_iter_mut(Axis(0), block)
            .into_par_iter()
            .enumerate()
            .for_each(|(bi, mut chunk)| {
                let mut s = Scratch::default();
                let mut cache = PlaneCache::default();
                for j in 0..chunk.shape()[0] {
                    let k = bi * block + j;
                    if j > 0 && self.repeats(k) {
                        let (prev, mut cur) =
                            chunk.multi_slice_mut((s![j - 1, .., ..], s![j, .., ..]));
                        cur.assign(&prev);
                    } else {
                        self.write_plane(
                            k,
                            &mut s,
                            &mut cache,
                            chunk.index_axis_mut(Axis(0), j),
                            store,
                        );
                    }
                }
            });
    }
}

/// `np.argmax` over classes of the resampled class planes, written into `out` (any layout; one u8 label
/// per voxel): every class is resampled and compared plane by plane, so besides `out` only per-task planes
/// are alive. All streams must have the output shape of `out`. The first maximum wins; NaN counts as the
/// maximum (numpy's rule).
pub(crate) fn argmax_into(streams: &[PlaneStream], mut out: ArrayViewMut3<u8>) {
    let (oy, ox) = (out.shape()[1], out.shape()[2]);
    let block = planes_per_task(out.shape()[0]);
    out.axis_chunks_iter_mut(Axis(0), block)
        .into_par_iter()
        .enumerate()
        .for_each(|(bi, mut chunk)| {
            let mut s = Scratch::default();
            let mut caches: Vec<PlaneCache> =
                streams.iter().map(|_| PlaneCache::default()).collect();
            let mut best = ndarray::Array2::<f32>::zeros((oy, ox));
            let mut cur = ndarray::Array2::<f32>::zeros((oy, ox));
            let as_f32 = |v: f64| v as f32;
            for j in 0..chunk.shape()[0] {
                let k = bi * block + j;
                if j > 0 && streams.iter().all(|st| st.repeats(k)) {
                    let (prev, mut now) = chunk.multi_slice_mut((s![j - 1, .., ..], s![j, .., ..]));
                    now.assign(&prev);
                    continue;
                }
                let mut label = chunk.index_axis_mut(Axis(0), j);
                label.fill(0);
                for (c, (st, cache)) in streams.iter().zip(caches.iter_mut()).enumerate() {
                    if c == 0 {
                        st.write_plane(k, &mut s, cache, best.view_mut(), &as_f32);
                        continue;
                    }
                    st.write_plane(k, &mut s, cache, cur.view_mut(), &as_f32);
                    let c = c as u8;
                    let update = |l: &mut u8, b: &mut f32, v: f32| {
                        if v > *b || (v.is_nan() && !b.is_nan()) {
                            *b = v;
                            *l = c;
                        }
                    };
                    for ((mut lrow, mut brow), crow) in label
                        .rows_mut()
                        .into_iter()
                        .zip(best.rows_mut())
                        .zip(cur.rows())
                    {
                        match (lrow.as_slice_mut(), brow.as_slice_mut(), crow.as_slice()) {
                            (Some(l), Some(b), Some(v)) => {
                                for ((l, b), &v) in l.iter_mut().zip(b.iter_mut()).zip(v) {
                                    update(l, b, v);
                                }
                            }
                            _ => ndarray::Zip::from(lrow)
                                .and(brow)
                                .and(crow)
                                .for_each(|l, b, &v| update(l, b, v)),
                        }
                    }
                }
            }
        });
}

/// `orow[j] = f(row[j])`, on a slice where the output row is contiguous.
#[inline]
fn store_row<T>(mut orow: ArrayViewMut1<T>, row: &[f64], f: impl Fn(f64) -> T) {
    match orow.as_slice_mut() {
        Some(o) => {
            for (o, &v) in o.iter_mut().zip(row) {
                *o = f(v);
            }
        }
        None => {
            for (o, &v) in orow.iter_mut().zip(row) {
                *o = f(v);
            }
        }
    }
}

/// `orow[j] = f(a[j], b[j])`, on a slice where the output row is contiguous.
#[inline]
fn store_row2<T>(mut orow: ArrayViewMut1<T>, a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> T) {
    match orow.as_slice_mut() {
        Some(o) => {
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        None => {
            for ((o, &x), &y) in orow.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
    }
}

/// Two in-plane-resized input planes, by input index.
#[derive(Default)]
pub(crate) struct PlaneCache {
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

/// nnU-Net's separate-z path (see [`resample_channel_into`]) along axis 1 or 2; axis 0 streams
/// ([`PlaneStream::SepZ`]).
fn resize_separate_z(
    input: ArrayView3<f32>,
    mut out: ArrayViewMut3<f32>,
    axis: usize,
    order: Order,
    map: impl Fn(f32) -> f32 + Sync,
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
                ndarray::Zip::from(&mut oslice)
                    .and(islice)
                    .for_each(|o, &v| *o = map(v));
                return;
            }
            let (lo, hi) = min_max_2d(islice);
            let (lo, hi) = (lo as f64, hi as f64);
            resize_plane(islice, &p0, &p1, s, |r, row| {
                for (o, &v) in oslice.row_mut(r).iter_mut().zip(row) {
                    *o = map(clip(v, lo, hi) as f32);
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

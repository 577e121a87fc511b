//! The dense resize: `skimage.transform.resize` of a whole volume (1-D passes per plane, then the z pass
//! in column blocks), and nnU-Net's separate-z path along axis 1 or 2.

use super::*;

/// Columns per block in the outer-axis (z) pass: a block of `n_z x 256` f64 stays in L2 cache.
pub(super) const COLUMN_BLOCK: usize = 256;

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
pub(super) fn sized(v: &mut Vec<f64>, n: usize) -> &mut [f64] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Rows of `src` that are transposed together in the cubic pass along axis 1: 8 f64 (one cache line) are
/// written per transposed row, instead of one sample per row at a stride of the input's height.
pub(super) const TRANSPOSE_TILE: usize = 8;

/// Resizes one plane: 1-D passes along its axis 1 (lines) then its axis 0 (rows); output row `r` of the
/// `p0.n_out x p1.n_out` result goes to `emit(r, row)`.
pub(super) fn resize_plane(
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
pub(super) fn resize_plane_into(
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
pub(super) fn pass_axis1(src: ArrayView2<f32>, p0: &AxisPlan, p1: &AxisPlan, s: &mut Scratch) {
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
pub(super) fn planes_per_task(n: usize) -> usize {
    n.div_ceil(4 * rayon::current_num_threads()).max(1)
}

/// Separable 3-D resize (in-plane per z slice, then z in column blocks), each output sample stored through
/// `store`. Orders 0 and 1, and order 3 without a change along z, stream plane by plane ([`PlaneStream`]);
/// order 3 holds one f64 buffer of `in_z x out_y x out_x`.
pub(super) fn resize3d<T: Copy + Send + Sync>(
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
        buf = nnu_alloc::try_vec(iz * plane, 0.0f64, "the in-plane resampled channel (f64)")?;
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
pub(super) fn copy_flat_range(plane: ArrayView2<f32>, c0: usize, dst: &mut [f64]) {
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
pub(super) fn resize_separate_z(
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

pub(super) fn copy_slice<T: Copy>(out: &mut ArrayViewMut3<T>, axis: usize, from: usize, to: usize) {
    let (src, mut dst) = match axis {
        0 => out.multi_slice_mut((s![from, .., ..], s![to, .., ..])),
        1 => out.multi_slice_mut((s![.., from, ..], s![.., to, ..])),
        _ => out.multi_slice_mut((s![.., .., from], s![.., .., to])),
    };
    dst.assign(&src);
}

//! Resampling streamed by output plane ([`PlaneStream`]): each task holds at most two in-plane-resized
//! input planes; the export's per-plane argmax over classes.

use super::*;

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
pub(super) fn store_row<T>(mut orow: ArrayViewMut1<T>, row: &[f64], f: impl Fn(f64) -> T) {
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
pub(super) fn store_row2<T>(
    mut orow: ArrayViewMut1<T>,
    a: &[f64],
    b: &[f64],
    f: impl Fn(f64, f64) -> T,
) {
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

//! One-dimensional resampling passes, the building block of every resize in this crate.
//!
//! `scipy.ndimage.zoom(input, zoom, order, mode='nearest', grid_mode=True)` (scipy 1.17.1), which is what
//! `skimage.transform.resize(order, mode='edge', anti_aliasing=False)` (scikit-image 0.26.0) calls, is a
//! tensor product: edge padding (12 voxels per side for orders > 1), the B-spline prefilter and the evaluation
//! at `((k + 0.5) * in / out) - 0.5` each act on one axis at a time. Operators acting on different axes commute,
//! so the N-D result equals a sequence of 1-D passes, one per axis, which is what this module computes. The
//! only difference to scipy is floating-point association (scipy sums the `(order + 1)^3` taps of a 3-D
//! evaluation in one loop; we sum 4 taps per axis), which is at the 1e-15 relative level.
//!
//! Two shapes of pass exist: [`AxisPlan::apply_line`] on one contiguous line (scalar), and
//! [`AxisPlan::apply_rows`] along the outer axis of a row-major block whose rows are contiguous vectors; the
//! latter runs the recursive prefilter on whole rows at a time, which vectorises and stays cache friendly.

use crate::Order;

/// The pole of the cubic B-spline prefilter, `sqrt(3) - 2` (scipy's `get_filter_poles`, order 3).
const CUBIC_POLE: f64 = -0.267_949_192_431_122_7;

/// Samples of edge padding per side that scipy's `_prepad_for_spline_filter` adds for `mode='nearest'`.
pub(crate) const SPLINE_PAD: usize = 12;

/// The causal initialisation sums `z^i c[i]` over the whole line in scipy; terms beyond `|z^i| < 1e-22`
/// cannot change an f64 result in a way that is visible at 1e-12 relative, so the loop stops there.
const INIT_TRUNCATION: f64 = 1e-22;

/// Where each output sample of one axis reads and with which weights.
#[derive(Debug, Clone)]
pub(crate) struct AxisPlan {
    pub(crate) n_in: usize,
    pub(crate) n_out: usize,
    order: Order,
    /// Index of the first tap per output sample (in padded coordinates for cubic).
    start: Vec<usize>,
    /// Tap weights per output sample; only the first `taps()` are used.
    weights: Vec<[f64; 4]>,
}

impl AxisPlan {
    /// Plans the resampling of an axis of `n_in` samples to `n_out` samples (both >= 1).
    ///
    /// The coordinate of output `k` is computed as scipy's `NI_ZoomShift` does in grid mode:
    /// `cc = ((k + 0.5) * zoom) - 0.5` with `zoom = n_in / n_out`, plus the prepadding for orders > 1, then
    /// clamped to the (padded) input for `mode='nearest'`. Order 0 takes `floor(cc + 0.5)` (half rounds up),
    /// order 1 `floor(cc)` with weights `(1 - x, x)`, order 3 `floor(cc) - 1` with the cubic B-spline weights
    /// of scipy's `get_spline_interpolation_weights`.
    pub(crate) fn new(n_in: usize, n_out: usize, order: Order) -> Self {
        debug_assert!(n_in >= 1 && n_out >= 1);
        let zoom = n_in as f64 / n_out as f64;
        let mut start = Vec::with_capacity(n_out);
        let mut weights = Vec::with_capacity(n_out);
        for k in 0..n_out {
            let mut cc = k as f64;
            cc += 0.5;
            cc *= zoom;
            cc -= 0.5;
            match order {
                Order::Nearest => {
                    let cc = clamp_coordinate(cc, n_in);
                    let idx = (cc + 0.5).floor() as usize;
                    start.push(idx.min(n_in - 1));
                    weights.push([1.0, 0.0, 0.0, 0.0]);
                }
                Order::Linear => {
                    let cc = clamp_coordinate(cc, n_in);
                    let f = cc.floor();
                    let x = cc - f;
                    let w0 = 1.0 - x;
                    start.push(f as usize);
                    weights.push([w0, 1.0 - w0, 0.0, 0.0]);
                }
                Order::Cubic => {
                    let cc = clamp_coordinate(cc + SPLINE_PAD as f64, n_in + 2 * SPLINE_PAD);
                    let f = cc.floor();
                    let y = cc - f;
                    let z = 1.0 - y;
                    let w1 = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
                    let w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
                    let w0 = z * z * z / 6.0;
                    let mut w3 = 1.0;
                    w3 -= w0;
                    w3 -= w1;
                    w3 -= w2;
                    // cc >= SPLINE_PAD - 0.5, so f >= 11 and the subtraction cannot wrap.
                    start.push(f as usize - 1);
                    weights.push([w0, w1, w2, w3]);
                }
            }
        }
        AxisPlan {
            n_in,
            n_out,
            order,
            start,
            weights,
        }
    }

    /// True when the axis keeps its size: scipy then samples at the integer input positions, which
    /// reproduces the input (up to 1e-15 for order 3), so the pass is skipped.
    pub(crate) fn is_identity(&self) -> bool {
        self.n_in == self.n_out
    }

    /// Padding per side the input buffer must leave free (0 unless cubic and not identity).
    pub(crate) fn pad(&self) -> usize {
        if self.order == Order::Cubic && !self.is_identity() {
            SPLINE_PAD
        } else {
            0
        }
    }

    /// Length of the line buffer [`apply_line`](Self::apply_line) expects.
    pub(crate) fn padded_len(&self) -> usize {
        self.n_in + 2 * self.pad()
    }

    /// Index of the input sample an order-0 plan reads for output `k`.
    pub(crate) fn nearest_index(&self, k: usize) -> usize {
        self.start[k]
    }

    /// The taps of output `k` of an order-0 or order-1 plan: `(i0, i1, w0, w1)`, the value being
    /// `w0 * x[i0] + w1 * x[i1]` (order 0: `i1 == i0`, `w1 == 0`). `None` for cubic plans.
    pub(crate) fn short_taps(&self, k: usize) -> Option<(usize, usize, f64, f64)> {
        let s = self.start[k];
        let w = self.weights[k];
        match self.order {
            Order::Nearest => Some((s, s, 1.0, 0.0)),
            Order::Linear => Some((s, (s + 1).min(self.n_in - 1), w[0], w[1])),
            Order::Cubic => None,
        }
    }

    /// Resamples one line. `buf` has [`padded_len`](Self::padded_len) samples, the input at
    /// `[pad .. pad + n_in]`; it is used as scratch. Writes `n_out` samples into `out`.
    pub(crate) fn apply_line(&self, buf: &mut [f64], out: &mut [f64]) {
        let pad = self.pad();
        let n = self.n_in;
        debug_assert_eq!(buf.len(), n + 2 * pad);
        debug_assert_eq!(out.len(), self.n_out);
        if self.is_identity() {
            out.copy_from_slice(&buf[pad..pad + n]);
            return;
        }
        match self.order {
            Order::Nearest => {
                for (o, &s) in out.iter_mut().zip(&self.start) {
                    *o = buf[s];
                }
            }
            Order::Linear => {
                let last = n - 1;
                for ((o, &s), w) in out.iter_mut().zip(&self.start).zip(&self.weights) {
                    *o = w[0] * buf[s] + w[1] * buf[(s + 1).min(last)];
                }
            }
            Order::Cubic => {
                let (first, last) = (buf[pad], buf[pad + n - 1]);
                buf[..pad].fill(first);
                buf[pad + n..].fill(last);
                prefilter_line(buf);
                for ((o, &s), w) in out.iter_mut().zip(&self.start).zip(&self.weights) {
                    *o = w[0] * buf[s] + w[1] * buf[s + 1] + w[2] * buf[s + 2] + w[3] * buf[s + 3];
                }
            }
        }
    }

    /// [`apply_line`](Self::apply_line) for a plan without padding (orders 0 and 1, or any identity),
    /// reading the f32 input line directly (each sample converted to f64 as it is read, which is exact).
    pub(crate) fn apply_line_f32(&self, src: &[f32], out: &mut [f64]) {
        debug_assert_eq!(src.len(), self.n_in);
        debug_assert_eq!(out.len(), self.n_out);
        if self.is_identity() {
            for (o, &v) in out.iter_mut().zip(src) {
                *o = v as f64;
            }
            return;
        }
        match self.order {
            Order::Nearest => {
                for (o, &s) in out.iter_mut().zip(&self.start) {
                    *o = src[s] as f64;
                }
            }
            Order::Linear => {
                let last = self.n_in - 1;
                for ((o, &s), w) in out.iter_mut().zip(&self.start).zip(&self.weights) {
                    *o = w[0] * src[s] as f64 + w[1] * src[(s + 1).min(last)] as f64;
                }
            }
            Order::Cubic => {
                // padded plans go through the line buffer
                let pad = self.pad();
                let mut buf = vec![0.0; self.padded_len()];
                for (d, &v) in buf[pad..pad + self.n_in].iter_mut().zip(src) {
                    *d = v as f64;
                }
                self.apply_line(&mut buf, out);
            }
        }
    }

    /// Resamples along the outer axis of a row-major block of `padded_len()` rows of `m` samples; the input
    /// rows sit at `[pad .. pad + n_in]` and the block is used as scratch. Each output row `k` is handed to
    /// `emit(k, row)`; `acc` (`m` samples) is scratch.
    pub(crate) fn apply_rows(
        &self,
        block: &mut [f64],
        m: usize,
        acc: &mut [f64],
        mut emit: impl FnMut(usize, &[f64]),
    ) {
        let pad = self.pad();
        debug_assert_eq!(block.len(), self.padded_len() * m);
        debug_assert_eq!(acc.len(), m);
        let row = |i: usize| i * m..(i + 1) * m;
        if self.is_identity() {
            for k in 0..self.n_in {
                emit(k, &block[row(pad + k)]);
            }
            return;
        }
        if self.order == Order::Nearest {
            for (k, &s) in self.start.iter().enumerate() {
                emit(k, &block[row(s)]);
            }
            return;
        }
        self.prepare_rows(block, m);
        for k in 0..self.n_out {
            self.eval_row(block, m, k, acc);
            emit(k, acc);
        }
    }

    /// [`apply_rows`](Self::apply_rows) writing output row `k` to `out[k * m .. (k + 1) * m]`.
    pub(crate) fn apply_rows_into(&self, block: &mut [f64], m: usize, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.n_out * m);
        if self.is_identity() || self.order == Order::Nearest {
            let pad = self.pad();
            for (k, dst) in out.chunks_exact_mut(m).enumerate() {
                let s = if self.is_identity() {
                    pad + k
                } else {
                    self.start[k]
                };
                dst.copy_from_slice(&block[s * m..(s + 1) * m]);
            }
            return;
        }
        self.prepare_rows(block, m);
        for (k, dst) in out.chunks_exact_mut(m).enumerate() {
            self.eval_row(block, m, k, dst);
        }
    }

    /// Order 3: edge padding of the block and the prefilter along its rows; nothing for order 1.
    fn prepare_rows(&self, block: &mut [f64], m: usize) {
        if self.order != Order::Cubic {
            return;
        }
        let pad = self.pad();
        let n = self.n_in;
        let (head, rest) = block.split_at_mut(pad * m);
        let first = &rest[..m];
        for r in head.chunks_exact_mut(m) {
            r.copy_from_slice(first);
        }
        let (body, tail) = block.split_at_mut((pad + n) * m);
        let last = &body[(pad + n - 1) * m..];
        for r in tail.chunks_exact_mut(m) {
            r.copy_from_slice(last);
        }
        prefilter_rows(block, m);
    }

    /// Output row `k` of an order-1 or (prepared) order-3 block into `dst` (`m` samples).
    #[inline]
    fn eval_row(&self, block: &[f64], m: usize, k: usize, dst: &mut [f64]) {
        let row = |i: usize| &block[i * m..(i + 1) * m];
        let s = self.start[k];
        let w = self.weights[k];
        if self.order == Order::Cubic {
            let (r0, r1, r2, r3) = (row(s), row(s + 1), row(s + 2), row(s + 3));
            for ((((a, &x0), &x1), &x2), &x3) in dst.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                *a = w[0] * x0 + w[1] * x1 + w[2] * x2 + w[3] * x3;
            }
        } else {
            let (r0, r1) = (row(s), row((s + 1).min(self.n_in - 1)));
            for ((a, &x0), &x1) in dst.iter_mut().zip(r0).zip(r1) {
                *a = w[0] * x0 + w[1] * x1;
            }
        }
    }
}

/// scipy's `map_coordinate` for `mode='nearest'`: coordinates outside `[0, len - 1]` are clamped.
fn clamp_coordinate(cc: f64, len: usize) -> f64 {
    let hi = (len - 1) as f64;
    if cc < 0.0 {
        0.0
    } else if cc > hi {
        hi
    } else {
        cc
    }
}

fn cubic_gain() -> f64 {
    let z = CUBIC_POLE;
    (1.0 - z) * (1.0 - 1.0 / z)
}

/// In-place cubic B-spline prefilter of one line, as scipy's `apply_filter` with the mirror initialisation
/// that `NI_EXTEND_NEAREST` selects (`_init_causal_mirror` / `_init_anticausal_mirror`). `c.len() >= 3`.
fn prefilter_line(c: &mut [f64]) {
    let z = CUBIC_POLE;
    let n = c.len();
    let gain = cubic_gain();
    for v in c.iter_mut() {
        *v *= gain;
    }
    let z_n_1 = z.powf((n - 1) as f64);
    let mut c0 = c[0] + z_n_1 * c[n - 1];
    let mut z_i = z;
    for i in 1..n - 1 {
        c0 += z_i * (c[i] + z_n_1 * c[n - 1 - i]);
        z_i *= z;
        if z_i.abs() < INIT_TRUNCATION {
            break;
        }
    }
    c[0] = c0 / (1.0 - z_n_1 * z_n_1);
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

/// [`prefilter_line`] applied to every column of a row-major `(len / m) x m` block at once.
fn prefilter_rows(c: &mut [f64], m: usize) {
    let z = CUBIC_POLE;
    let n = c.len() / m;
    let gain = cubic_gain();
    for v in c.iter_mut() {
        *v *= gain;
    }
    let z_n_1 = z.powf((n - 1) as f64);
    let norm = 1.0 - z_n_1 * z_n_1;
    // causal initialisation of row 0
    {
        let (r0, rest) = c.split_at_mut(m);
        let last = &rest[(n - 2) * m..];
        for (a, &b) in r0.iter_mut().zip(last) {
            *a += z_n_1 * b;
        }
        let mut z_i = z;
        for i in 1..n - 1 {
            let ri = &rest[(i - 1) * m..i * m];
            let rm = &rest[(n - 2 - i) * m..(n - 1 - i) * m];
            for ((a, &x), &y) in r0.iter_mut().zip(ri).zip(rm) {
                *a += z_i * (x + z_n_1 * y);
            }
            z_i *= z;
            if z_i.abs() < INIT_TRUNCATION {
                break;
            }
        }
        for a in r0.iter_mut() {
            *a /= norm;
        }
    }
    for i in 1..n {
        let (prev, cur) = c[(i - 1) * m..(i + 1) * m].split_at_mut(m);
        for (a, &p) in cur.iter_mut().zip(prev.iter()) {
            *a += z * p;
        }
    }
    {
        let (prev, last) = c[(n - 2) * m..].split_at_mut(m);
        let d = z * z - 1.0;
        for (a, &p) in last.iter_mut().zip(prev.iter()) {
            *a = (z * p + *a) * z / d;
        }
    }
    for i in (0..n - 1).rev() {
        let (cur, next) = c[i * m..(i + 2) * m].split_at_mut(m);
        for (a, &x) in cur.iter_mut().zip(next.iter()) {
            *a = z * (x - *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_lines_agree() {
        let n_in = 17;
        let m = 3;
        for order in [Order::Nearest, Order::Linear, Order::Cubic] {
            for n_out in [1, 5, 17, 40] {
                let plan = AxisPlan::new(n_in, n_out, order);
                let pad = plan.pad();
                let data: Vec<f64> = (0..n_in * m)
                    .map(|i| ((i * 37 % 23) as f64).sin() * 100.0)
                    .collect();
                let mut block = vec![0.0; plan.padded_len() * m];
                block[pad * m..(pad + n_in) * m].copy_from_slice(&data);
                let mut acc = vec![0.0; m];
                let mut rows = vec![0.0; n_out * m];
                plan.apply_rows(&mut block, m, &mut acc, |k, r| {
                    rows[k * m..(k + 1) * m].copy_from_slice(r)
                });
                for col in 0..m {
                    let mut buf = vec![0.0; plan.padded_len()];
                    for i in 0..n_in {
                        buf[pad + i] = data[i * m + col];
                    }
                    let mut out = vec![0.0; n_out];
                    plan.apply_line(&mut buf, &mut out);
                    for k in 0..n_out {
                        assert!(
                            (out[k] - rows[k * m + col]).abs() < 1e-9,
                            "{order:?} {n_out} {k}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn cubic_reproduces_constants_and_identity_grid() {
        // A constant line stays constant through prefilter and evaluation.
        let plan = AxisPlan::new(9, 20, Order::Cubic);
        let mut buf = vec![0.0; plan.padded_len()];
        buf[SPLINE_PAD..SPLINE_PAD + 9].fill(-1000.0);
        let mut out = vec![0.0; 20];
        plan.apply_line(&mut buf, &mut out);
        assert!(out.iter().all(|v| (v + 1000.0).abs() < 1e-9));
    }
}

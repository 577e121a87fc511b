//! Direct 3-D convolution on the blocked layout (f32), and the shared driver pieces the transposed
//! convolution and the bf16 path reuse.

// Register arrays are indexed by output block and position on purpose: the loops are unrolled.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{Portable, V16};
use super::{blocks_of, run_error, Act, Block, ChannelStats, ConvSpec, Isa, Precision, Xf, LANES};
use crate::EngineError;

/// Output-channel blocks computed together by one micro-kernel call (at most 2: 2 blocks x 12 `x`
/// positions of accumulators; the weights of a slab stay in L1 with them).
pub(super) const MAX_NOB: usize = 2;

/// A run of output-channel blocks `ob0..ob0 + nob` whose weights are packed together.
#[derive(Clone, Debug)]
pub(super) struct Group {
    pub(super) ob0: usize,
    pub(super) nob: usize,
    /// Offset of the group's weights in the packed weight vector, in f32 (or u32 for bf16).
    pub(super) w_off: usize,
}

/// Splits `blocks` output blocks into groups of [`MAX_NOB`], the rest as 1.
pub(super) fn make_groups(blocks: usize, vectors_per_block: usize) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut ob0 = 0;
    let mut w_off = 0;
    while ob0 < blocks {
        let left = blocks - ob0;
        let nob = left.min(MAX_NOB);
        groups.push(Group { ob0, nob, w_off });
        w_off += nob * vectors_per_block * LANES;
        ob0 += nob;
    }
    groups
}

/// Fallible allocation of `n` zeroed 64-byte blocks.
pub(super) fn try_blocks(n: usize) -> Result<Vec<Block>, EngineError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| EngineError::OutOfMemory {
            bytes: n.saturating_mul(64),
        })?;
    v.resize(n, Block([0.0; LANES]));
    Ok(v)
}

pub(super) fn block_slice_mut(v: &mut [Block]) -> &mut [f32] {
    // SAFETY: `Block` is a padding-free `repr(C)` wrapper of `[f32; 16]`.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut f32, v.len() * LANES) }
}

/// A convolution's weights and bias, repacked once for the chosen [`Isa`] and [`Precision`].
///
/// f32 layout, per group of `nob` output blocks: `[in channel][kz][ky][kx][nob][16 output lanes]`, so
/// the micro-kernel reads the `nob` weight vectors of one (input channel, tap) contiguously, and the
/// weights one input block and one `kz` need (a "slab", the unit the driver keeps in L1 while it sweeps
/// the output rows) are 16 runs of `ky * kx * nob * 16` values. Output lanes beyond `out_channels` are 0.
pub struct PackedConv {
    spec: ConvSpec,
    precision: Precision,
    isa: Isa,
    pub(super) groups: Vec<Group>,
    pub(super) weights: Vec<Block>,
    pub(super) bias: Vec<Block>,
    /// bf16 weights (pairs of input channels per u32), when `precision` is bf16 without AMX.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) weights_bf16: Vec<u32>,
    /// Weights for the AMX tiles, when `precision` is bf16 and `isa` is [`Isa::Amx`].
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    amx: Option<super::amx::AmxWeights>,
    /// Weights of the few-output-channel path ([`super::narrow`]), when the layer takes it.
    narrow: Option<super::narrow::NarrowWeights>,
    /// Transformed weights of the Winograd path ([`super::winograd`]), when the layer takes it.
    wino: Option<super::winograd::WinoWeights>,
}

impl PackedConv {
    /// Packs `weight` (PyTorch order `(out, in, kz, ky, kx)`) and `bias` (`out`) for `isa` and
    /// `precision`. Refuses [`Precision::Bf16`] on a CPU without AVX512_BF16, an [`Isa`] this CPU cannot
    /// run, and weights or a bias whose length does not match `spec`.
    ///
    /// An f32 3x3x3 convolution of stride 1 and padding 1 with at least 16 input and output channels
    /// takes the Winograd path ([`PackedConv::uses_winograd`]) unless the environment variable
    /// `NNU_WINOGRAD` is `0` (for comparisons with the direct kernel).
    pub fn new(
        spec: ConvSpec,
        weight: &[f32],
        bias: Option<&[f32]>,
        precision: Precision,
        isa: Isa,
    ) -> Result<Self, EngineError> {
        let winograd = std::env::var("NNU_WINOGRAD").map_or(true, |v| v != "0");
        Self::with_winograd(spec, weight, bias, precision, isa, winograd)
    }

    /// [`PackedConv::new`] with the Winograd path allowed or not, whatever the environment says.
    pub fn with_winograd(
        spec: ConvSpec,
        weight: &[f32],
        bias: Option<&[f32]>,
        precision: Precision,
        isa: Isa,
        winograd: bool,
    ) -> Result<Self, EngineError> {
        let [kz, ky, kx] = spec.kernel;
        let taps = kz * ky * kx;
        if taps == 0 || spec.stride.contains(&0) || spec.in_channels == 0 || spec.out_channels == 0
        {
            return Err(run_error(format!("invalid convolution {spec:?}")));
        }
        if spec.kernel.iter().any(|&k| k > MAX_KERNEL) {
            return Err(run_error(format!(
                "convolution kernel {:?} wider than {MAX_KERNEL} along an axis",
                spec.kernel
            )));
        }
        if (0..3).any(|a| spec.pad[a] >= spec.kernel[a]) {
            return Err(run_error(format!(
                "convolution padding {:?} not smaller than the kernel {:?}",
                spec.pad, spec.kernel
            )));
        }
        let expected = spec.out_channels * spec.in_channels * taps;
        if weight.len() != expected {
            return Err(run_error(format!(
                "convolution {spec:?}: {} weights, expected {expected}",
                weight.len()
            )));
        }
        if let Some(b) = bias {
            if b.len() != spec.out_channels {
                return Err(run_error(format!(
                    "convolution {spec:?}: {} biases, expected {}",
                    b.len(),
                    spec.out_channels
                )));
            }
        }
        if !isa.supported() {
            return Err(run_error(format!("this CPU cannot run {isa:?} kernels")));
        }
        if precision == Precision::Bf16 && !super::bf16_supported() {
            return Err(run_error(
                "bf16 precision needs a CPU with AVX512_BF16 (vdpbf16ps); this one has none".into(),
            ));
        }
        // An image layer of a few channels stays in f32: its input block is mostly padding in bf16,
        // and it is a sliver of the network's work. So does a layer of few output channels (the
        // narrow path, f32 only).
        let narrow_path = super::narrow::eligible(&spec);
        let precision = if precision == Precision::Bf16 && (spec.in_channels < LANES || narrow_path)
        {
            Precision::F32
        } else {
            precision
        };
        let cin = spec.in_channels;
        let out_blocks = blocks_of(spec.out_channels);
        let groups = make_groups(out_blocks, taps * cin);
        let w_at = |oc: usize, ic: usize, t: usize| -> f32 {
            if oc < spec.out_channels {
                weight[(oc * cin + ic) * taps + t]
            } else {
                0.0
            }
        };
        let mut weights = Vec::new();
        let mut weights_bf16 = Vec::new();
        let mut bias_blocks = try_blocks(out_blocks)?;
        if let Some(b) = bias {
            block_slice_mut(&mut bias_blocks)[..b.len()].copy_from_slice(b);
        }
        let mut amx = None;
        let mut narrow = None;
        let mut wino = None;
        if narrow_path {
            narrow = Some(super::narrow::NarrowWeights::new(&spec, &w_at, bias)?);
        } else if precision == Precision::Bf16 && isa == Isa::Amx {
            amx = Some(super::amx::AmxWeights::new(
                spec.out_channels,
                cin,
                taps,
                &w_at,
                &bias_blocks,
            )?);
        } else if precision == Precision::F32 && winograd && super::winograd::eligible(&spec) {
            wino = Some(super::winograd::WinoWeights::new(&spec, &w_at)?);
        } else if precision == Precision::F32 {
            weights = try_blocks(out_blocks * taps * cin)?;
            let w = block_slice_mut(&mut weights);
            for g in &groups {
                for ic in 0..cin {
                    for t in 0..taps {
                        for o in 0..g.nob {
                            for l in 0..LANES {
                                let oc = (g.ob0 + o) * LANES + l;
                                w[g.w_off + ((ic * taps + t) * g.nob + o) * LANES + l] =
                                    w_at(oc, ic, t);
                            }
                        }
                    }
                }
            }
        } else {
            weights_bf16 = super::bf16::pack_weights(&spec, &groups, &w_at)?;
        }
        Ok(PackedConv {
            spec,
            precision,
            isa,
            groups,
            weights,
            bias: bias_blocks,
            weights_bf16,
            amx,
            narrow,
            wino,
        })
    }

    /// The convolution's shape.
    pub fn spec(&self) -> &ConvSpec {
        &self.spec
    }

    /// The precision the weights were packed for.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The instruction set the weights were packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Output spatial shape for an input of `in_dims` (see [`ConvSpec::out_dims`]).
    pub fn out_dims(&self, in_dims: [usize; 3]) -> [usize; 3] {
        self.spec.out_dims(in_dims)
    }

    /// Whether this convolution runs as Winograd F(2x2x2, 3x3x3) (f32 3x3x3, stride 1, padding 1, at
    /// least 16 input and output channels; see [`PackedConv::new`]) instead of the direct kernel.
    pub fn uses_winograd(&self) -> bool {
        self.wino.is_some()
    }

    /// Whether this convolution applies a deferred input's normalisation as it reads
    /// ([`super::defer_norm_act`]): the narrow path (segmented planes) and bf16 (conversion) do; the f32
    /// blocked kernel reads its input in place and needs it [`super::materialize`]d.
    pub fn reads_deferred(&self) -> bool {
        self.narrow.is_some() || self.precision == Precision::Bf16
    }
}

/// A raw pointer that may cross threads; every use documents which disjoint part it touches.
#[derive(Clone, Copy)]
pub(super) struct SendPtr<T>(pub(super) *mut T);
// SAFETY: the pointee is only accessed at indices the work partition gives to one thread.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

/// One 16-channel block of one input source.
#[derive(Clone, Copy)]
pub(super) struct InBlock {
    /// Start of the source's data.
    pub(super) data: SendPtr<f32>,
    /// Block index within its source.
    pub(super) ib: usize,
    /// Global input channel of the block's lane 0.
    pub(super) ic0: usize,
    /// Valid lanes (channels) of the block.
    pub(super) lanes: usize,
    /// The source's deferred normalisation and activation of this block, which the reader applies.
    pub(super) xf: Option<Xf>,
}

/// The input blocks of concatenated sources, checked against `in_channels`.
pub(super) fn input_blocks(
    inputs: &[&Act],
    in_channels: usize,
) -> Result<(Vec<InBlock>, [usize; 3]), EngineError> {
    let Some(first) = inputs.first() else {
        return Err(run_error("convolution without input".into()));
    };
    let dims = first.dims();
    let total: usize = inputs.iter().map(|a| a.channels()).sum();
    if total != in_channels {
        return Err(run_error(format!(
            "convolution expects {in_channels} input channels, the inputs have {total}"
        )));
    }
    let mut blocks = Vec::new();
    let mut ic_off = 0;
    for a in inputs {
        if a.dims() != dims {
            return Err(run_error(format!(
                "concatenated inputs differ in shape: {:?} and {:?}",
                dims,
                a.dims()
            )));
        }
        let data = SendPtr(a.as_slice().as_ptr() as *mut f32);
        for ib in 0..a.blocks() {
            blocks.push(InBlock {
                data,
                ib,
                ic0: ic_off + ib * LANES,
                lanes: (a.channels() - ib * LANES).min(LANES),
                xf: a.xf(ib),
            });
        }
        ic_off += a.channels();
    }
    Ok((blocks, dims))
}

/// One input row as the micro-kernel reads it: its `x` data (padded coordinates: index 0 is the first
/// padding position), the weights of its (kz, ky) tap and first input channel, and the valid lanes.
#[derive(Clone, Copy)]
pub(super) struct Row<T> {
    pub(super) x: *const T,
    pub(super) w: *const T,
    pub(super) lanes: usize,
}

/// How the accumulators start.
#[derive(Clone, Copy)]
pub(super) enum Init {
    /// From the `nob` bias vectors at this address.
    Bias(*const f32),
    /// From the output (a later chunk of input channels).
    Accumulate,
}

/// Arguments of one micro-kernel call except the `x` position.
pub(super) struct Micro<'a, T> {
    pub(super) rows: &'a [Row<T>],
    /// Kernel taps along x.
    pub(super) kw: usize,
    /// Elements between the inputs of consecutive outputs (stride x * 16, or * 8 for bf16 pairs).
    pub(super) in_sx: usize,
    /// Elements between the weights of consecutive x taps.
    pub(super) w_kx: usize,
    /// Elements between the weights of consecutive input channels (f32 micro-kernel only; the bf16
    /// one walks channel pairs `nob * 16` apart).
    pub(super) w_l: usize,
    /// Output of `x = 0` of the first block.
    pub(super) out: *mut f32,
    /// Elements between consecutive outputs along x.
    pub(super) out_sx: usize,
    /// Elements between output blocks.
    pub(super) out_sob: usize,
    pub(super) init: Init,
}

/// Accumulator start values.
#[inline(always)]
pub(super) unsafe fn init_acc<V: V16, T, const NOB: usize, const NX: usize>(
    m: &Micro<T>,
    out: *mut f32,
) -> [[V; NX]; NOB] {
    let mut acc = [[unsafe { V::zero() }; NX]; NOB];
    match m.init {
        Init::Bias(b) => {
            for (o, acc_o) in acc.iter_mut().enumerate() {
                let v = unsafe { V::load(b.add(o * LANES)) };
                for a in acc_o.iter_mut() {
                    *a = v;
                }
            }
        }
        Init::Accumulate => {
            for (o, acc_o) in acc.iter_mut().enumerate() {
                for (j, a) in acc_o.iter_mut().enumerate() {
                    *a = unsafe { V::load(out.add(o * m.out_sob + j * m.out_sx)) };
                }
            }
        }
    }
    acc
}

#[inline(always)]
pub(super) unsafe fn store_acc<V: V16, T, const NOB: usize, const NX: usize>(
    m: &Micro<T>,
    out: *mut f32,
    acc: &[[V; NX]; NOB],
) {
    for (o, acc_o) in acc.iter().enumerate() {
        for (j, a) in acc_o.iter().enumerate() {
            unsafe { a.store(out.add(o * m.out_sob + j * m.out_sx)) };
        }
    }
}

/// The f32 micro-kernel: `NOB` output blocks times `NX` outputs along x starting at `ox0`, with x
/// stride `SX` (0: any stride, only with `NX == 1`).
///
/// # Safety
/// The CPU runs `V`; every row holds the padded input positions `ox0 * stride .. (ox0 + NX - 1) * stride
/// + kw` (times 16 lanes); each row's weights hold `kw` taps of `lanes` input channels of `NOB` blocks;
/// the output holds `NOB` blocks of `NX` positions from `ox0`, touched by no other thread.
#[inline(always)]
unsafe fn micro<V: V16, const NOB: usize, const NX: usize, const SX: usize>(
    m: &Micro<f32>,
    ox0: usize,
) {
    let sx = if SX == 0 { m.in_sx } else { SX * LANES };
    let out = unsafe { m.out.add(ox0 * m.out_sx) };
    let mut acc = unsafe { init_acc::<V, f32, NOB, NX>(m, out) };
    let xoff = ox0 * sx;
    for row in m.rows {
        for kx in 0..m.kw {
            // SAFETY (whole block): offsets stay inside the row and weight ranges the caller promised.
            unsafe {
                // wrapping: an inner view's base lies before its row (see `Edges`)
                let x = row.x.wrapping_add(xoff + kx * LANES);
                let w = row.w.add(kx * m.w_kx);
                for l in 0..row.lanes {
                    let wl = w.add(l * m.w_l);
                    let mut wv = [V::zero(); NOB];
                    for (o, wo) in wv.iter_mut().enumerate() {
                        *wo = V::load(wl.add(o * LANES));
                    }
                    for j in 0..NX {
                        let b = V::splat_from(x.add(j * sx + l));
                        for o in 0..NOB {
                            acc[o][j] = acc[o][j].fma(b, wv[o]);
                        }
                    }
                }
            }
        }
    }
    unsafe { store_acc::<V, f32, NOB, NX>(m, out, &acc) };
}

/// The rows of one output row as three views: `edge[0]` for tiles that read the left `x` padding,
/// `edge[1]` for tiles inside the input, `edge[2]` for tiles that read the right padding. Each view's row
/// pointers are based so that padded position `p` is at `x + p * 16`; only the edge views are staged
/// copies, the inner one points into the source itself.
pub(super) struct Edges<'a, 'b> {
    pub(super) views: [&'a Micro<'b, f32>; 3],
    /// Left padding (positions below it are in the left view).
    pub(super) px: usize,
    /// End of the input in padded positions, `px + ix_n` (spans past it are in the right view).
    pub(super) lim: usize,
}

/// One tile of `NX` outputs from `ox0`, with the view its input span needs.
#[inline(always)]
unsafe fn tile<V: V16, const NOB: usize, const NX: usize, const SX: usize>(e: &Edges, ox0: usize) {
    let m0 = e.views[1];
    let sx = if SX == 0 { m0.in_sx / LANES } else { SX };
    let start = ox0 * sx;
    let end = (ox0 + NX - 1) * sx + m0.kw;
    let m = if start < e.px {
        e.views[0]
    } else if end > e.lim {
        e.views[2]
    } else {
        m0
    };
    // SAFETY: the chosen view holds the tile's input span (caller's promise for `Edges`).
    unsafe { micro::<V, NOB, NX, SX>(m, ox0) }
}

/// All `ox_n` outputs of one row: the widest kernel first, then narrower ones for the rest.
#[inline(always)]
unsafe fn row_f32<V: V16, const NOB: usize, const MAIN: usize, const SX: usize>(
    e: &Edges,
    ox_n: usize,
) {
    let mut ox = 0;
    // SAFETY: each call covers outputs below `ox_n`, as the caller's promise for the row requires.
    unsafe {
        if SX == 0 {
            while ox < ox_n {
                tile::<V, NOB, 1, 0>(e, ox);
                ox += 1;
            }
            return;
        }
        while ox + MAIN <= ox_n {
            tile::<V, NOB, MAIN, SX>(e, ox);
            ox += MAIN;
        }
        while ox + 4 <= ox_n {
            tile::<V, NOB, 4, SX>(e, ox);
            ox += 4;
        }
        if ox + 2 <= ox_n {
            tile::<V, NOB, 2, SX>(e, ox);
            ox += 2;
        }
        if ox < ox_n {
            tile::<V, NOB, 1, SX>(e, ox);
        }
    }
}

/// [`row_edges`] with one view for every tile (rows staged whole, or no padding).
#[inline(always)]
pub(super) unsafe fn row_dispatch<V: V16>(m: &Micro<f32>, nob: usize, sx: usize, ox_n: usize) {
    let e = Edges {
        views: [m, m, m],
        px: 0,
        lim: usize::MAX,
    };
    // SAFETY: forwarded caller promise.
    unsafe { row_edges::<V>(&e, nob, sx, ox_n) }
}

/// One output row with the widest micro-kernel for `nob` output blocks and stride `sx`.
#[inline(always)]
pub(super) unsafe fn row_edges<V: V16>(e: &Edges, nob: usize, sx: usize, ox_n: usize) {
    // SAFETY: forwarded caller promise.
    unsafe {
        match (nob, sx) {
            (2, 1) => row_f32::<V, 2, 12, 1>(e, ox_n),
            (2, 2) => row_f32::<V, 2, 12, 2>(e, ox_n),
            (2, _) => row_f32::<V, 2, 1, 0>(e, ox_n),
            (_, 1) => row_f32::<V, 1, 16, 1>(e, ox_n),
            (_, 2) => row_f32::<V, 1, 16, 2>(e, ox_n),
            _ => row_f32::<V, 1, 1, 0>(e, ox_n),
        }
    }
}

/// Everything one work item of a convolution needs.
pub(super) struct ConvCtx<'a> {
    pub(super) spec: &'a ConvSpec,
    pub(super) groups: &'a [Group],
    pub(super) in_dims: [usize; 3],
    pub(super) out_dims: [usize; 3],
    /// Input blocks of all concatenated sources.
    pub(super) blocks: &'a [InBlock],
    /// Output rows per work item.
    pub(super) oy_step: usize,
    pub(super) out: SendPtr<f32>,
    pub(super) bias: *const f32,
    pub(super) weights: *const f32,
    pub(super) want_stats: bool,
}
// SAFETY: the raw pointers are read-only (weights, bias) or written at disjoint parts per work item (out).
unsafe impl Sync for ConvCtx<'_> {}

thread_local! {
    /// Staged (x-padded) input rows of the current work item.
    pub(super) static SCRATCH: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Per-lane sums and sums of squares of `nob` output blocks of one row, added to `st`
/// (`[sum of nob * 16 lanes][sumsq of nob * 16 lanes]`).
#[inline(always)]
pub(super) unsafe fn row_stats<V: V16>(
    out: *const f32,
    out_sob: usize,
    nob: usize,
    ox_n: usize,
    st: &mut [f64],
) {
    for o in 0..nob {
        // SAFETY: the caller's row of `nob` blocks of `ox_n` positions.
        unsafe {
            let mut s = V::zero();
            let mut q = V::zero();
            for x in 0..ox_n {
                let v = V::load(out.add(o * out_sob + x * LANES));
                s = s.add(v);
                q = q.fma(v, v);
            }
            let mut sa = [0.0f32; LANES];
            let mut qa = [0.0f32; LANES];
            s.store(sa.as_mut_ptr());
            q.store(qa.as_mut_ptr());
            for l in 0..LANES {
                st[o * LANES + l] += sa[l] as f64;
                st[MAX_NOB * LANES + o * LANES + l] += qa[l] as f64;
            }
        }
    }
}

/// Copies an input row into `dst` with `pad` zero positions on each side.
///
/// # Safety
/// `src` holds `n * 16` values, `dst` `(n + 2 * pad) * 16`.
#[inline(always)]
pub(super) unsafe fn stage_row<T: Copy + Default>(
    src: *const T,
    dst: *mut T,
    n: usize,
    pad: usize,
    lanes: usize,
) {
    unsafe {
        std::ptr::write_bytes(dst, 0, pad * lanes);
        std::ptr::copy_nonoverlapping(src, dst.add(pad * lanes), n * lanes);
        std::ptr::write_bytes(dst.add((pad + n) * lanes), 0, pad * lanes);
    }
}

/// Valid input coordinate of output `o`, tap `k`, or `None` in the padding.
#[inline(always)]
pub(super) fn tap_coord(o: usize, k: usize, stride: usize, pad: usize, n: usize) -> Option<usize> {
    let i = (o * stride + k).checked_sub(pad)?;
    (i < n).then_some(i)
}

/// The taps `k < k_n` of output coordinate `o` that fall inside the input (of `n`), with their input
/// coordinates: `(taps, count)`. Kernels are at most [`MAX_KERNEL`] wide (checked by `PackedConv::new`).
#[inline(always)]
pub(super) fn valid_taps(
    o: usize,
    k_n: usize,
    stride: usize,
    pad: usize,
    n: usize,
) -> ([(usize, usize); MAX_KERNEL], usize) {
    let mut taps = [(0usize, 0usize); MAX_KERNEL];
    let mut count = 0;
    for k in 0..k_n.min(MAX_KERNEL) {
        if let Some(i) = tap_coord(o, k, stride, pad, n) {
            taps[count] = (k, i);
            count += 1;
        }
    }
    (taps, count)
}

/// Widest kernel along one axis.
pub(super) const MAX_KERNEL: usize = 16;

/// How the output rows of a plane are split into work items: `(ysplit, oy_step)`, so that `planes`
/// (groups times output planes) times `ysplit` gives each of the pool's threads about 8 items.
pub(super) fn row_split(planes: usize, oy_n: usize) -> (usize, usize) {
    let wanted = 8 * rayon::current_num_threads();
    let ysplit = wanted.div_ceil(planes.max(1)).clamp(1, oy_n.max(1));
    let oy_step = oy_n.div_ceil(ysplit).max(1);
    (oy_n.div_ceil(oy_step), oy_step)
}

/// One work item: output rows `ys * oy_step ..` of plane `oz` of group `g`.
///
/// Loop order (Georganas et al.'s, for weights that stay in L1): for each input block and each valid
/// `kz` (a slab of `ky * kx * 16` input channel-taps whose weights are at most `9 * 16 * 2 * 64` bytes),
/// sweep every output row of the item and every `x` tile of it, loading the accumulators from the output
/// (or the bias, for the first slab) and storing them back. The statistics of a row are gathered after
/// its last slab.
///
/// # Safety
/// The CPU runs `V`; `ctx` describes valid inputs, weights and an output of `out_dims`, whose rows of
/// this item no other thread touches.
#[inline(always)]
unsafe fn conv_item<V: V16>(ctx: &ConvCtx, g: usize, oz: usize, ys: usize, st: &mut [f64]) {
    let spec = ctx.spec;
    let group = &ctx.groups[g];
    let [kz_n, ky_n, kx_n] = spec.kernel;
    let [sz, sy, sx] = spec.stride;
    let [pz, py, px] = spec.pad;
    let [iz_n, iy_n, ix_n] = ctx.in_dims;
    let [oz_n, oy_n, ox_n] = ctx.out_dims;
    let taps = kz_n * ky_n * kx_n;
    let nob = group.nob;
    let wp = ix_n + 2 * px;
    let out_sob = oz_n * oy_n * ox_n * LANES;
    let oy_lo = ys * ctx.oy_step;
    let oy_hi = (oy_lo + ctx.oy_step).min(oy_n);
    let (kzs, n_kz) = valid_taps(oz, kz_n, sz, pz, iz_n);
    let n_slabs = ctx.blocks.len() * n_kz;
    // No closure from here on: a closure would not inherit this function's target features, and the
    // SIMD intrinsics inside it would become calls.
    // Rows wider than `edge` positions are staged only at their two ends (`edge` positions each, enough
    // for any tile that reads padding); narrower rows are staged whole.
    let edge = px + 16 * sx + kx_n;
    let split = px > 0 && ix_n >= edge;
    let staged = if split { 2 * edge } else { wp };
    let mut scratch = SCRATCH.take();
    if px > 0 && scratch.len() < ky_n * staged {
        scratch.resize(ky_n * staged, Block([0.0; LANES]));
    }
    let scratch_ptr = scratch.as_mut_ptr() as *mut f32;
    let mut rows: Vec<Row<f32>> = Vec::with_capacity(ky_n);
    let mut rows_l: Vec<Row<f32>> = Vec::with_capacity(ky_n);
    let mut rows_r: Vec<Row<f32>> = Vec::with_capacity(ky_n);
    let mut slab = 0;
    for blk in ctx.blocks {
        for &(kz, iz) in &kzs[..n_kz] {
            let first = slab == 0;
            let last = slab + 1 == n_slabs;
            slab += 1;
            for oy in oy_lo..oy_hi {
                rows.clear();
                rows_l.clear();
                rows_r.clear();
                for ky in 0..ky_n {
                    let Some(iy) = tap_coord(oy, ky, sy, py, iy_n) else {
                        continue;
                    };
                    let w = unsafe {
                        ctx.weights.add(
                            group.w_off + (blk.ic0 * taps + (kz * ky_n + ky) * kx_n) * nob * LANES,
                        )
                    };
                    // SAFETY: in-bounds row of the source; scratch holds `ky_n` staged rows of
                    // `staged` positions. The based pointers are only dereferenced at padded
                    // positions their view holds (see `Edges`).
                    let (x, xl, xr) = unsafe {
                        let src = blk
                            .data
                            .0
                            .add(((blk.ib * iz_n + iz) * iy_n + iy) * ix_n * LANES)
                            as *const f32;
                        let dst = scratch_ptr.add(rows.len() * staged * LANES);
                        if px == 0 {
                            (src, src, src)
                        } else if !split {
                            stage_row(src, dst, ix_n, px, LANES);
                            (dst as *const f32, dst as *const f32, dst as *const f32)
                        } else {
                            // left: padded positions 0..edge
                            std::ptr::write_bytes(dst, 0, px * LANES);
                            std::ptr::copy_nonoverlapping(
                                src,
                                dst.add(px * LANES),
                                (edge - px) * LANES,
                            );
                            // right: padded positions wp - edge .. wp
                            let r = dst.add(edge * LANES);
                            let r0 = wp - edge;
                            std::ptr::copy_nonoverlapping(
                                src.add((r0 - px) * LANES),
                                r,
                                (ix_n + px - r0) * LANES,
                            );
                            std::ptr::write_bytes(r.add((ix_n + px - r0) * LANES), 0, px * LANES);
                            (
                                src.wrapping_sub(px * LANES),
                                dst as *const f32,
                                (r as *const f32).wrapping_sub(r0 * LANES),
                            )
                        }
                    };
                    rows.push(Row {
                        x,
                        w,
                        lanes: blk.lanes,
                    });
                    rows_l.push(Row {
                        x: xl,
                        w,
                        lanes: blk.lanes,
                    });
                    rows_r.push(Row {
                        x: xr,
                        w,
                        lanes: blk.lanes,
                    });
                }
                let out = unsafe {
                    ctx.out
                        .0
                        .add((((group.ob0 * oz_n + oz) * oy_n + oy) * ox_n) * LANES)
                };
                let m = Micro {
                    rows: &rows,
                    kw: kx_n,
                    in_sx: sx * LANES,
                    w_kx: nob * LANES,
                    w_l: taps * nob * LANES,
                    out,
                    out_sx: LANES,
                    out_sob,
                    init: if first {
                        Init::Bias(unsafe { ctx.bias.add(group.ob0 * LANES) })
                    } else {
                        Init::Accumulate
                    },
                };
                let ml = Micro { rows: &rows_l, ..m };
                let mr = Micro { rows: &rows_r, ..m };
                let e = Edges {
                    views: [&ml, &m, &mr],
                    px,
                    lim: px + ix_n,
                };
                unsafe { row_edges::<V>(&e, nob, sx, ox_n) };
                if last && ctx.want_stats {
                    unsafe { row_stats::<V>(out, out_sob, nob, ox_n, st) };
                }
            }
        }
    }
    SCRATCH.set(scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_item_avx512(ctx: &ConvCtx, g: usize, oz: usize, ys: usize, st: &mut [f64]) {
    unsafe { conv_item::<Avx512>(ctx, g, oz, ys, st) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_item_avx2(ctx: &ConvCtx, g: usize, oz: usize, ys: usize, st: &mut [f64]) {
    unsafe { conv_item::<Avx2>(ctx, g, oz, ys, st) }
}

fn conv_item_portable(ctx: &ConvCtx, g: usize, oz: usize, ys: usize, st: &mut [f64]) {
    // SAFETY: portable code runs everywhere; the context is valid (built by `conv3d`).
    unsafe { conv_item::<Portable>(ctx, g, oz, ys, st) }
}

/// Runs `item(g, oz, ys, stats)` over all (group, output plane, row split `ys < ysplit`) triples on
/// rayon's current pool and fills `stats` when wanted.
pub(super) fn run_items<F>(
    groups: &[Group],
    oz_n: usize,
    ysplit: usize,
    voxels: usize,
    out_channels: usize,
    stats: Option<&mut ChannelStats>,
    item: F,
) where
    F: Fn(usize, usize, usize, &mut [f64]) + Sync,
{
    let want = stats.is_some();
    let per_group = oz_n * ysplit;
    let n_items = groups.len() * per_group;
    let partial: Vec<Vec<f64>> = (0..n_items)
        .into_par_iter()
        .map(|i| {
            let mut st = if want {
                vec![0.0; 2 * MAX_NOB * LANES]
            } else {
                Vec::new()
            };
            let (g, r) = (i / per_group, i % per_group);
            item(g, r / ysplit, r % ysplit, &mut st);
            st
        })
        .collect();
    if let Some(stats) = stats {
        stats.sum = vec![0.0; out_channels];
        stats.sumsq = vec![0.0; out_channels];
        stats.count = voxels;
        for (i, st) in partial.iter().enumerate() {
            let g = &groups[i / per_group];
            for o in 0..g.nob {
                for l in 0..LANES {
                    let c = (g.ob0 + o) * LANES + l;
                    if c < out_channels {
                        stats.sum[c] += st[o * LANES + l];
                        stats.sumsq[c] += st[MAX_NOB * LANES + o * LANES + l];
                    }
                }
            }
        }
    }
}

/// 3-D convolution of the channel concatenation of `inputs` into `out` (reshaped to the output shape,
/// reusing its allocation when large enough).
///
/// `inputs` are read in order as one tensor of `spec.in_channels` channels (nnU-Net's skip
/// concatenation, never copied); their spatial shapes must be equal. Work is spread over rayon's current
/// pool. With `stats`, the per-channel sum and sum of squares of the output are gathered for
/// [`super::norm_act`].
pub fn conv3d(
    inputs: &[&Act],
    conv: &PackedConv,
    out: &mut Act,
    stats: Option<&mut ChannelStats>,
) -> Result<(), EngineError> {
    let spec = &conv.spec;
    let (blocks, in_dims) = input_blocks(inputs, spec.in_channels)?;
    let out_dims = spec.out_dims(in_dims);
    if out_dims.contains(&0) {
        return Err(run_error(format!(
            "convolution {spec:?} does not fit an input of {in_dims:?}"
        )));
    }
    if !conv.reads_deferred() && blocks.iter().any(|b| b.xf.is_some()) {
        return Err(run_error(format!(
            "convolution {spec:?} reads its input in place: materialise the deferred input first"
        )));
    }
    out.reshape(spec.out_channels, out_dims)?;
    if let Some(nw) = &conv.narrow {
        return super::narrow::run(spec, nw, conv.isa, &blocks, in_dims, out, stats);
    }
    if let Some(ww) = &conv.wino {
        return super::winograd::run(spec, ww, &conv.bias, conv.isa, &blocks, out, stats);
    }
    if conv.precision == Precision::Bf16 {
        #[cfg(target_arch = "x86_64")]
        if let Some(amx) = &conv.amx {
            return super::amx::run(spec, amx, &blocks, in_dims, out, stats);
        }
        return super::bf16::conv3d_bf16(conv, &blocks, in_dims, out, stats);
    }
    // Enough items for the pool's threads to balance: split the rows of a plane when the planes of all
    // groups are few (the deep layers).
    let (ysplit, oy_step) = row_split(conv.groups.len() * out_dims[0], out_dims[1]);
    let ctx = ConvCtx {
        spec,
        groups: &conv.groups,
        in_dims,
        out_dims,
        blocks: &blocks,
        oy_step,
        out: SendPtr(out.as_mut_slice().as_mut_ptr()),
        bias: conv.bias.as_ptr() as *const f32,
        weights: conv.weights.as_ptr() as *const f32,
        want_stats: stats.is_some(),
    };
    let voxels = out_dims.iter().product();
    let isa = conv.isa;
    run_items(
        &conv.groups,
        out_dims[0],
        ysplit,
        voxels,
        spec.out_channels,
        stats,
        |g, oz, ys, st| {
            match isa {
                // SAFETY: `PackedConv::new` checked that the CPU runs `isa`; each (g, oz, ys) item
                // writes only its own output rows of its own blocks.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Amx => unsafe { conv_item_avx512(&ctx, g, oz, ys, st) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { conv_item_avx2(&ctx, g, oz, ys, st) },
                _ => conv_item_portable(&ctx, g, oz, ys, st),
            }
        },
    );
    Ok(())
}

//! Convolutions with few output channels (at most 8, stride 1): the first level of a network with a small
//! base (the demo's UNet++ has 4 features there, nnU-Net's small plans 8).
//!
//! The blocked kernel of [`super::conv`] puts 16 output channels in a vector; with 4 of them, three
//! quarters of every multiply-add is padding. Here a vector holds `Q = 16 / P` output positions of `P`
//! channels (`P`: the output channels rounded up to a power of two), lane `oc * Q + s`, so every lane is
//! useful.
//!
//! The input is read from *segmented planes*. An input plane (one `z`) is zero-padded in `y` and `x` and
//! flattened: output `(oy, ox)` is flat position `f = oy * wp + ox` (`wp` the padded row width) and its tap
//! `(ky, kx)` reads flat position `f + t`, `t = ky * wp + kx`. The flat outputs are cut into `Q` segments
//! of `M` positions, and vector `m` holds positions `s M + m` (`s < Q`). Its input for tap `t` is positions
//! `s M + m + t`: the `Q` values that the segmented plane stores side by side at row `m + t`, one row per
//! position `j < M + t_max` and input channel (`P` channels per 64-byte line). The hot loop loads them
//! with one broadcast load (the `Q` values repeated `P` times, [`V16::load_rep`]: no shuffle, no gather,
//! no branch) and multiplies them with the tap's weight vector (lane `oc * Q + s`: the weight of `oc`).
//! Positions in the padding columns (`ox >= out x`) are computed and dropped.
//!
//! A work item is a run of output planes. It keeps a ring of `kz` segmented input planes, so each input
//! plane is segmented once per item while it is hot in cache. Accumulators live in a per-plane buffer of
//! `M` vectors; for each group of `P` input channels and each `kz` (a slab whose input stays in L1), tiles
//! of [`NV`] vectors (24 accumulators in registers) sweep the whole plane. Statistics for the
//! normalisation are gathered as the plane is written.
//!
//! Generic over [`V16`] like the blocked kernel, so the AVX-512, AVX2 and portable builds share it.

// Register arrays are indexed by vector on purpose: the loops are unrolled.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{Portable, V16};
use super::{conv::InBlock, Act, Block, ChannelStats, ConvSpec, Isa, Xf, LANES};
use crate::EngineError;

/// Output vectors per tile (accumulators held in registers).
const NV: usize = 24;

/// Widest output channel count this path takes.
pub(super) const MAX_OUT: usize = 8;

/// Whether a convolution goes through this path: at most [`MAX_OUT`] output channels, stride 1, and more
/// than one tap (a 1x1x1 head reads each input once; replicating its input would cost as much as it
/// computes).
pub(super) fn eligible(spec: &ConvSpec) -> bool {
    spec.out_channels <= MAX_OUT
        && spec.stride == [1, 1, 1]
        && spec.kernel.iter().product::<usize>() > 1
}

/// Weights and bias of a narrow convolution: per (input channel, kz, ky, kx) one 16-lane vector whose lane
/// `oc * q + s` holds the weight of output channel `oc` (0 beyond the output channels), for input
/// channels rounded up to a multiple of `p` (the extra ones 0).
pub(super) struct NarrowWeights {
    /// Output channels rounded up to a power of two (1, 2, 4 or 8).
    p: usize,
    weights: Vec<Block>,
    bias: Block,
}

impl NarrowWeights {
    /// Packs the weights; `w_at(oc, ic, tap)` as in `PackedConv::new` (0 for `oc >= out_channels`).
    pub(super) fn new(
        spec: &ConvSpec,
        w_at: &dyn Fn(usize, usize, usize) -> f32,
        bias: Option<&[f32]>,
    ) -> Result<Self, EngineError> {
        let p = spec.out_channels.next_power_of_two();
        let q = LANES / p;
        let taps: usize = spec.kernel.iter().product();
        let channels = spec.in_channels.next_multiple_of(p);
        let mut weights = super::conv::try_blocks(channels * taps)?;
        for ic in 0..spec.in_channels {
            for t in 0..taps {
                let b = &mut weights[ic * taps + t].0;
                for (l, v) in b.iter_mut().enumerate() {
                    *v = w_at(l / q, ic, t);
                }
            }
        }
        let mut bias_block = Block([0.0; LANES]);
        if let Some(b) = bias {
            for (l, v) in bias_block.0.iter_mut().enumerate() {
                let oc = l / q;
                *v = if oc < spec.out_channels { b[oc] } else { 0.0 };
            }
        }
        Ok(NarrowWeights {
            p,
            weights,
            bias: bias_block,
        })
    }
}

/// Geometry of one call, shared by every work item.
struct Ctx<'a> {
    blocks: &'a [InBlock],
    /// Each block's deferred normalisation as segmented lines, made once per call.
    lines: Vec<Option<LineXf>>,
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 3],
    pad: [usize; 3],
    in_dims: [usize; 3],
    out_dims: [usize; 3],
    /// Padded row width of a plane.
    wp: usize,
    /// Flat output positions of a plane that hold outputs, `(oy_n - 1) * wp + ox_n`, and the vectors
    /// per segment, `M` (a multiple of [`NV`]).
    flat: usize,
    vectors: usize,
    /// Rows of a segmented plane, `M + t_max`.
    rows: usize,
    /// Groups of `p` input channels.
    groups: usize,
    /// Output planes per work item.
    chunk: usize,
    weights: *const f32,
    bias: *const f32,
    out: *mut f32,
}
// SAFETY: weights, bias and inputs are only read; each work item writes only its own output planes.
unsafe impl Sync for Ctx<'_> {}

thread_local! {
    /// The ring of segmented input planes and the accumulators of the current work item.
    static RING: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs the convolution of `blocks` (the concatenated inputs, `in_dims`) into `out` (already shaped).
pub(super) fn run(
    spec: &ConvSpec,
    nw: &NarrowWeights,
    isa: Isa,
    blocks: &[InBlock],
    in_dims: [usize; 3],
    out: &mut Act,
    stats: Option<&mut ChannelStats>,
) -> Result<(), EngineError> {
    let out_dims = out.dims();
    let [_, ky_n, kx_n] = spec.kernel;
    let p = nw.p;
    let q = LANES / p;
    let wp = in_dims[2] + 2 * spec.pad[2];
    let flat = (out_dims[1] - 1) * wp + out_dims[2];
    let vectors = flat.div_ceil(q).div_ceil(NV) * NV;
    let rows = vectors + (ky_n - 1) * wp + kx_n - 1;
    let threads = rayon::current_num_threads().max(1);
    let chunk = out_dims[0].div_ceil(2 * threads).max(1);
    let ctx = Ctx {
        blocks,
        lines: blocks
            .iter()
            .map(|blk| blk.xf.map(|t| LineXf::new(&t, p)))
            .collect(),
        in_channels: spec.in_channels,
        out_channels: spec.out_channels,
        kernel: spec.kernel,
        pad: spec.pad,
        in_dims,
        out_dims,
        wp,
        flat,
        vectors,
        rows,
        groups: spec.in_channels.div_ceil(p),
        chunk,
        weights: nw.weights.as_ptr() as *const f32,
        bias: nw.bias.0.as_ptr(),
        out: out.as_mut_slice().as_mut_ptr(),
    };
    let items = out_dims[0].div_ceil(chunk);
    let partial: Vec<Result<[f64; 2 * MAX_OUT], EngineError>> = (0..items)
        .into_par_iter()
        .map(|i| {
            let mut st = [0.0f64; 2 * MAX_OUT];
            // SAFETY: `PackedConv::new` checked that the CPU runs `isa`; item `i` writes only its own
            // output planes.
            let r = unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 | Isa::Amx => item_avx512(&ctx, p, i, &mut st),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => item_avx2(&ctx, p, i, &mut st),
                    _ => item_portable(&ctx, p, i, &mut st),
                }
            };
            r.map(|()| st)
        })
        .collect();
    let mut total = [0.0f64; 2 * MAX_OUT];
    for r in partial {
        for (t, v) in total.iter_mut().zip(r?) {
            *t += v;
        }
    }
    if let Some(stats) = stats {
        let c = spec.out_channels;
        stats.sum = total[..c].to_vec();
        stats.sumsq = total[MAX_OUT..MAX_OUT + c].to_vec();
        stats.count = out_dims.iter().product();
    }
    Ok(())
}

type Stats = [f64; 2 * MAX_OUT];

/// The work item for `p` output lanes per position (`q = 16 / p` positions per vector).
#[inline(always)]
unsafe fn item_p<V: V16>(ctx: &Ctx, p: usize, i: usize, st: &mut Stats) -> Result<(), EngineError> {
    // SAFETY: forwarded.
    unsafe {
        match p {
            1 => item::<V, 1, 16>(ctx, i, st),
            2 => item::<V, 2, 8>(ctx, i, st),
            4 => item::<V, 4, 4>(ctx, i, st),
            _ => item::<V, 8, 2>(ctx, i, st),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn item_avx512(ctx: &Ctx, p: usize, i: usize, st: &mut Stats) -> Result<(), EngineError> {
    unsafe { item_p::<Avx512>(ctx, p, i, st) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn item_avx2(ctx: &Ctx, p: usize, i: usize, st: &mut Stats) -> Result<(), EngineError> {
    unsafe { item_p::<Avx2>(ctx, p, i, st) }
}

/// # Safety
/// `ctx` is valid (built by `run`); portable code runs on every CPU.
unsafe fn item_portable(ctx: &Ctx, p: usize, i: usize, st: &mut Stats) -> Result<(), EngineError> {
    unsafe { item_p::<Portable>(ctx, p, i, st) }
}

/// One work item: output planes `i * chunk ..`, with its own ring of segmented input planes.
///
/// # Safety
/// The CPU runs `V`; `ctx` describes valid inputs, weights and output, whose planes of this item no other
/// thread touches; `P * Q == 16`.
#[inline(always)]
unsafe fn item<V: V16, const P: usize, const Q: usize>(
    ctx: &Ctx,
    i: usize,
    st: &mut Stats,
) -> Result<(), EngineError> {
    let [kz_n, ky_n, kx_n] = ctx.kernel;
    let iz_n = ctx.in_dims[0];
    let oz_n = ctx.out_dims[0];
    let pz = ctx.pad[0];
    // A group's segmented plane: `rows` rows of 16 f32 (P channels x Q positions).
    let gplane = ctx.rows * LANES;
    let slot_len = ctx.groups * gplane;
    // The ring of `kz` slots, then the plane's accumulators (`M` vectors).
    let need = (kz_n * slot_len) / LANES + ctx.vectors;
    let mut ring = RING.take();
    if ring.len() < need {
        if ring.try_reserve_exact(need - ring.len()).is_err() {
            RING.set(ring);
            return Err(EngineError::OutOfMemory {
                bytes: need.saturating_mul(std::mem::size_of::<Block>()),
            });
        }
        ring.resize(need, Block([0.0; LANES]));
    }
    let ring_ptr = ring.as_mut_ptr() as *mut f32;
    // SAFETY: the accumulators follow the `kz_n` slots inside the buffer.
    let accs = unsafe { ring_ptr.add(kz_n * slot_len) };
    // Which input plane each ring slot holds.
    let mut held = [usize::MAX; super::conv::MAX_KERNEL];
    let oz_lo = i * ctx.chunk;
    let oz_hi = (oz_lo + ctx.chunk).min(oz_n);
    let taps = kz_n * ky_n * kx_n;
    for oz in oz_lo..oz_hi {
        // The planes this output plane reads, segmented into their slots when not there yet.
        let mut planes = [(0usize, std::ptr::null::<f32>()); super::conv::MAX_KERNEL];
        let mut n_planes = 0;
        for kz in 0..kz_n {
            let Some(iz) = (oz + kz).checked_sub(pz).filter(|&iz| iz < iz_n) else {
                continue;
            };
            let slot = iz % kz_n;
            // SAFETY: slot < kz_n, inside the ring of `kz_n * slot_len` f32.
            let base = unsafe { ring_ptr.add(slot * slot_len) };
            if held[slot] != iz {
                // SAFETY: the slot holds `groups` planes of `gplane` f32.
                unsafe { segment::<V, P, Q>(ctx, iz, base) };
                held[slot] = iz;
            }
            planes[n_planes] = (kz, base as *const f32);
            n_planes += 1;
        }
        // SAFETY (block): the accumulators hold `M` vectors; reads of a group's plane stay below row
        // `M + t_max`; weights inside the `groups * P` channels' vectors.
        unsafe {
            let bias = V::load(ctx.bias);
            for v in 0..ctx.vectors {
                bias.store(accs.add(v * LANES));
            }
            // One group of P input channels and one `kz` at a time (its segmented plane stays in L1
            // with the accumulators), sweeping every tile of the output plane.
            for g in 0..ctx.groups {
                // the last group may hold fewer channels (their weights are 0: skip them)
                let cn = P.min(ctx.in_channels - g * P);
                for &(kz, base) in &planes[..n_planes] {
                    let pb = base.add(g * gplane);
                    let mut v0 = 0;
                    while v0 < ctx.vectors {
                        let a = accs.add(v0 * LANES);
                        let mut acc = [V::zero(); NV];
                        for v in 0..NV {
                            acc[v] = V::load(a.add(v * LANES));
                        }
                        for ky in 0..ky_n {
                            for kx in 0..kx_n {
                                let x = pb.add((v0 + ky * ctx.wp + kx) * LANES);
                                let tap = (kz * ky_n + ky) * kx_n + kx;
                                for c in 0..cn {
                                    let w = V::load(
                                        ctx.weights.add(((g * P + c) * taps + tap) * LANES),
                                    );
                                    let xc = x.add(c * Q);
                                    for v in 0..NV {
                                        acc[v] = acc[v].fma(V::load_rep::<Q>(xc.add(v * LANES)), w);
                                    }
                                }
                            }
                        }
                        for v in 0..NV {
                            acc[v].store(a.add(v * LANES));
                        }
                        v0 += NV;
                    }
                }
            }
            // Writes only voxels of plane `oz`, which this item owns.
            write_plane::<V, Q>(ctx, oz, accs, st);
        }
    }
    RING.set(ring);
    Ok(())
}

/// Writes the plane's accumulators (`M` vectors) into plane `oz` of the blocked output, lanes beyond the
/// output channels as 0, and adds them to the statistics.
///
/// # Safety
/// The CPU runs `V`; the output holds plane `oz` of `out_dims`; `accs` holds `M` vectors.
#[inline(always)]
unsafe fn write_plane<V: V16, const Q: usize>(
    ctx: &Ctx,
    oz: usize,
    accs: *const f32,
    st: &mut Stats,
) {
    let [_, oy_n, ox_n] = ctx.out_dims;
    let c = ctx.out_channels;
    // SAFETY (block): vector v < M of the accumulators; (oz, oy, ox) is inside the output (oy < oy_n
    // because f < flat).
    unsafe {
        for seg in 0..Q {
            let f0 = seg * ctx.vectors;
            if f0 >= ctx.flat {
                break;
            }
            let (mut oy, mut ox) = (f0 / ctx.wp, f0 % ctx.wp);
            let mut rs = V::zero();
            let mut rs2 = V::zero();
            for v in 0..ctx.vectors.min(ctx.flat - f0) {
                if ox < ox_n {
                    let vox = V::load(accs.add(v * LANES)).take_position::<Q>(seg, c);
                    vox.store(ctx.out.add(((oz * oy_n + oy) * ox_n + ox) * LANES));
                    rs = rs.add(vox);
                    rs2 = rs2.fma(vox, vox);
                }
                ox += 1;
                if ox == ctx.wp {
                    ox = 0;
                    oy += 1;
                    flush(rs, rs2, c, st);
                    rs = V::zero();
                    rs2 = V::zero();
                }
            }
            flush(rs, rs2, c, st);
        }
    }
}

/// Adds the first `c` lanes of the f32 row sums to the f64 statistics (f32 sums over one output row at
/// most). A function, not a closure: a closure would not inherit the caller's target features.
///
/// # Safety
/// The CPU runs `V`.
#[inline(always)]
unsafe fn flush<V: V16>(rs: V, rs2: V, c: usize, st: &mut Stats) {
    let mut a = [0.0f32; LANES];
    let mut a2 = [0.0f32; LANES];
    // SAFETY: local arrays of 16 f32.
    unsafe {
        rs.store(a.as_mut_ptr());
        rs2.store(a2.as_mut_ptr());
    }
    for k in 0..c {
        st[k] += a[k] as f64;
        st[MAX_OUT + k] += a2[k] as f64;
    }
}

/// A channel block of zeros: the padding's source.
static ZEROS: Block = Block([0.0; LANES]);

/// Writes input plane `iz` as segmented planes (see the module doc) at `dst`: for each group of `P`
/// input channels, `rows` rows of 16 f32, row `j` holding for channel `c` of the group the `Q` values at
/// padded flat positions `s * M + j` (0 in the padding and for channels beyond the input's). A source
/// block's deferred normalisation is applied to the values inside the plane (the padding stays 0).
///
/// # Safety
/// The CPU runs `V`; `dst` holds `groups * rows * 16` f32; `iz` is inside the input.
#[inline(always)]
unsafe fn segment<V: V16, const P: usize, const Q: usize>(ctx: &Ctx, iz: usize, dst: *mut f32) {
    let [iz_n, iy_n, ix_n] = ctx.in_dims;
    let [_, py, px] = ctx.pad;
    let wp = ctx.wp;
    let gplane = ctx.rows * LANES;
    // Where each segment's position of row j lies in the padded plane, as (y, x).
    let mut pos = [(0usize, 0usize); 16];
    for (s, p) in pos.iter_mut().enumerate().take(Q) {
        let g = s * ctx.vectors;
        *p = (g / wp, g % wp);
    }
    // SAFETY (whole body): row j < rows and channel slot < groups * P stay inside `dst`; reads are
    // inside the source block's plane `iz` (the position is checked against the input first).
    unsafe {
        for j in 0..ctx.rows {
            let row = dst.add(j * LANES);
            // Source offsets (in voxels) of the Q positions, or None in the padding.
            let mut at = [None; 16];
            let mut inside = [0.0f32; LANES];
            for s in 0..Q {
                let (gy, gx) = pos[s];
                if gy >= py && gy - py < iy_n && gx >= px && gx - px < ix_n {
                    at[s] = Some((gy - py) * ix_n + gx - px);
                    for c in 0..P {
                        inside[c * Q + s] = 1.0;
                    }
                }
                pos[s].1 += 1;
                if pos[s].1 == wp {
                    pos[s] = (gy + 1, 0);
                }
            }
            let inside = V::load(inside.as_ptr());
            for (blk, line) in ctx.blocks.iter().zip(&ctx.lines) {
                let src =
                    (blk.data.0 as *const f32).add((blk.ib * iz_n + iz) * iy_n * ix_n * LANES);
                // each position's channel block, or zeros in the padding
                let mut from = [ZEROS.0.as_ptr(); 16];
                for s in 0..Q {
                    if let Some(o) = at[s] {
                        from[s] = src.add(o * LANES);
                    }
                }
                let mut l = 0;
                while l < blk.lanes {
                    let ic = blk.ic0 + l;
                    if ic % P == 0 && l + P <= blk.lanes {
                        // a whole group: one line
                        let mut v = V::gather_line::<P, Q>(&from, l);
                        if let Some(lx) = line {
                            let y =
                                V::load(lx.shift[l].as_ptr()).fma(v, V::load(lx.scale[l].as_ptr()));
                            let slope = V::load(lx.slope.as_ptr());
                            v = y.max(y.mul(slope)).mul(inside);
                        }
                        v.store(row.add((ic / P) * gplane));
                        l += P;
                    } else {
                        let d = row.add((ic / P) * gplane + (ic % P) * Q);
                        let mut chunk = [0.0f32; Q];
                        for s in 0..Q {
                            chunk[s] = match (&blk.xf, at[s]) {
                                (Some(t), Some(_)) => t.apply(l, *from[s].add(l)),
                                _ => *from[s].add(l),
                            };
                        }
                        std::ptr::write_unaligned(d as *mut [f32; Q], chunk);
                        l += 1;
                    }
                }
            }
            // channels of the last group beyond the input's
            for ic in ctx.in_channels..ctx.groups * P {
                let d = row.add((ic / P) * gplane + (ic % P) * Q);
                std::ptr::write_unaligned(d as *mut [f32; Q], [0.0; Q]);
            }
        }
    }
}

/// A block's deferred normalisation laid out as the segmented lines read it (see [`segment`]): for the
/// group of `p` channels starting at lane `l`, lane `c * q + s` holds the scale (shift) of lane `l + c`.
struct LineXf {
    /// `[l][c * q + s]`: the scale of lane `l + c` (0 beyond the block).
    scale: [[f32; LANES]; LANES],
    shift: [[f32; LANES]; LANES],
    slope: [f32; LANES],
}

impl LineXf {
    fn new(t: &Xf, p: usize) -> Self {
        let q = LANES / p;
        let mut scale = [[0.0; LANES]; LANES];
        let mut shift = [[0.0; LANES]; LANES];
        for l in 0..LANES {
            for c in 0..p.min(LANES - l) {
                for s in 0..q {
                    scale[l][c * q + s] = t.scale[l + c];
                    shift[l][c * q + s] = t.shift[l + c];
                }
            }
        }
        LineXf {
            scale,
            shift,
            slope: [t.slope; LANES],
        }
    }
}

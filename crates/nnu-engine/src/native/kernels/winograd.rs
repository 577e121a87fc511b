//! f32 3x3x3 convolutions of stride 1 and padding 1 by Winograd's minimal filtering, F(2x2x2, 3x3x3)
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016; in three dimensions
//! on multicore CPUs, Budden et al., "Deep Tensor Convolution on Multicores", ICML 2017).
//!
//! Each 2x2x2 block of outputs ("tile") is computed from the 4x4x4 input patch around it: the patch is
//! transformed (`V = B^T d B` along each axis), multiplied element-wise with the transformed weights
//! (`U = G g G^T`) and summed over the input channels, and transformed back (`Y = A^T M A`). The
//! multiplications per output fall from 27 to 8 (64 per 8 outputs); the transforms are additions. The
//! sum over input channels is, for each of the 64 transform positions, a small matrix product of
//! [tiles x input channels] by [input channels x output channels], run by the direct convolution's
//! register-blocked micro-kernel (the tiles take the place of the `x` positions, the input channels of a
//! block its lanes).
//!
//! The matrices (F(2,3)):
//! ```text
//! B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//! A^T = [1 1 1 0; 0 1 -1 -1]
//! ```
//! Only halves appear in `G` (applied once, in f64, when the weights are packed), so the rounding differs
//! from the direct sum by a few f32 ulps of the terms (see the kernel tests' bound).
//!
//! A work item is one row of tiles (fixed tile `z` and `y`) or a chunk of it, small enough that its
//! transformed inputs (`64 x channels x tiles`) stay in the core's L2 cache.

// Register arrays and transform positions are indexed on purpose: the loops are unrolled.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::{make_groups, row_dispatch, try_blocks, Group, InBlock, Init, Micro, Row};
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{Portable, V16};
use super::{blocks_of, Act, Block, ChannelStats, ConvSpec, Isa, LANES};
use crate::EngineError;

/// Transform positions of one tile (4 x 4 x 4).
const XI: usize = 64;

/// Largest transformed weights (bytes) a layer may take this path with: deeper layers have few voxels
/// and many channels, where the 2.4x larger weights cost more memory than the path saves time.
const MAX_WEIGHT_BYTES: usize = 16 << 20;

/// Transformed input bytes a work item aims at (its tiles are chosen to fit, at least 12: one register
/// tile of the micro-kernel). Measured with `conv_bench` on the 128^3 layers: 256 KiB and 128 KiB ran
/// the 96->32 layer in 0.68 s where 1 MiB took 1.0 s (the transformed inputs and products of an item then
/// stay in L2 beside the weights).
const ITEM_BYTES: usize = 256 << 10;

/// Whether `spec` can take this path: a 3x3x3 kernel of stride 1 and padding 1 with at least 16 input
/// and output channels and at most [`MAX_WEIGHT_BYTES`] of transformed weights.
pub(super) fn eligible(spec: &ConvSpec) -> bool {
    spec.kernel == [3, 3, 3]
        && spec.stride == [1, 1, 1]
        && spec.pad == [1, 1, 1]
        && spec.in_channels >= LANES
        && spec.out_channels >= LANES
        && XI * spec.in_channels * blocks_of(spec.out_channels) * LANES * 4 <= MAX_WEIGHT_BYTES
}

/// Transformed weights `U = G g G^T` of every (output, input) channel pair, per transform position `xi`:
/// `[xi][group][in channel][nob][16 output lanes]` (groups of output blocks as the direct kernel's).
pub(super) struct WinoWeights {
    u: Vec<Block>,
    groups: Vec<Group>,
    out_blocks: usize,
}

impl WinoWeights {
    /// Packs the weights `w_at(out channel, in channel, tap)` (tap = `(kz * 3 + ky) * 3 + kx`; 0 beyond
    /// the output channels).
    pub(super) fn new(
        spec: &ConvSpec,
        w_at: &dyn Fn(usize, usize, usize) -> f32,
    ) -> Result<Self, EngineError> {
        const G: [[f64; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let cin = spec.in_channels;
        let out_blocks = blocks_of(spec.out_channels);
        let groups = make_groups(out_blocks, 0);
        let per_xi = cin * out_blocks * LANES;
        let mut u = try_blocks(XI * per_xi / LANES)?;
        let uf = super::conv::block_slice_mut(&mut u);
        for g in &groups {
            for o in 0..g.nob {
                for l in 0..LANES {
                    let oc = (g.ob0 + o) * LANES + l;
                    if oc >= spec.out_channels {
                        continue;
                    }
                    for ic in 0..cin {
                        let mut k = [[[0.0f64; 3]; 3]; 3];
                        for (t, v) in k.iter_mut().flatten().flatten().enumerate() {
                            *v = w_at(oc, ic, t) as f64;
                        }
                        for a in 0..4 {
                            for b in 0..4 {
                                for c in 0..4 {
                                    let mut s = 0.0;
                                    for i in 0..3 {
                                        for j in 0..3 {
                                            for m in 0..3 {
                                                s += G[a][i] * G[b][j] * G[c][m] * k[i][j][m];
                                            }
                                        }
                                    }
                                    let xi = (a * 4 + b) * 4 + c;
                                    uf[xi * per_xi
                                        + g.ob0 * cin * LANES
                                        + (ic * g.nob + o) * LANES
                                        + l] = s as f32;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(WinoWeights {
            u,
            groups,
            out_blocks,
        })
    }
}

thread_local! {
    /// Transformed inputs and products of the current work item.
    static SCRATCH: RefCell<(Vec<Block>, Vec<Block>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Everything a work item needs.
struct Ctx<'a> {
    ww: &'a WinoWeights,
    blocks: &'a [InBlock],
    bias: *const f32,
    dims: [usize; 3],
    /// Tiles per item along x.
    ntc: usize,
    out: *mut f32,
    want_stats: bool,
}
// SAFETY: weights, bias and inputs are read only; each item writes its own output tiles.
unsafe impl Sync for Ctx<'_> {}

/// Zero accumulator start for the products (bias is added after the inverse transform).
static ZEROS: [f32; 2 * LANES] = [0.0; 2 * LANES];

/// `B^T x` of four values (one axis of the input transform).
#[inline(always)]
unsafe fn bt<V: V16>(d: [V; 4]) -> [V; 4] {
    unsafe {
        [
            d[0].sub(d[2]),
            d[1].add(d[2]),
            d[2].sub(d[1]),
            d[1].sub(d[3]),
        ]
    }
}

/// `A^T m` of four values (one axis of the output transform).
#[inline(always)]
unsafe fn at<V: V16>(m: [V; 4]) -> [V; 2] {
    unsafe { [m[0].add(m[1]).add(m[2]), m[1].sub(m[2]).sub(m[3])] }
}

/// One work item: tiles `chunk * ntc ..` of tile row (`tz`, `ty`), all output channels; the
/// statistics of its outputs are added to `st` (`[sum per output lane][sumsq per output lane]`).
///
/// # Safety
/// The CPU runs `V`; `ctx` describes valid inputs of `dims` and an output of `dims`, whose tiles of this
/// item no other thread touches.
#[inline(always)]
unsafe fn item<V: V16>(ctx: &Ctx, tz: usize, ty: usize, chunk: usize, st: &mut [f64]) {
    let [nz, ny, nx] = ctx.dims;
    let nib = ctx.blocks.len();
    let ob_n = ctx.ww.out_blocks;
    let t0 = chunk * ctx.ntc;
    let nt = ctx.ntc.min(nx.div_ceil(2) - t0);
    let plane = nz * ny * nx * LANES;
    let (mut v, mut m) = SCRATCH.take();
    // Blocks between transform positions, one more than the data: a power-of-two stride (4 KiB for two
    // blocks of 32 tiles) would put the 64 positions of one tile in the same L1 set.
    let xs_v = nib * nt + 1;
    let xs_m = ob_n * nt + 1;
    let v_len = XI * xs_v;
    let m_len = XI * xs_m;
    if v.len() < v_len {
        v.resize(v_len, Block([0.0; LANES]));
    }
    if m.len() < m_len {
        m.resize(m_len, Block([0.0; LANES]));
    }
    let vp = v.as_mut_ptr() as *mut f32;
    let mp = m.as_mut_ptr() as *mut f32;
    // SAFETY (whole body): indices stay inside the input planes, the scratch sizes above and the
    // output tiles of this item.
    unsafe {
        let zero = V::zero();
        // 1. input transform: V[xi][ib][t][16]
        for (ib, blk) in ctx.blocks.iter().enumerate() {
            let base = (blk.data.0 as *const f32).add(blk.ib * plane);
            for t in 0..nt {
                let x0 = 2 * (t0 + t) as isize - 1;
                let mut tmp = [[zero; 16]; 4];
                for a in 0..4 {
                    let iz = 2 * tz as isize - 1 + a as isize;
                    let mut rows = [[zero; 4]; 4];
                    if (0..nz as isize).contains(&iz) {
                        for b in 0..4 {
                            let iy = 2 * ty as isize - 1 + b as isize;
                            if !(0..ny as isize).contains(&iy) {
                                continue;
                            }
                            let row = base.add(((iz as usize * ny) + iy as usize) * nx * LANES);
                            let mut d = [zero; 4];
                            for c in 0..4 {
                                let ix = x0 + c as isize;
                                if (0..nx as isize).contains(&ix) {
                                    d[c] = V::load(row.add(ix as usize * LANES));
                                }
                            }
                            rows[b] = bt(d);
                        }
                    }
                    // along y, for each transformed x position
                    for c in 0..4 {
                        let r = bt([rows[0][c], rows[1][c], rows[2][c], rows[3][c]]);
                        for b in 0..4 {
                            tmp[a][b * 4 + c] = r[b];
                        }
                    }
                }
                // along z, stored per transform position
                for bc in 0..16 {
                    let r = bt([tmp[0][bc], tmp[1][bc], tmp[2][bc], tmp[3][bc]]);
                    for a in 0..4 {
                        let xi = a * 16 + bc;
                        r[a].store(vp.add((xi * xs_v + ib * nt + t) * LANES));
                    }
                }
            }
        }
        // 2. per transform position, [tiles x in] x [in x out] -> M[xi][ob][t][16]
        let mut rows: Vec<Row<f32>> = Vec::with_capacity(nib);
        let cin = ctx.blocks.last().map_or(0, |b| b.ic0 + b.lanes);
        let per_xi = cin * ob_n * LANES;
        let up = ctx.ww.u.as_ptr() as *const f32;
        for xi in 0..XI {
            for g in &ctx.ww.groups {
                rows.clear();
                for (ib, blk) in ctx.blocks.iter().enumerate() {
                    rows.push(Row {
                        x: vp.add((xi * xs_v + ib * nt) * LANES),
                        w: up.add(xi * per_xi + g.ob0 * cin * LANES + blk.ic0 * g.nob * LANES),
                        lanes: blk.lanes,
                    });
                }
                let micro = Micro {
                    rows: &rows,
                    kw: 1,
                    in_sx: LANES,
                    w_kx: 0,
                    w_l: g.nob * LANES,
                    out: mp.add((xi * xs_m + g.ob0 * nt) * LANES),
                    out_sx: LANES,
                    out_sob: nt * LANES,
                    init: Init::Bias(ZEROS.as_ptr()),
                };
                row_dispatch::<V>(&micro, g.nob, 1, nt);
            }
        }
        // 3. output transform, bias, statistics
        for ob in 0..ob_n {
            let bias = V::load(ctx.bias.add(ob * LANES));
            let out_b = ctx.out.add(ob * plane);
            let mut sums = [zero; 4];
            let mut sqs = [zero; 4];
            for t in 0..nt {
                let mut s1 = [[zero; 4]; 8]; // [a][b * 2 + k]
                for a in 0..4 {
                    for b in 0..4 {
                        let mut q = [zero; 4];
                        for c in 0..4 {
                            let xi = (a * 4 + b) * 4 + c;
                            q[c] = V::load(mp.add((xi * xs_m + ob * nt + t) * LANES));
                        }
                        let r = at(q);
                        s1[a * 2][b] = r[0];
                        s1[a * 2 + 1][b] = r[1];
                    }
                }
                // s1[a * 2 + k][b]: along y
                let mut s2 = [[zero; 4]; 4]; // [j * 2 + k][a]
                for a in 0..4 {
                    for k in 0..2 {
                        let r = at(s1[a * 2 + k]);
                        s2[k][a] = r[0];
                        s2[2 + k][a] = r[1];
                    }
                }
                let ox = 2 * (t0 + t);
                for j in 0..2 {
                    for k in 0..2 {
                        let r = at(s2[j * 2 + k]);
                        for i in 0..2 {
                            let (oz, oy) = (2 * tz + i, 2 * ty + j);
                            if oz < nz && oy < ny && ox + k < nx {
                                let y = r[i].add(bias);
                                y.store(out_b.add(((oz * ny + oy) * nx + ox + k) * LANES));
                                if ctx.want_stats {
                                    let s = i * 2 + j;
                                    sums[s] = sums[s].add(y);
                                    sqs[s] = sqs[s].fma(y, y);
                                }
                            }
                        }
                    }
                }
            }
            if ctx.want_stats {
                for s in 0..4 {
                    let mut sa = [0.0f32; LANES];
                    let mut qa = [0.0f32; LANES];
                    sums[s].store(sa.as_mut_ptr());
                    sqs[s].store(qa.as_mut_ptr());
                    for l in 0..LANES {
                        st[ob * LANES + l] += sa[l] as f64;
                        st[(ob_n + ob) * LANES + l] += qa[l] as f64;
                    }
                }
            }
        }
    }
    SCRATCH.set((v, m));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn item_avx512(ctx: &Ctx, tz: usize, ty: usize, chunk: usize, st: &mut [f64]) {
    unsafe { item::<Avx512>(ctx, tz, ty, chunk, st) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn item_avx2(ctx: &Ctx, tz: usize, ty: usize, chunk: usize, st: &mut [f64]) {
    unsafe { item::<Avx2>(ctx, tz, ty, chunk, st) }
}

fn item_portable(ctx: &Ctx, tz: usize, ty: usize, chunk: usize, st: &mut [f64]) {
    // SAFETY: portable code runs everywhere; the context is valid (built by `run`).
    unsafe { item::<Portable>(ctx, tz, ty, chunk, st) }
}

/// The convolution of `blocks` (materialised inputs of `dims`) into `out` (already shaped to `dims`).
pub(super) fn run(
    spec: &ConvSpec,
    ww: &WinoWeights,
    bias: &[Block],
    isa: Isa,
    blocks: &[InBlock],
    out: &mut Act,
    stats: Option<&mut ChannelStats>,
) -> Result<(), EngineError> {
    let dims = out.dims();
    let [nz, ny, nx] = dims;
    let nib = blocks.len();
    let tiles_x = nx.div_ceil(2);
    let ntc = (ITEM_BYTES / (XI * nib * LANES * 4))
        .clamp(12, 64)
        .min(tiles_x);
    let chunks = tiles_x.div_ceil(ntc);
    let (tz_n, ty_n) = (nz.div_ceil(2), ny.div_ceil(2));
    let ob_n = ww.out_blocks;
    let ctx = Ctx {
        ww,
        blocks,
        bias: bias.as_ptr() as *const f32,
        dims,
        ntc,
        out: out.as_mut_slice().as_mut_ptr(),
        want_stats: stats.is_some(),
    };
    let want = stats.is_some();
    let n_items = tz_n * ty_n * chunks;
    let partial: Vec<Vec<f64>> = (0..n_items)
        .into_par_iter()
        .map(|i| {
            let mut st = if want {
                vec![0.0; 2 * ob_n * LANES]
            } else {
                Vec::new()
            };
            let (tz, r) = (i / (ty_n * chunks), i % (ty_n * chunks));
            let (ty, chunk) = (r / chunks, r % chunks);
            match isa {
                // SAFETY: `PackedConv::new` checked that the CPU runs `isa`; each item writes only
                // its own tiles.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Amx => unsafe { item_avx512(&ctx, tz, ty, chunk, &mut st) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { item_avx2(&ctx, tz, ty, chunk, &mut st) },
                _ => item_portable(&ctx, tz, ty, chunk, &mut st),
            }
            st
        })
        .collect();
    if let Some(stats) = stats {
        let oc_n = spec.out_channels;
        stats.sum = vec![0.0; oc_n];
        stats.sumsq = vec![0.0; oc_n];
        stats.count = nz * ny * nx;
        for st in &partial {
            for c in 0..oc_n {
                stats.sum[c] += st[c];
                stats.sumsq[c] += st[ob_n * LANES + c];
            }
        }
    }
    Ok(())
}

//! bf16 convolution with AVX512_BF16: inputs and weights rounded to bf16 (round to nearest even),
//! products summed in f32 by `vdpbf16ps`, which multiplies pairs of bf16 and adds both products to an
//! f32 lane. Weights are packed as pairs of input channels per u32; each input is converted once per
//! convolution to the same pairs (`[block][z][y][x][8 pairs]`). The driver mirrors the f32 one in
//! [`super::conv`].

// Register arrays are indexed by output block and position on purpose: the loops are unrolled.
#![allow(clippy::needless_range_loop)]

use super::conv::{Group, InBlock};
use super::{run_error, Act, ChannelStats, ConvSpec, LANES};
use crate::EngineError;

/// Pairs of channels per 16-channel block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const PAIRS: usize = LANES / 2;

/// f32 to bf16, rounding to nearest even (as `vcvtneps2bf16` for finite values).
pub(super) fn to_bf16(x: f32) -> u32 {
    let b = x.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1))) >> 16
}

/// Packs weights for [`super::Precision::Bf16`]: per group of `nob` output blocks (at `ob0 * taps *
/// pairs * 16`), `[input channel pair][kz][ky][kx][nob][16 output lanes]` (the f32 order, see
/// [`super::PackedConv`]), each u32 holding the bf16 of
/// the pair's even channel in its low half and of the odd channel in its high half.
pub(super) fn pack_weights(
    spec: &ConvSpec,
    groups: &[Group],
    w_at: &dyn Fn(usize, usize, usize) -> f32,
) -> Result<Vec<u32>, EngineError> {
    let taps: usize = spec.kernel.iter().product();
    let cin = spec.in_channels;
    let pairs = cin.div_ceil(2);
    let out_blocks = spec.out_channels.div_ceil(LANES);
    let n = out_blocks * taps * pairs * LANES;
    let mut w = Vec::new();
    w.try_reserve_exact(n)
        .map_err(|_| EngineError::OutOfMemory { bytes: n * 4 })?;
    w.resize(n, 0u32);
    for g in groups {
        let off = g.ob0 * taps * pairs * LANES;
        for p in 0..pairs {
            for t in 0..taps {
                for o in 0..g.nob {
                    for l in 0..LANES {
                        let oc = (g.ob0 + o) * LANES + l;
                        let lo = to_bf16(w_at(oc, 2 * p, t));
                        let hi = if 2 * p + 1 < cin {
                            to_bf16(w_at(oc, 2 * p + 1, t))
                        } else {
                            0
                        };
                        w[off + ((p * taps + t) * g.nob + o) * LANES + l] = lo | (hi << 16);
                    }
                }
            }
        }
    }
    Ok(w)
}

/// bf16 convolution; see [`super::conv3d`]. Every concatenated input but the last must have an even
/// channel count (so that channel pairs never straddle two inputs; nnU-Net's are multiples of 16).
pub(super) fn conv3d_bf16(
    conv: &super::PackedConv,
    blocks: &[InBlock],
    in_dims: [usize; 3],
    out: &mut Act,
    stats: Option<&mut ChannelStats>,
) -> Result<(), EngineError> {
    if let Some(b) = blocks.iter().find(|b| b.ic0 % 2 == 1) {
        return Err(run_error(format!(
            "bf16 convolution: a concatenated input starts at the odd channel {}; \
             all inputs but the last need an even channel count",
            b.ic0
        )));
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::run(conv, blocks, in_dims, out, stats)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (conv, in_dims, out, stats);
        Err(run_error(
            "bf16 convolution needs an x86-64 CPU with AVX512_BF16".into(),
        ))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use super::super::conv::{
        init_acc, row_split, row_stats, run_items, stage_row, store_acc, tap_coord, valid_taps,
        InBlock, Init, Micro, Row, SendPtr, SCRATCH,
    };
    use super::super::simd::Avx512;
    use super::super::{Act, Block, ChannelStats, ConvSpec, PackedConv, Xf, LANES};
    use super::PAIRS;
    use crate::EngineError;

    /// Converts `voxels` positions of one block (`lanes` valid) to bf16 pairs, applying the block's
    /// deferred normalisation `xf` first when it has one; lanes beyond are 0.
    ///
    /// # Safety
    /// The CPU has AVX512F and AVX512_BF16; `src` holds `voxels * 16` f32, `dst` `voxels * 8` u32.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn convert(
        src: *const f32,
        dst: *mut u32,
        voxels: usize,
        lanes: usize,
        xf: Option<&Xf>,
    ) {
        let mask: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
        let (sc, sh, sl) = match xf {
            Some(t) => (
                _mm512_loadu_ps(t.scale.as_ptr()),
                _mm512_loadu_ps(t.shift.as_ptr()),
                _mm512_set1_ps(t.slope),
            ),
            None => (
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
            ),
        };
        for v in 0..voxels {
            unsafe {
                let mut x = _mm512_maskz_loadu_ps(mask, src.add(v * LANES));
                if xf.is_some() {
                    let y = _mm512_fmadd_ps(x, sc, sh);
                    x = _mm512_max_ps(y, _mm512_mul_ps(y, sl));
                }
                let b: __m256bh = _mm512_cvtneps_pbh(x);
                _mm256_storeu_si256(
                    dst.add(v * PAIRS) as *mut __m256i,
                    std::mem::transmute::<__m256bh, __m256i>(b),
                );
            }
        }
    }

    /// The bf16 micro-kernel (see the f32 `micro`): `NOB` output blocks times `NX` outputs.
    ///
    /// # Safety
    /// As the f32 micro-kernel, with rows of 8 u32 per position and `lanes` counting channel pairs; the
    /// CPU has AVX512_BF16.
    #[inline(always)]
    unsafe fn micro<const NOB: usize, const NX: usize, const SX: usize>(
        m: &Micro<u32>,
        ox0: usize,
    ) {
        let sx = if SX == 0 { m.in_sx } else { SX * PAIRS };
        unsafe {
            let out = m.out.add(ox0 * m.out_sx);
            let mut acc = init_acc::<Avx512, u32, NOB, NX>(m, out);
            let xoff = ox0 * sx;
            for row in m.rows {
                for kx in 0..m.kw {
                    let x = row.x.add(xoff + kx * PAIRS);
                    let w = row.w.add(kx * m.w_kx);
                    for p in 0..row.lanes {
                        let wp = w.add(p * m.w_l);
                        let mut wv =
                            [std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()); NOB];
                        for o in 0..NOB {
                            wv[o] = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                                wp.add(o * LANES) as *const __m512i,
                            ));
                        }
                        for j in 0..NX {
                            let b = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                                *x.add(j * sx + p) as i32,
                            ));
                            for o in 0..NOB {
                                acc[o][j].0 = _mm512_dpbf16_ps(acc[o][j].0, b, wv[o]);
                            }
                        }
                    }
                }
            }
            store_acc::<Avx512, u32, NOB, NX>(m, out, &acc);
        }
    }

    #[inline(always)]
    unsafe fn row<const NOB: usize, const MAIN: usize, const SX: usize>(
        m: &Micro<u32>,
        ox_n: usize,
    ) {
        let mut ox = 0;
        // SAFETY: each call covers outputs below `ox_n`.
        unsafe {
            if SX == 0 {
                while ox < ox_n {
                    micro::<NOB, 1, 0>(m, ox);
                    ox += 1;
                }
                return;
            }
            while ox + MAIN <= ox_n {
                micro::<NOB, MAIN, SX>(m, ox);
                ox += MAIN;
            }
            while ox + 4 <= ox_n {
                micro::<NOB, 4, SX>(m, ox);
                ox += 4;
            }
            if ox + 2 <= ox_n {
                micro::<NOB, 2, SX>(m, ox);
                ox += 2;
            }
            if ox < ox_n {
                micro::<NOB, 1, SX>(m, ox);
            }
        }
    }

    #[inline(always)]
    unsafe fn row_dispatch(m: &Micro<u32>, nob: usize, sx: usize, ox_n: usize) {
        // SAFETY: forwarded caller promise.
        unsafe {
            match (nob, sx) {
                (2, 1) => row::<2, 12, 1>(m, ox_n),
                (2, 2) => row::<2, 12, 2>(m, ox_n),
                (2, _) => row::<2, 1, 0>(m, ox_n),
                (_, 1) => row::<1, 8, 1>(m, ox_n),
                (_, 2) => row::<1, 8, 2>(m, ox_n),
                _ => row::<1, 1, 0>(m, ox_n),
            }
        }
    }

    struct Ctx<'a> {
        spec: &'a ConvSpec,
        conv: &'a PackedConv,
        in_dims: [usize; 3],
        out_dims: [usize; 3],
        /// Input blocks (their `data` now points at the converted pairs).
        blocks: &'a [InBlock],
        /// Output rows per work item.
        oy_step: usize,
        out: SendPtr<f32>,
        want_stats: bool,
    }
    // SAFETY: read-only pointers except `out`, written at disjoint planes per work item.
    unsafe impl Sync for Ctx<'_> {}

    /// Output rows `ys * oy_step ..` of plane `oz` of group `g`, in the f32 driver's slab order.
    ///
    /// # Safety
    /// The CPU has AVX512F and AVX512_BF16; no other thread touches those rows of that group.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn item(ctx: &Ctx, g: usize, oz: usize, ys: usize, st: &mut [f64]) {
        let spec = ctx.spec;
        let group = &ctx.conv.groups[g];
        let [kz_n, ky_n, kx_n] = spec.kernel;
        let [sz, sy, sx] = spec.stride;
        let [pz, py, px] = spec.pad;
        let [iz_n, iy_n, ix_n] = ctx.in_dims;
        let [oz_n, oy_n, ox_n] = ctx.out_dims;
        let taps = kz_n * ky_n * kx_n;
        let pairs = spec.in_channels.div_ceil(2);
        let nob = group.nob;
        let wp = ix_n + 2 * px;
        let out_sob = oz_n * oy_n * ox_n * LANES;
        let oy_lo = ys * ctx.oy_step;
        let oy_hi = (oy_lo + ctx.oy_step).min(oy_n);
        let weights = unsafe {
            ctx.conv
                .weights_bf16
                .as_ptr()
                .add(group.ob0 * taps * pairs * LANES)
        };
        let bias = ctx.conv.bias.as_ptr() as *const f32;
        let (kzs, n_kz) = valid_taps(oz, kz_n, sz, pz, iz_n);
        let n_slabs = ctx.blocks.len() * n_kz;
        // No closure here: it would not inherit this function's target features.
        let mut scratch = SCRATCH.take();
        // rows of `wp` positions of 8 u32: half a block each
        let need = (ky_n * wp).div_ceil(2);
        if px > 0 && scratch.len() < need {
            scratch.resize(need, Block([0.0; LANES]));
        }
        let scratch_ptr = scratch.as_mut_ptr() as *mut u32;
        let mut rows: Vec<Row<u32>> = Vec::with_capacity(ky_n);
        let mut slab = 0;
        for blk in ctx.blocks {
            for &(kz, iz) in &kzs[..n_kz] {
                let first = slab == 0;
                let last = slab + 1 == n_slabs;
                slab += 1;
                for oy in oy_lo..oy_hi {
                    rows.clear();
                    for ky in 0..ky_n {
                        let Some(iy) = tap_coord(oy, ky, sy, py, iy_n) else {
                            continue;
                        };
                        // SAFETY: in-bounds row of the converted block; scratch sized above.
                        unsafe {
                            let src =
                                (blk.data.0 as *const u32).add((iz * iy_n + iy) * ix_n * PAIRS);
                            let x = if px > 0 {
                                let dst = scratch_ptr.add(rows.len() * wp * PAIRS);
                                stage_row(src, dst, ix_n, px, PAIRS);
                                dst as *const u32
                            } else {
                                src
                            };
                            let w = weights.add(
                                ((blk.ic0 / 2) * taps + (kz * ky_n + ky) * kx_n) * nob * LANES,
                            );
                            rows.push(Row {
                                x,
                                w,
                                lanes: blk.lanes.div_ceil(2),
                            });
                        }
                    }
                    let out = unsafe {
                        ctx.out
                            .0
                            .add((((group.ob0 * oz_n + oz) * oy_n + oy) * ox_n) * LANES)
                    };
                    let m = Micro {
                        rows: &rows,
                        kw: kx_n,
                        in_sx: sx * PAIRS,
                        w_kx: nob * LANES,
                        w_l: taps * nob * LANES,
                        out,
                        out_sx: LANES,
                        out_sob,
                        init: if first {
                            Init::Bias(unsafe { bias.add(group.ob0 * LANES) })
                        } else {
                            Init::Accumulate
                        },
                    };
                    unsafe { row_dispatch(&m, nob, sx, ox_n) };
                    if last && ctx.want_stats {
                        unsafe { row_stats::<Avx512>(out, out_sob, nob, ox_n, st) };
                    }
                }
            }
        }
        SCRATCH.set(scratch);
    }

    pub(super) fn run(
        conv: &PackedConv,
        blocks: &[InBlock],
        in_dims: [usize; 3],
        out: &mut Act,
        stats: Option<&mut ChannelStats>,
    ) -> Result<(), EngineError> {
        let spec = conv.spec();
        let voxels_in: usize = in_dims.iter().product();
        // convert every input block once
        let n = blocks.len() * voxels_in * PAIRS;
        let mut converted: Vec<u32> = Vec::new();
        converted
            .try_reserve_exact(n)
            .map_err(|_| EngineError::OutOfMemory { bytes: n * 4 })?;
        converted.resize(n, 0);
        let plane = in_dims[1] * in_dims[2];
        converted
            .par_chunks_mut(plane * PAIRS)
            .enumerate()
            .for_each(|(i, dst)| {
                let (b, z) = (i / in_dims[0], i % in_dims[0]);
                let blk = &blocks[b];
                // SAFETY: `PackedConv::new` checked AVX512_BF16; plane `z` of block `ib` of the source.
                unsafe {
                    let src = blk.data.0.add((blk.ib * in_dims[0] + z) * plane * LANES);
                    convert(src, dst.as_mut_ptr(), plane, blk.lanes, blk.xf.as_ref());
                }
            });
        let conv_blocks: Vec<InBlock> = blocks
            .iter()
            .enumerate()
            .map(|(b, blk)| InBlock {
                xf: None,
                data: SendPtr(
                    unsafe { converted.as_mut_ptr().add(b * voxels_in * PAIRS) } as *mut f32
                ),
                ..*blk
            })
            .collect();
        let out_dims = out.dims();
        let (ysplit, oy_step) = row_split(conv.groups.len() * out_dims[0], out_dims[1]);
        let ctx = Ctx {
            spec,
            conv,
            in_dims,
            out_dims,
            blocks: &conv_blocks,
            oy_step,
            out: SendPtr(out.as_mut_slice().as_mut_ptr()),
            want_stats: stats.is_some(),
        };
        let voxels = out_dims.iter().product();
        run_items(
            &conv.groups,
            out_dims[0],
            ysplit,
            voxels,
            spec.out_channels,
            stats,
            |g, oz, ys, st| {
                // SAFETY: `PackedConv::new` checked AVX512_BF16; item (g, oz, ys) writes only its own
                // rows.
                unsafe { item(&ctx, g, oz, ys, st) }
            },
        );
        Ok(())
    }
}

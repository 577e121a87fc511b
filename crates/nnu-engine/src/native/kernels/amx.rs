//! bf16 convolution on AMX tiles ([`super::Isa::Amx`]): Intel's tile matrix multiply (`tdpbf16ps`, 16 x 16
//! f32 outputs from 16 x 32 bf16 times 32 x 16 bf16 per instruction), for CPUs with AMX-BF16 (Sapphire
//! Rapids and later) under an OS that grants the tile state.
//!
//! The input of a convolution is converted once to bf16 in 32-channel blocks with the `x` padding built
//! in, `[ceil(c/32)][z][y][x + 2 px][32]` (64 bytes per voxel, so a tile row is one aligned cache line).
//! The weights are packed per output block, 32-channel input block and tap as the tile `B` wants them,
//! 16 rows of channel pairs by 16 output channels. One work item keeps 2 x 2 accumulator tiles (two runs of
//! up to 16 output `x` positions by two 16-channel output blocks) in the tile registers over every input
//! block and tap, loading two input tiles and two weight tiles per step, then stores them straight into the
//! f32 blocked output. Products of bf16 are summed in f32, as in [`super::bf16`].
//!
//! The tile registers are not known to the compiler: every `asm!` block here names them directly, and a
//! work item configures them (`ldtilecfg`) on entry and releases them (`tilerelease`) on exit, on the
//! thread that runs it.

// Register arrays are indexed by output block and position on purpose.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use super::conv::{InBlock, SendPtr};
use super::LANES;

/// Input channels per AMX block (one 64-byte tile row of bf16).
const KB: usize = 32;

/// Whether this process can run AMX-BF16 tiles: CPUID reports AMX-TILE and AMX-BF16, the CPU has
/// AVX512_BF16 (the conversions use it), and Linux granted the tile data state to this process
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once). Always false elsewhere.
pub fn amx_supported() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    if !super::bf16_supported() {
        return false;
    }
    // SAFETY: CPUID leaf 7 exists on every x86-64 CPU with AVX-512 (checked above).
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let tile = leaf7.edx & (1 << 24) != 0;
    let bf16 = leaf7.edx & (1 << 22) != 0;
    if !(tile && bf16) {
        return false;
    }
    extern "C" {
        fn syscall(number: std::ffi::c_long, ...) -> std::ffi::c_long;
    }
    const SYS_ARCH_PRCTL: std::ffi::c_long = 158;
    const ARCH_REQ_XCOMP_PERM: std::ffi::c_long = 0x1023;
    const XFEATURE_XTILEDATA: std::ffi::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it fails cleanly (non-zero) where unsupported.
    unsafe { syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Weights and bias packed for the tiles.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct AmxWeights {
    /// `[out block][in block of 32][tap][16 pair rows][16 output lanes]` u32 (bf16 pairs: even channel
    /// in the low half), in 64-byte aligned storage.
    w: Vec<super::Block>,
    /// Per output block, the bias repeated on 16 rows (a tile that starts the accumulators).
    bias: Vec<super::Block>,
    kb_n: usize,
    taps: usize,
}

impl AmxWeights {
    /// Packs `w_at(oc, ic, tap)` for `out_channels` x `in_channels` x `taps`.
    pub(super) fn new(
        out_channels: usize,
        in_channels: usize,
        taps: usize,
        w_at: &dyn Fn(usize, usize, usize) -> f32,
        bias: &[super::Block],
    ) -> Result<Self, crate::EngineError> {
        let ob_n = out_channels.div_ceil(LANES);
        let kb_n = in_channels.div_ceil(KB);
        let mut w = super::conv::try_blocks(ob_n * kb_n * taps * 16)?;
        let wu = block_u32_mut(&mut w);
        for ob in 0..ob_n {
            for kb in 0..kb_n {
                for t in 0..taps {
                    let base = ((ob * kb_n + kb) * taps + t) * 256;
                    for p in 0..16 {
                        for l in 0..LANES {
                            let oc = ob * LANES + l;
                            if oc >= out_channels {
                                continue;
                            }
                            let ic = kb * KB + 2 * p;
                            let lo = if ic < in_channels {
                                super::bf16::to_bf16(w_at(oc, ic, t))
                            } else {
                                0
                            };
                            let hi = if ic + 1 < in_channels {
                                super::bf16::to_bf16(w_at(oc, ic + 1, t))
                            } else {
                                0
                            };
                            wu[base + p * LANES + l] = lo | (hi << 16);
                        }
                    }
                }
            }
        }
        let mut tiles = super::conv::try_blocks(ob_n * 16)?;
        for ob in 0..ob_n {
            for r in 0..16 {
                tiles[ob * 16 + r] = bias[ob];
            }
        }
        Ok(AmxWeights {
            w,
            bias: tiles,
            kb_n,
            taps,
        })
    }
}

fn block_u32_mut(v: &mut [super::Block]) -> &mut [u32] {
    // SAFETY: `Block` is a padding-free `repr(C)` wrapper of `[f32; 16]`; u32 has f32's size and
    // alignment and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u32, v.len() * LANES) }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::run;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use super::super::conv::{make_groups, row_split, run_items, valid_taps, Group};
    use super::super::simd::Avx512;
    use super::super::{Act, ChannelStats, ConvSpec, Xf, LANES};
    use super::{AmxWeights, InBlock, SendPtr, KB};
    use crate::EngineError;

    /// Bytes of one converted voxel (32 bf16).
    const VOX: usize = 64;

    // `item` keeps at most two output blocks (tiles 0-3); the groups come from `make_groups`.
    const _: () = assert!(super::super::conv::MAX_NOB == 2);

    /// The 64-byte tile configuration (palette 1): tiles 0-3 accumulators (`m` rows of 16 f32), 4-5
    /// inputs (`m` rows of 32 bf16), 6-7 weights (16 rows of 16 bf16 pairs).
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    impl TileConfig {
        fn new(m: usize) -> Self {
            let mut c = [0u8; 64];
            c[0] = 1;
            for t in 0..8 {
                c[16 + 2 * t] = 64; // bytes per row (u16, little endian)
                c[48 + t] = if t >= 6 { 16 } else { m as u8 };
            }
            TileConfig(c)
        }
    }

    /// Converts plane `z` of 32-channel block `kb` to bf16 with `px` zero voxels on each side of every
    /// row: the two 16-channel halves come from `halves` (a source block whose channels start at
    /// `kb * 32` or `kb * 32 + 16`, with its deferred normalisation, applied before the rounding), or are
    /// zero.
    ///
    /// # Safety
    /// AVX512F and AVX512_BF16; `dst` holds `iy_n * (ix_n + 2 px)` voxels of 64 bytes; every source
    /// pointer holds the plane (`iy_n * ix_n * 16` f32).
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn convert_plane(
        halves: [Option<(*const f32, Option<Xf>)>; 2],
        dst: *mut u8,
        iy_n: usize,
        ix_n: usize,
        px: usize,
    ) {
        let wp = ix_n + 2 * px;
        unsafe {
            let zero = _mm256_setzero_si256();
            let xfs = halves.map(|h| {
                h.and_then(|(_, xf)| xf).map(|t| {
                    (
                        _mm512_loadu_ps(t.scale.as_ptr()),
                        _mm512_loadu_ps(t.shift.as_ptr()),
                        _mm512_set1_ps(t.slope),
                    )
                })
            });
            for y in 0..iy_n {
                for xp in 0..wp {
                    let d = dst.add((y * wp + xp) * VOX);
                    let inside = xp >= px && xp < px + ix_n;
                    for (h, src) in halves.iter().enumerate() {
                        let v = match src {
                            Some((s, _)) if inside => {
                                let mut x = _mm512_loadu_ps(s.add((y * ix_n + xp - px) * LANES));
                                if let Some((sc, sh, sl)) = xfs[h] {
                                    let t = _mm512_fmadd_ps(x, sc, sh);
                                    x = _mm512_max_ps(t, _mm512_mul_ps(t, sl));
                                }
                                std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x))
                            }
                            _ => zero,
                        };
                        _mm256_storeu_si256(d.add(h * 32) as *mut __m256i, v);
                    }
                }
            }
        }
    }

    /// The general conversion, one channel at a time, for sources whose channels do not start on a
    /// 16-channel boundary of the concatenation (rare: odd skip channel counts).
    ///
    /// # Safety
    /// As [`convert_plane`]; `blocks` describe planes `z` of valid sources.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn convert_plane_any(
        blocks: &[InBlock],
        kb: usize,
        z: usize,
        in_dims: [usize; 3],
        dst: *mut u8,
        px: usize,
    ) {
        let [iz_n, iy_n, ix_n] = in_dims;
        let wp = ix_n + 2 * px;
        unsafe {
            std::ptr::write_bytes(dst, 0, iy_n * wp * VOX);
            let d16 = dst as *mut u16;
            for blk in blocks {
                for l in 0..blk.lanes {
                    let ic = blk.ic0 + l;
                    if ic / KB != kb {
                        continue;
                    }
                    let slot = ic % KB;
                    let src = blk.data.0.add((blk.ib * iz_n + z) * iy_n * ix_n * LANES);
                    for y in 0..iy_n {
                        for x in 0..ix_n {
                            let mut v = *src.add((y * ix_n + x) * LANES + l);
                            if let Some(t) = &blk.xf {
                                v = t.apply(l, v);
                            }
                            *d16.add((y * wp + x + px) * KB + slot) =
                                super::super::bf16::to_bf16(v) as u16;
                        }
                    }
                }
            }
        }
    }

    /// Largest divisor of `n` that is at most 16: the rows of one accumulator tile.
    fn tile_rows(n: usize) -> usize {
        (1..=16.min(n))
            .rev()
            .find(|&m| n.is_multiple_of(m))
            .unwrap_or(1)
    }

    struct Ctx<'a> {
        spec: &'a ConvSpec,
        w: &'a AmxWeights,
        groups: &'a [Group],
        /// Converted input planes `iz_lo ..` of every 32-channel block, `[kb][z - iz_lo][y][x + 2 px]`
        /// voxels of 64 bytes, `zs` planes per block.
        input: *const u8,
        iz_lo: usize,
        zs: usize,
        in_dims: [usize; 3],
        out_dims: [usize; 3],
        out: SendPtr<f32>,
        oy_step: usize,
        m: usize,
        want_stats: bool,
    }
    // SAFETY: read-only pointers except `out`, written at disjoint rows per work item.
    unsafe impl Sync for Ctx<'_> {}

    /// Output rows `ys * oy_step ..` of plane `oz` of output blocks `g`.
    ///
    /// # Safety
    /// AMX-BF16 granted ([`super::amx_supported`]) and AVX512F; no other thread touches those rows.
    #[target_feature(enable = "avx512f")]
    unsafe fn item(ctx: &Ctx, g: usize, oz: usize, ys: usize, st: &mut [f64]) {
        let spec = ctx.spec;
        let group = &ctx.groups[g];
        let (ob0, nob) = (group.ob0, group.nob);
        let [kz_n, ky_n, kx_n] = spec.kernel;
        let [sz, sy, sx] = spec.stride;
        let [pz, py, px] = spec.pad;
        let [iz_n, iy_n, ix_n] = ctx.in_dims;
        let [oz_n, oy_n, ox_n] = ctx.out_dims;
        let wp = ix_n + 2 * px;
        let (kb_n, taps) = (ctx.w.kb_n, ctx.w.taps);
        let m = ctx.m;
        let xt_n = ox_n / m;
        let out_sob = oz_n * oy_n * ox_n * LANES;
        let oy_lo = ys * ctx.oy_step;
        let oy_hi = (oy_lo + ctx.oy_step).min(oy_n);
        let a_stride = sx * VOX;
        let w = ctx.w.w.as_ptr() as *const u8;
        let bias = ctx.w.bias.as_ptr() as *const u8;
        let cfg = TileConfig::new(m);
        let (kzs, n_kz) = valid_taps(oz, kz_n, sz, pz, iz_n);
        // SAFETY (whole body): every tile load reads inside the converted input (padded rows, `x`
        // positions below `(ox_n - 1) * sx + kx_n <= wp`), the packed weights or the bias tiles; every
        // store writes this item's output rows.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
            for oy in oy_lo..oy_hi {
                let (kys, n_ky) = valid_taps(oy, ky_n, sy, py, iy_n);
                let out_row = ctx
                    .out
                    .0
                    .add((((ob0 * oz_n + oz) * oy_n + oy) * ox_n) * LANES)
                    as *mut u8;
                let mut xt = 0;
                while xt < xt_n {
                    let two_x = xt + 1 < xt_n;
                    let x0 = xt * m;
                    let b0 = bias.add(ob0 * 16 * VOX);
                    let b1 = bias.add((ob0 + nob - 1) * 16 * VOX);
                    asm!(
                        "tileloadd tmm0, [{b0} + {s}*1]",
                        "tileloadd tmm1, [{b1} + {s}*1]",
                        "tileloadd tmm2, [{b0} + {s}*1]",
                        "tileloadd tmm3, [{b1} + {s}*1]",
                        b0 = in(reg) b0, b1 = in(reg) b1, s = in(reg) VOX,
                        options(nostack, readonly),
                    );
                    for kb in 0..kb_n {
                        for &(kz, iz) in &kzs[..n_kz] {
                            for &(ky, iy) in &kys[..n_ky] {
                                let row = ctx.input.add(
                                    (((kb * ctx.zs + iz - ctx.iz_lo) * iy_n + iy) * wp + x0 * sx)
                                        * VOX,
                                );
                                for kx in 0..kx_n {
                                    let t = (kz * ky_n + ky) * kx_n + kx;
                                    let a0 = row.add(kx * VOX);
                                    let a1 = a0.wrapping_add(m * a_stride);
                                    let wb0 = w.add((((ob0 * kb_n) + kb) * taps + t) * 16 * VOX);
                                    let wb1 = w
                                        .add((((ob0 + nob - 1) * kb_n + kb) * taps + t) * 16 * VOX);
                                    match (two_x, nob) {
                                        (true, 2) => asm!(
                                            "tileloadd tmm4, [{a0} + {sa}*1]",
                                            "tileloadd tmm6, [{w0} + {sw}*1]",
                                            "tdpbf16ps tmm0, tmm4, tmm6",
                                            "tileloadd tmm7, [{w1} + {sw}*1]",
                                            "tdpbf16ps tmm1, tmm4, tmm7",
                                            "tileloadd tmm5, [{a1} + {sa}*1]",
                                            "tdpbf16ps tmm2, tmm5, tmm6",
                                            "tdpbf16ps tmm3, tmm5, tmm7",
                                            a0 = in(reg) a0, a1 = in(reg) a1, sa = in(reg) a_stride,
                                            w0 = in(reg) wb0, w1 = in(reg) wb1, sw = in(reg) VOX,
                                            options(nostack, readonly),
                                        ),
                                        (true, _) => asm!(
                                            "tileloadd tmm4, [{a0} + {sa}*1]",
                                            "tileloadd tmm6, [{w0} + {sw}*1]",
                                            "tdpbf16ps tmm0, tmm4, tmm6",
                                            "tileloadd tmm5, [{a1} + {sa}*1]",
                                            "tdpbf16ps tmm2, tmm5, tmm6",
                                            a0 = in(reg) a0, a1 = in(reg) a1, sa = in(reg) a_stride,
                                            w0 = in(reg) wb0, sw = in(reg) VOX,
                                            options(nostack, readonly),
                                        ),
                                        (false, 2) => asm!(
                                            "tileloadd tmm4, [{a0} + {sa}*1]",
                                            "tileloadd tmm6, [{w0} + {sw}*1]",
                                            "tdpbf16ps tmm0, tmm4, tmm6",
                                            "tileloadd tmm7, [{w1} + {sw}*1]",
                                            "tdpbf16ps tmm1, tmm4, tmm7",
                                            a0 = in(reg) a0, sa = in(reg) a_stride,
                                            w0 = in(reg) wb0, w1 = in(reg) wb1, sw = in(reg) VOX,
                                            options(nostack, readonly),
                                        ),
                                        _ => asm!(
                                            "tileloadd tmm4, [{a0} + {sa}*1]",
                                            "tileloadd tmm6, [{w0} + {sw}*1]",
                                            "tdpbf16ps tmm0, tmm4, tmm6",
                                            a0 = in(reg) a0, sa = in(reg) a_stride,
                                            w0 = in(reg) wb0, sw = in(reg) VOX,
                                            options(nostack, readonly),
                                        ),
                                    }
                                }
                            }
                        }
                    }
                    let o0 = out_row.add(x0 * VOX);
                    let o1 = o0.wrapping_add(out_sob * 4);
                    let o2 = o0.wrapping_add(m * VOX);
                    let o3 = o1.wrapping_add(m * VOX);
                    asm!("tilestored [{o} + {s}*1], tmm0", o = in(reg) o0, s = in(reg) VOX,
                        options(nostack));
                    if nob == 2 {
                        asm!("tilestored [{o} + {s}*1], tmm1", o = in(reg) o1, s = in(reg) VOX,
                            options(nostack));
                    }
                    if two_x {
                        asm!("tilestored [{o} + {s}*1], tmm2", o = in(reg) o2, s = in(reg) VOX,
                            options(nostack));
                        if nob == 2 {
                            asm!("tilestored [{o} + {s}*1], tmm3", o = in(reg) o3,
                                s = in(reg) VOX, options(nostack));
                        }
                    }
                    xt += if two_x { 2 } else { 1 };
                }
                if ctx.want_stats {
                    super::super::conv::row_stats::<Avx512>(
                        out_row as *const f32,
                        out_sob,
                        nob,
                        ox_n,
                        st,
                    );
                }
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }

    thread_local! {
        /// The converted input of the current slab, kept between convolutions (at most about
        /// [`SLAB_BYTES`]).
        static CONVERTED: std::cell::RefCell<Vec<super::super::Block>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The converted-input buffer while a convolution uses it; dropping it returns it to [`CONVERTED`].
    struct Converted(Vec<super::super::Block>);

    impl Drop for Converted {
        fn drop(&mut self) {
            CONVERTED.set(std::mem::take(&mut self.0));
        }
    }

    /// Bytes of converted input per slab of output planes.
    const SLAB_BYTES: usize = 64 << 20;

    /// AMX convolution of the concatenated `blocks` into `out` (already shaped); see the module doc.
    ///
    /// The output planes are computed in slabs whose converted input fits [`SLAB_BYTES`], so the bf16
    /// copy of a wide skip concatenation never exists whole.
    pub(crate) fn run(
        spec: &ConvSpec,
        weights: &AmxWeights,
        blocks: &[InBlock],
        in_dims: [usize; 3],
        out: &mut Act,
        stats: Option<&mut ChannelStats>,
    ) -> Result<(), EngineError> {
        let [iz_n, iy_n, ix_n] = in_dims;
        let [kz_n, _, _] = spec.kernel;
        let (sz, pz) = (spec.stride[0], spec.pad[0]);
        let px = spec.pad[2];
        let wp = ix_n + 2 * px;
        let kb_n = weights.kb_n;
        let plane = iy_n * wp;
        let out_dims = out.dims();
        let oz_n = out_dims[0];
        // output planes per slab: their input planes, `(s - 1) * sz + kz_n`, of every block fit
        let plane_bytes = kb_n * plane * VOX;
        let max_in_planes = (SLAB_BYTES / plane_bytes.max(1)).max(kz_n);
        let slab = ((max_in_planes - kz_n) / sz + 1).clamp(1, oz_n);
        let zs = ((slab - 1) * sz + kz_n).min(iz_n);
        // the buffer goes back to the thread-local on every return path
        let mut buf = Converted(CONVERTED.take());
        let need = kb_n * zs * plane;
        if buf.0.len() < need {
            let more = need - buf.0.len();
            if buf.0.try_reserve_exact(more).is_err() {
                return Err(EngineError::OutOfMemory {
                    bytes: need.saturating_mul(VOX),
                });
            }
            buf.0.resize(need, super::super::Block([0.0; LANES]));
        }
        let buf = &mut buf.0;
        let aligned = blocks.iter().all(|b| b.ic0 % LANES == 0);
        let base = SendPtr(buf.as_mut_ptr() as *mut u8);
        let ob_n = spec.out_channels.div_ceil(LANES);
        // pairs of output blocks (two accumulator tiles); the tile weights are not grouped
        let groups = make_groups(ob_n, 0);
        let out_ptr = SendPtr(out.as_mut_slice().as_mut_ptr());
        let voxels: usize = out_dims.iter().product();
        let mut total = stats.as_ref().map(|_| ChannelStats {
            sum: vec![0.0; spec.out_channels],
            sumsq: vec![0.0; spec.out_channels],
            count: voxels,
        });
        let mut z0 = 0;
        while z0 < oz_n {
            let z1 = (z0 + slab).min(oz_n);
            // input planes the output planes z0..z1 read
            let iz_lo = (z0 * sz).saturating_sub(pz);
            let iz_hi = ((z1 - 1) * sz + kz_n).saturating_sub(pz).min(iz_n);
            let nz = iz_hi - iz_lo;
            debug_assert!(nz <= zs);
            (0..kb_n * nz).into_par_iter().for_each(|i| {
                let (kb, dz) = (i / nz, i % nz);
                let z = iz_lo + dz;
                // the whole `SendPtr` (the closure would otherwise capture its raw, non-Send field)
                #[allow(clippy::redundant_locals)]
                let base = base;
                // SAFETY: plane (kb, dz) of the buffer belongs to this iteration only; the sources
                // hold their planes `z`; AVX512_BF16 was checked by `amx_supported`.
                unsafe {
                    let dst = base.0.add((kb * zs + dz) * plane * VOX);
                    if aligned {
                        let mut halves = [None, None];
                        for blk in blocks {
                            if blk.ic0 / KB == kb {
                                halves[(blk.ic0 % KB) / LANES] = Some((
                                    blk.data.0.add((blk.ib * iz_n + z) * iy_n * ix_n * LANES)
                                        as *const f32,
                                    blk.xf,
                                ));
                            }
                        }
                        convert_plane(halves, dst, iy_n, ix_n, px);
                    } else {
                        convert_plane_any(blocks, kb, z, in_dims, dst, px);
                    }
                }
            });
            let (ysplit, oy_step) = row_split(groups.len() * (z1 - z0), out_dims[1]);
            let ctx = Ctx {
                spec,
                w: weights,
                groups: &groups,
                input: buf.as_ptr() as *const u8,
                iz_lo,
                zs,
                in_dims,
                out_dims,
                out: out_ptr,
                oy_step,
                m: tile_rows(out_dims[2]),
                want_stats: total.is_some(),
            };
            let mut part = ChannelStats::default();
            run_items(
                &groups,
                z1 - z0,
                ysplit,
                voxels,
                spec.out_channels,
                total.as_ref().map(|_| &mut part),
                |g, dz, ys, st| {
                    // SAFETY: the caller checked `amx_supported`; item (g, z0 + dz, ys) writes only
                    // its rows.
                    unsafe { item(&ctx, g, z0 + dz, ys, st) }
                },
            );
            if let Some(t) = total.as_mut() {
                for c in 0..spec.out_channels {
                    t.sum[c] += part.sum[c];
                    t.sumsq[c] += part.sumsq[c];
                }
            }
            z0 = z1;
        }
        if let (Some(s), Some(t)) = (stats, total) {
            *s = t;
        }
        // padding lanes of a partial last output block: the weights and bias there are 0, so they are 0.
        Ok(())
    }
}

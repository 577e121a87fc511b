//! Transposed 3-D convolution with stride equal to the kernel (nnU-Net's upsampling): every output voxel
//! receives exactly one input voxel, so each kernel tap is a 1x1x1 convolution writing a strided subset
//! of the output. It reuses the f32 micro-kernels of [`super::conv`].

use super::conv::{
    block_slice_mut, input_blocks, make_groups, row_dispatch, run_items, try_blocks, Group, Init,
    Micro, Row, SendPtr, SCRATCH,
};
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::simd::{Portable, V16};
use super::{blocks_of, run_error, Act, Block, Isa, Xf, LANES};
use crate::EngineError;

/// A transposed convolution with stride = kernel (e.g. `[2, 2, 2]` or `[1, 2, 2]`), no padding, weights
/// repacked once for an [`Isa`] (always f32).
pub struct PackedConvTranspose {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 3],
    isa: Isa,
    groups: Vec<Group>,
    weights: Vec<Block>,
    bias: Vec<Block>,
}

impl PackedConvTranspose {
    /// Packs `weight` (PyTorch order `(in, out, kz, ky, kx)`) and `bias` (`out`).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 3],
        weight: &[f32],
        bias: Option<&[f32]>,
        isa: Isa,
    ) -> Result<Self, EngineError> {
        let taps: usize = kernel.iter().product();
        if taps == 0 || in_channels == 0 || out_channels == 0 {
            return Err(run_error(format!(
                "invalid transposed convolution {in_channels} -> {out_channels}, kernel {kernel:?}"
            )));
        }
        let expected = in_channels * out_channels * taps;
        if weight.len() != expected {
            return Err(run_error(format!(
                "transposed convolution {in_channels} -> {out_channels}, kernel {kernel:?}: {} weights, expected {expected}",
                weight.len()
            )));
        }
        if bias.is_some_and(|b| b.len() != out_channels) {
            return Err(run_error(format!(
                "transposed convolution with {out_channels} outputs: bias of another length"
            )));
        }
        if !isa.supported() {
            return Err(run_error(format!("this CPU cannot run {isa:?} kernels")));
        }
        let out_blocks = blocks_of(out_channels);
        let groups = make_groups(out_blocks, taps * in_channels);
        let mut weights = try_blocks(out_blocks * taps * in_channels)?;
        let w = block_slice_mut(&mut weights);
        for g in &groups {
            for t in 0..taps {
                for ic in 0..in_channels {
                    for o in 0..g.nob {
                        for l in 0..LANES {
                            let oc = (g.ob0 + o) * LANES + l;
                            if oc < out_channels {
                                w[g.w_off + ((t * in_channels + ic) * g.nob + o) * LANES + l] =
                                    weight[(ic * out_channels + oc) * taps + t];
                            }
                        }
                    }
                }
            }
        }
        let mut bias_blocks = try_blocks(out_blocks)?;
        if let Some(b) = bias {
            block_slice_mut(&mut bias_blocks)[..b.len()].copy_from_slice(b);
        }
        Ok(PackedConvTranspose {
            in_channels,
            out_channels,
            kernel,
            isa,
            groups,
            weights,
            bias: bias_blocks,
        })
    }

    /// Output spatial shape: the input's times the kernel.
    pub fn out_dims(&self, in_dims: [usize; 3]) -> [usize; 3] {
        std::array::from_fn(|a| in_dims[a] * self.kernel[a])
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }
}

struct Ctx<'a> {
    conv: &'a PackedConvTranspose,
    blocks: Vec<super::conv::InBlock>,
    in_dims: [usize; 3],
    out: SendPtr<f32>,
}
// SAFETY: read-only pointers except `out`, written at disjoint planes per work item.
unsafe impl Sync for Ctx<'_> {}

/// Input plane `iz` of group `g` into output planes `iz * kz ..`. The rows of a deferred input
/// ([`super::defer_norm_act`]) are normalised once into a staging buffer and read from there by every tap.
///
/// # Safety
/// The CPU runs `V`; no other thread writes those output planes of group `g`.
#[inline(always)]
unsafe fn item<V: V16>(ctx: &Ctx, g: usize, iz: usize) {
    let conv = ctx.conv;
    let group = &conv.groups[g];
    let [kz, ky, kx] = conv.kernel;
    let [iz_n, iy_n, ix_n] = ctx.in_dims;
    let [oz_n, oy_n, ox_n] = [iz_n * kz, iy_n * ky, ix_n * kx];
    let cin = conv.in_channels;
    let nob = group.nob;
    let weights = conv.weights.as_ptr() as *const f32;
    let staged = ctx.blocks.iter().any(|b| b.xf.is_some());
    let mut scratch = SCRATCH.take();
    if staged && scratch.len() < ctx.blocks.len() * ix_n {
        scratch.resize(ctx.blocks.len() * ix_n, Block([0.0; LANES]));
    }
    let scratch_ptr = scratch.as_mut_ptr() as *mut f32;
    let mut srcs: Vec<*const f32> = Vec::with_capacity(ctx.blocks.len());
    let mut rows: Vec<Row<f32>> = Vec::with_capacity(ctx.blocks.len());
    for iy in 0..iy_n {
        srcs.clear();
        for (i, blk) in ctx.blocks.iter().enumerate() {
            // SAFETY: in-bounds row of the source; the scratch holds a row per block.
            unsafe {
                let src = blk
                    .data
                    .0
                    .add(((blk.ib * iz_n + iz) * iy_n + iy) * ix_n * LANES)
                    as *const f32;
                match &blk.xf {
                    Some(t) => {
                        let dst = scratch_ptr.add(i * ix_n * LANES);
                        normalise_row::<V>(src, dst, ix_n, t);
                        srcs.push(dst);
                    }
                    None => srcs.push(src),
                }
            }
        }
        for a in 0..kz {
            let oz = iz * kz + a;
            for b in 0..ky {
                let oy = iy * ky + b;
                for c in 0..kx {
                    let t = (a * ky + b) * kx + c;
                    rows.clear();
                    for (blk, &x) in ctx.blocks.iter().zip(&srcs) {
                        rows.push(Row {
                            x,
                            // SAFETY: in-bounds weights of tap `t` and the block's channels.
                            w: unsafe {
                                weights.add(group.w_off + (t * cin + blk.ic0) * nob * LANES)
                            },
                            lanes: blk.lanes,
                        });
                    }
                    let m = Micro {
                        rows: &rows,
                        kw: 1,
                        in_sx: LANES,
                        w_kx: 0,
                        w_l: nob * LANES,
                        // SAFETY: output position (oz, oy, c) of the group's first block.
                        out: unsafe {
                            ctx.out
                                .0
                                .add(((((group.ob0 * oz_n + oz) * oy_n + oy) * ox_n) + c) * LANES)
                        },
                        out_sx: kx * LANES,
                        out_sob: oz_n * oy_n * ox_n * LANES,
                        init: Init::Bias(unsafe {
                            (conv.bias.as_ptr() as *const f32).add(group.ob0 * LANES)
                        }),
                    };
                    // SAFETY: rows hold `ix_n` positions; outputs `c + j * kx` for j < ix_n.
                    unsafe { row_dispatch::<V>(&m, nob, 1, ix_n) };
                }
            }
        }
    }
    SCRATCH.set(scratch);
}

/// `dst = max(y, slope * y)`, `y = src * scale + shift`, over `n` voxels of one block.
///
/// # Safety
/// The CPU runs `V`; `src` and `dst` hold `n * 16` f32.
#[inline(always)]
unsafe fn normalise_row<V: V16>(src: *const f32, dst: *mut f32, n: usize, t: &Xf) {
    unsafe {
        let (sc, sh) = (V::load(t.scale.as_ptr()), V::load(t.shift.as_ptr()));
        let slope = V::load([t.slope; LANES].as_ptr());
        for i in 0..n {
            let y = sh.fma(V::load(src.add(i * LANES)), sc);
            y.max(y.mul(slope)).store(dst.add(i * LANES));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn item_avx512(ctx: &Ctx, g: usize, iz: usize) {
    unsafe { item::<Avx512>(ctx, g, iz) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn item_avx2(ctx: &Ctx, g: usize, iz: usize) {
    unsafe { item::<Avx2>(ctx, g, iz) }
}

/// Transposed convolution (stride = kernel) of `input` into `out` (reshaped to `input dims * kernel`).
/// A deferred `input` is normalised as it is read. Work is spread over rayon's current pool.
pub fn conv_transpose3d(
    input: &Act,
    conv: &PackedConvTranspose,
    out: &mut Act,
) -> Result<(), EngineError> {
    let (blocks, in_dims) = input_blocks(&[input], conv.in_channels)?;
    let out_dims = conv.out_dims(in_dims);
    out.reshape(conv.out_channels, out_dims)?;
    let ctx = Ctx {
        conv,
        blocks,
        in_dims,
        out: SendPtr(out.as_mut_slice().as_mut_ptr()),
    };
    let isa = conv.isa;
    run_items(
        &conv.groups,
        in_dims[0],
        1,
        0,
        conv.out_channels,
        None,
        |g, iz, _, _| match isa {
            // SAFETY: `new` checked the CPU runs `isa`; item (g, iz) writes only its own planes.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Amx => unsafe { item_avx512(&ctx, g, iz) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { item_avx2(&ctx, g, iz) },
            // SAFETY: as above, portable code.
            _ => unsafe { item::<Portable>(&ctx, g, iz) },
        },
    );
    Ok(())
}

//! InstanceNorm + activation, activation, and residual addition: memory-bound passes over the blocked
//! data, spread over rayon's current pool in chunks of one block plane.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::simd::V16;
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
#[cfg(target_arch = "x86_64")]
use super::Isa;
use super::{slope_of, Act, Activation, ChannelStats, Deferred, LANES};

/// Voxels per parallel chunk (large enough to amortise scheduling).
const CHUNK_VOXELS: usize = 4096;

#[inline(always)]
fn apply(v: f32, act: Activation) -> f32 {
    match act {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::LeakyRelu(slope) => {
            if v >= 0.0 {
                v
            } else {
                v * slope
            }
        }
    }
}

/// `v = act(v * sc + sh)` over `n` voxels of one block: LeakyReLU with a slope in [0, 1] is
/// `max(v, slope * v)`, ReLU `max(v, 0)`.
///
/// # Safety
/// The CPU runs `V`; `v` holds `n * 16` f32.
#[inline(always)]
#[cfg(target_arch = "x86_64")]
unsafe fn ssa_run<V: V16>(
    v: *mut f32,
    n: usize,
    sc: &[f32; LANES],
    sh: &[f32; LANES],
    act: Activation,
) {
    unsafe {
        let (s, h) = (V::load(sc.as_ptr()), V::load(sh.as_ptr()));
        let zero = V::zero();
        let slope_arr = [match act {
            Activation::LeakyRelu(a) => a,
            _ => 0.0,
        }; LANES];
        let slope = V::load(slope_arr.as_ptr());
        for i in 0..n {
            let p = v.add(i * LANES);
            let x = h.fma(V::load(p), s);
            let y = match act {
                Activation::None => x,
                Activation::Relu => x.max(zero),
                Activation::LeakyRelu(_) => x.max(x.mul(slope)),
            };
            y.store(p);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn ssa_avx512(v: *mut f32, n: usize, sc: &[f32; LANES], sh: &[f32; LANES], act: Activation) {
    unsafe { ssa_run::<Avx512>(v, n, sc, sh, act) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn ssa_avx2(v: *mut f32, n: usize, sc: &[f32; LANES], sh: &[f32; LANES], act: Activation) {
    unsafe { ssa_run::<Avx2>(v, n, sc, sh, act) }
}

/// `t = act(t * scale + shift)` with per-channel `scale`/`shift` given per block as 16-lane arrays.
fn scale_shift_act(t: &mut Act, scale: &[[f32; LANES]], shift: &[[f32; LANES]], act: Activation) {
    let voxels = t.voxels();
    if voxels == 0 {
        return;
    }
    // the vector kernels: x86-64 with AVX-512 or AVX2 and an activation of the form max(y, s * y)
    #[cfg(target_arch = "x86_64")]
    let vector = {
        let slope_ok = !matches!(act, Activation::LeakyRelu(a) if !(0.0..=1.0).contains(&a));
        match super::detect_isa() {
            Isa::Amx | Isa::Avx512 if slope_ok => Some(Isa::Avx512),
            Isa::Avx2 if slope_ok => Some(Isa::Avx2),
            _ => None,
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vector: Option<std::convert::Infallible> = None;
    t.as_mut_slice()
        .par_chunks_mut(CHUNK_VOXELS * LANES)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut first = i * CHUNK_VOXELS;
            let mut rest = chunk;
            while !rest.is_empty() {
                let b = first / voxels;
                // voxels of this chunk in block b
                let n = ((b + 1) * voxels - first).min(rest.len() / LANES);
                let (head, tail) = rest.split_at_mut(n * LANES);
                let (sc, sh) = (&scale[b], &shift[b]);
                match vector {
                    // SAFETY: `detect_isa` says the CPU runs it; `head` holds `n` voxels.
                    #[cfg(target_arch = "x86_64")]
                    Some(Isa::Avx2) => unsafe { ssa_avx2(head.as_mut_ptr(), n, sc, sh, act) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    Some(_) => unsafe { ssa_avx512(head.as_mut_ptr(), n, sc, sh, act) },
                    #[cfg(not(target_arch = "x86_64"))]
                    Some(never) => match never {},
                    None => {
                        for v in head.chunks_exact_mut(LANES) {
                            for l in 0..LANES {
                                v[l] = apply(v[l] * sc[l] + sh[l], act);
                            }
                        }
                    }
                }
                first += n;
                rest = tail;
            }
        });
}

/// InstanceNorm with affine parameters, then `act`, in place:
/// `act((t - mean) / sqrt(var + eps) * gamma + beta)` per channel, with the mean and biased variance
/// from `stats`, as PyTorch's `InstanceNorm3d(affine=True, track_running_stats=False)`. Mean and variance
/// are computed in f64 from the sums. Padding lanes stay 0.
///
/// # Panics
/// When `stats`, `gamma` or `beta` do not have one entry per channel of `t`.
pub fn norm_act(
    t: &mut Act,
    stats: &ChannelStats,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Activation,
) {
    let (scale, shift) = norm_scale_shift(t, stats, gamma, beta, eps);
    t.deferred = None;
    scale_shift_act(t, &scale, &shift, act);
}

/// As [`norm_act`], but without a pass over the data: `t` becomes deferred ([`Act::is_deferred`]) and
/// the readers that copy their input anyway (the AMX and AVX512_BF16 conversions, the narrow path's
/// segmented planes, the transposed convolution's staged rows) apply the normalisation and activation
/// as they read; any other reader needs [`materialize`] first (the native backend's executor does it).
/// An activation that is not `max(y, s * y)` for an `s` in [0, 1] is applied at once, as [`norm_act`].
///
/// # Panics
/// As [`norm_act`].
pub fn defer_norm_act(
    t: &mut Act,
    stats: &ChannelStats,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Activation,
) {
    if slope_of(act).is_none() {
        return norm_act(t, stats, gamma, beta, eps, act);
    }
    let (scale, shift) = norm_scale_shift(t, stats, gamma, beta, eps);
    t.deferred = Some(Deferred { scale, shift, act });
}

/// Applies a deferred normalisation and activation ([`defer_norm_act`]) in one pass; nothing when `t`
/// is not deferred.
pub fn materialize(t: &mut Act) {
    if let Some(d) = t.deferred.take() {
        scale_shift_act(t, &d.scale, &d.shift, d.act);
    }
}

/// Per-block scale and shift of InstanceNorm with affine parameters (padding lanes 0).
fn norm_scale_shift(
    t: &Act,
    stats: &ChannelStats,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (Vec<[f32; LANES]>, Vec<[f32; LANES]>) {
    let c = t.channels();
    assert!(
        stats.sum.len() == c && stats.sumsq.len() == c && gamma.len() == c && beta.len() == c,
        "norm_act: {c} channels, but stats/gamma/beta of other lengths"
    );
    let blocks = t.blocks();
    let mut scale = vec![[0.0f32; LANES]; blocks];
    let mut shift = vec![[0.0f32; LANES]; blocks];
    let n = stats.count.max(1) as f64;
    for ch in 0..c {
        let mean = stats.sum[ch] / n;
        let var = (stats.sumsq[ch] / n - mean * mean).max(0.0);
        let s = gamma[ch] as f64 / (var + eps as f64).sqrt();
        scale[ch / LANES][ch % LANES] = s as f32;
        shift[ch / LANES][ch % LANES] = (beta[ch] as f64 - mean * s) as f32;
    }
    (scale, shift)
}

/// Applies `act` in place.
pub fn activate(t: &mut Act, act: Activation) {
    materialize(t);
    if act == Activation::None {
        return;
    }
    let blocks = t.blocks();
    scale_shift_act(
        t,
        &vec![[1.0; LANES]; blocks],
        &vec![[0.0; LANES]; blocks],
        act,
    );
}

/// `t += other` (residual connection); a deferred `t` is materialised first.
///
/// # Panics
/// When the shapes differ, or `other` is deferred ([`materialize`] it first).
pub fn add_assign(t: &mut Act, other: &Act) {
    assert!(
        !other.is_deferred(),
        "add_assign: the added tensor is deferred"
    );
    materialize(t);
    assert!(
        t.channels() == other.channels() && t.dims() == other.dims(),
        "add_assign: shapes differ ({} x {:?} and {} x {:?})",
        t.channels(),
        t.dims(),
        other.channels(),
        other.dims()
    );
    t.as_mut_slice()
        .par_chunks_mut(CHUNK_VOXELS * LANES)
        .zip(other.as_slice().par_chunks(CHUNK_VOXELS * LANES))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y));
}

//! InstanceNorm + activation, activation, and residual addition: memory-bound passes over the blocked
//! data, spread over rayon's current pool in chunks of one block plane.

use rayon::prelude::*;

use super::{Act, Activation, ChannelStats, LANES};

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

/// `t = act(t * scale + shift)` with per-channel `scale`/`shift` given per block as 16-lane arrays.
fn scale_shift_act(t: &mut Act, scale: &[[f32; LANES]], shift: &[[f32; LANES]], act: Activation) {
    let voxels = t.voxels();
    if voxels == 0 {
        return;
    }
    t.as_mut_slice()
        .par_chunks_mut(CHUNK_VOXELS * LANES)
        .enumerate()
        .for_each(|(i, chunk)| {
            let first_voxel = i * CHUNK_VOXELS;
            for (k, v) in chunk.chunks_exact_mut(LANES).enumerate() {
                let b = (first_voxel + k) / voxels;
                let (sc, sh) = (&scale[b], &shift[b]);
                for l in 0..LANES {
                    v[l] = apply(v[l] * sc[l] + sh[l], act);
                }
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
    scale_shift_act(t, &scale, &shift, act);
}

/// Applies `act` in place.
pub fn activate(t: &mut Act, act: Activation) {
    if act == Activation::None {
        return;
    }
    t.as_mut_slice()
        .par_chunks_mut(CHUNK_VOXELS * LANES)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = apply(*v, act)));
}

/// `t += other` (residual connection).
///
/// # Panics
/// When the shapes differ.
pub fn add_assign(t: &mut Act, other: &Act) {
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

//! nnU-Net's Gaussian importance map, bit for bit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ndarray::Array3;

use crate::error::{Result, TilingError};

/// The f32 Gaussian importance map of nnU-Net 1.7.1 for a patch of `patch` (z, y, x).
///
/// Bit-identical to `SegmentationNetwork._get_gaussian(patch, sigma_scale=1/8)`, which filters a unit delta at
/// `patch // 2` with `scipy.ndimage.gaussian_filter(sigma=patch/8, order=0, mode='constant', cval=0,
/// truncate=4.0)` in f64, divides by the maximum, casts to f32 and replaces zeros by the smallest nonzero
/// value. Because the input is a delta and the border mode is `constant`, the filter reduces to a closed
/// form that is evaluated here with the same f64 operations scipy 1.17 performs:
///
/// - per axis, `radius = int(4.0 * sigma + 0.5)`, `phi(t) = exp((-0.5 / sigma^2) * t^2)` for
///   `t = -radius..=radius`, normalised by numpy's pairwise sum of `phi` (reproduced exactly);
/// - scipy's separable correlation (axis 0, then 1, then 2) turns the delta into
///   `(w0[z] * w1[y]) * w2[x]`, with one rounding per product, where `wa[i] = phi(i - patch_a // 2)`
///   (an offset beyond the radius cannot occur for a centred delta);
/// - division by the maximum (the centre value), cast to f32.
///
/// The only dependence on the platform is `f64::exp` (the C library's `exp`, as Python's `math.exp`; the
/// goldens show that numpy's own `exp` gives the same f32 map).
pub fn gaussian_importance_map(patch: [usize; 3]) -> Result<Array3<f32>> {
    if patch.contains(&0) {
        return Err(TilingError::EmptyPatch { patch });
    }
    let w: [Vec<f64>; 3] = std::array::from_fn(|a| axis_weights(patch[a]));
    // Rounding is monotonic, so the maximum of the rounded products is the product of the maxima.
    let max = w
        .iter()
        .map(|v| v.iter().copied().fold(0.0f64, f64::max))
        .fold(1.0f64, |acc, m| acc * m);
    let mut g = Array3::from_shape_fn((patch[0], patch[1], patch[2]), |(z, y, x)| {
        ((w[0][z] * w[1][y] * w[2][x]) / max) as f32
    });
    // "gaussian_importance_map cannot be 0": nnU-Net replaces zeros by the smallest nonzero value.
    let min_nonzero = g
        .iter()
        .copied()
        .filter(|&v| v != 0.0)
        .fold(f32::INFINITY, f32::min);
    if min_nonzero.is_finite() {
        g.mapv_inplace(|v| if v == 0.0 { min_nonzero } else { v });
    }
    Ok(g)
}

/// Maps computed so far, per patch size.
type GaussianCache = HashMap<[usize; 3], Arc<Array3<f32>>>;

/// The cached importance map for `patch`: computed once per patch size and process, then shared.
///
/// nnU-Net caches the last map on the network object; this cache keeps one map per patch size.
pub fn cached_gaussian_importance_map(patch: [usize; 3]) -> Result<Arc<Array3<f32>>> {
    static CACHE: OnceLock<Mutex<GaussianCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(g) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&patch) {
        return Ok(Arc::clone(g));
    }
    // Computed outside the lock: two threads racing on a new size both compute the same map.
    let g = Arc::new(gaussian_importance_map(patch)?);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Arc::clone(map.entry(patch).or_insert(g)))
}

/// The normalised 1-D kernel of scipy's `_gaussian_kernel1d(sigma, 0, radius)` sampled at the patch
/// positions `0..len`, i.e. at offsets `i - len // 2` from the delta.
pub(crate) fn axis_weights(len: usize) -> Vec<f64> {
    let sigma = len as f64 * (1.0 / 8.0);
    let radius = (4.0 * sigma + 0.5) as usize;
    let sigma2 = sigma * sigma;
    let factor = -0.5 / sigma2;
    let r = radius as i64;
    let phi: Vec<f64> = (-r..=r).map(|t| (factor * (t * t) as f64).exp()).collect();
    let sum = nnu_numerics::pairwise_sum(&phi);
    let centre = (len / 2) as i64;
    (0..len as i64)
        .map(|i| {
            let t = i - centre;
            if t.abs() <= r {
                phi[(t + r) as usize] / sum
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_is_one_and_symmetric() {
        let g = gaussian_importance_map([9, 10, 7]).unwrap();
        assert_eq!(g[[4, 5, 3]], 1.0);
        assert_eq!(g[[3, 5, 3]], g[[5, 5, 3]]);
        assert!(g.iter().all(|&v| v > 0.0 && v <= 1.0));
    }

    #[test]
    fn zero_patch_is_an_error_and_cache_shares() {
        assert!(gaussian_importance_map([0, 2, 2]).is_err());
        let a = cached_gaussian_importance_map([4, 5, 6]).unwrap();
        let b = cached_gaussian_importance_map([4, 5, 6]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}

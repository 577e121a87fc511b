//! nnunetv2's sliding-window merge (`nnUNetPredictor._internal_predict_sliding_window_return_logits`,
//! nnunetv2 2.8.1): **logits**, not probabilities, averaged over the mirrors of a tile and weighted over
//! tiles by an fp16 Gaussian.
//!
//! The grid (padding to the patch, `compute_steps_for_sliding_window`, tile order) is v1's and comes from
//! [`TileGrid`]; tiles are cut with [`crate::extract_tile`]. What differs from v1's [`crate::Aggregator`]:
//!
//! - no softmax: the network's logits are merged, and the label manager's non-linearity comes after the
//!   export resampling;
//! - per tile, `prediction = net(x) + Σ flip(net(flip(x)))` over the mirror combinations in
//!   `itertools.combinations` order ([`v2_mirror_order`]), then `prediction /= n` (a division);
//! - the Gaussian ([`gaussian_importance_map_v2`]) is scaled to a maximum of 10 and stored as **fp16**, and
//!   it weights even a grid of one tile (`use_gaussian` is not ignored there, unlike v1);
//! - `predicted_logits[tile] += prediction * g` and `n_predictions[tile] += g`, then one division.
//!
//! Accumulation: nnunetv2 allocates `predicted_logits` and `n_predictions` as `torch.half` (on the CPU as
//! on the GPU), so every addition rounds to fp16 (11 significant bits); [`LogitMerge`] accumulates in f32.
//! On the goldens' small models that changes the logits by 0.005 to 0.2 (`fixtures/v2/predict/*/meta.json`,
//! `fp16_vs_fp32_logits_max_abs`); the goldens of the logits were made with nnunetv2's accumulators
//! rebound to f32, and match [`LogitMerge`] within 1e-4. The Gaussian itself stays fp16, as in nnunetv2.

use ndarray::{s, Array3, Array4, ArrayView4, Zip};

use crate::error::{Result, TilingError};
use crate::gaussian::axis_weights;
use crate::mirror::Mirror;
use crate::steps::{Tile, TileGrid};
use nnu_alloc::{try_from_elem, try_to_owned};

/// `value_scaling_factor` of nnunetv2's `compute_gaussian` as the predictor calls it.
pub const V2_GAUSSIAN_SCALE: f64 = 10.0;

pub use nnu_numerics::round_to_f16;

/// nnunetv2's `compute_gaussian(patch, sigma_scale=1/8, value_scaling_factor=10, dtype=torch.float16)`:
/// scipy's Gaussian filter of a unit delta at `patch // 2` (the same closed form as
/// [`crate::gaussian_importance_map`]), divided by `max / 10` in f64, rounded to fp16, zeros replaced by
/// the smallest nonzero value. Returned as f32 (every fp16 value is exact in f32).
pub fn gaussian_importance_map_v2(patch: [usize; 3]) -> Result<Array3<f32>> {
    if patch.contains(&0) {
        return Err(TilingError::EmptyPatch { patch });
    }
    let w: [Vec<f64>; 3] = std::array::from_fn(|a| axis_weights(patch[a]));
    Ok(v2_map(&w))
}

/// [`gaussian_importance_map_v2`] of a 2-D patch `[py, px]`, as nnunetv2 computes it for a 2-D
/// configuration (a 2-D filter: `w_y[y] * w_x[x]`, no third factor), shaped `(1, py, px)` for a grid
/// with a patch of one slice ([`TileGrid::slices`]).
pub fn gaussian_importance_map_v2_2d(patch: [usize; 2]) -> Result<Array3<f32>> {
    if patch.contains(&0) {
        return Err(TilingError::EmptyPatch {
            patch: [1, patch[0], patch[1]],
        });
    }
    // A factor of exactly 1 in z leaves every product and the maximum as the 2-D filter makes them.
    Ok(v2_map(&[
        vec![1.0],
        axis_weights(patch[0]),
        axis_weights(patch[1]),
    ]))
}

/// The fp16 map of separable per-axis weights `w` (z, y, x): `(w0 * w1) * w2 / (max / 10)`.
fn v2_map(w: &[Vec<f64>; 3]) -> Array3<f32> {
    let max = w
        .iter()
        .map(|v| v.iter().copied().fold(0.0f64, f64::max))
        .fold(1.0f64, |acc, m| acc * m);
    let div = max / V2_GAUSSIAN_SCALE;
    let mut g = Array3::from_shape_fn((w[0].len(), w[1].len(), w[2].len()), |(z, y, x)| {
        round_to_f16((w[0][z] * w[1][y] * w[2][x]) / div)
    });
    let min_nonzero = g
        .iter()
        .copied()
        .filter(|&v| v != 0.0)
        .fold(f32::INFINITY, f32::min);
    if min_nonzero.is_finite() {
        g.mapv_inplace(|v| if v == 0.0 { min_nonzero } else { v });
    }
    g
}

/// The network passes of one tile in nnunetv2's order for `mirror_axes` (spatial axes 0 = z, 1 = y,
/// 2 = x, as `inference_allowed_mirroring_axes`): the identity, then every combination of the axes by
/// size and lexicographically (`itertools.combinations`), `2^len` passes. `None` (mirroring off) gives
/// the identity only. Duplicate axes count once.
///
/// # Errors
/// [`TilingError::InvalidMirrorAxis`] for an axis above 2.
pub fn v2_mirror_order(mirror_axes: Option<&[usize]>) -> Result<Vec<Mirror>> {
    let mut axes: Vec<usize> = mirror_axes.unwrap_or(&[]).to_vec();
    axes.sort_unstable();
    axes.dedup();
    if let Some(&axis) = axes.iter().find(|&&a| a > 2) {
        return Err(TilingError::InvalidMirrorAxis { axis });
    }
    let bit = |a: usize| 4usize >> a; // Mirror's encoding: z = 4, y = 2, x = 1
    let n = axes.len();
    let mut out = vec![Mirror::IDENTITY];
    for size in 1..=n {
        // Combinations of `size` indices into `axes`, lexicographic.
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            let m = idx.iter().fold(0usize, |acc, &i| acc | bit(axes[i]));
            out.push(Mirror::new(m)?);
            // Advance to the next combination.
            let mut k = size;
            while k > 0 && idx[k - 1] == n - size + k - 1 {
                k -= 1;
            }
            if k == 0 {
                break;
            }
            idx[k - 1] += 1;
            for j in k..size {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    Ok(out)
}

/// Accumulates one case's tiles as nnunetv2 does (see the module docs), in f32.
#[derive(Debug)]
pub struct LogitMerge {
    grid: TileGrid,
    heads: usize,
    /// The fp16 Gaussian, or `None` for `use_gaussian = false` (weight 1).
    gaussian: Option<Array3<f32>>,
    /// `predicted_logits` over the padded volume (heads, z, y, x).
    sum: Array4<f32>,
    /// `n_predictions` over the padded volume.
    weight: Array3<f32>,
    added: Vec<bool>,
}

impl LogitMerge {
    /// An empty merge of `heads` network outputs (`num_segmentation_heads`) over `grid`.
    ///
    /// # Errors
    /// [`TilingError::ZeroCount`] for no heads.
    pub fn new(heads: usize, grid: TileGrid, use_gaussian: bool) -> Result<Self> {
        let gaussian = if use_gaussian {
            Some(gaussian_importance_map_v2(grid.patch())?)
        } else {
            None
        };
        Self::with_weights(heads, grid, gaussian)
    }

    /// An empty merge weighted by `gaussian` (the patch's shape; `None`: weight 1), for instance
    /// [`gaussian_importance_map_v2_2d`] for a 2-D configuration predicted slice by slice.
    ///
    /// # Errors
    /// [`TilingError::ZeroCount`] for no heads, [`TilingError::ShapeMismatch`] for a map that is not the
    /// patch's shape, [`TilingError::OutOfMemory`] when the sums cannot be allocated.
    pub fn with_weights(
        heads: usize,
        grid: TileGrid,
        gaussian: Option<Array3<f32>>,
    ) -> Result<Self> {
        if heads == 0 {
            return Err(TilingError::ZeroCount {
                what: "num_segmentation_heads",
            });
        }
        if let Some(g) = &gaussian {
            if g.shape() != grid.patch() {
                return Err(TilingError::ShapeMismatch {
                    what: "importance map",
                    expected: grid.patch().to_vec(),
                    got: g.shape().to_vec(),
                });
            }
        }
        let [z, y, x] = grid.padded_shape();
        let sum = try_from_elem(
            (heads, z, y, x),
            0.0f32,
            "the logit sums of the sliding window",
        )?;
        let weight = try_from_elem((z, y, x), 0.0f32, "the weight sums of the sliding window")?;
        Ok(LogitMerge {
            heads,
            gaussian,
            sum,
            weight,
            added: vec![false; grid.len()],
            grid,
        })
    }

    /// The grid being merged.
    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    /// Adds the network's outputs for `tile`: one `(mirror, logits)` per pass, in the order they are to
    /// be summed ([`v2_mirror_order`]); each `logits` is (heads, pz, py, px) as the network produced it
    /// from the flipped input (flipped back here).
    ///
    /// # Errors
    /// An unknown or repeated tile, no passes, or logits of the wrong shape.
    pub fn add(&mut self, tile: &Tile, passes: &[(Mirror, ArrayView4<'_, f32>)]) -> Result<()> {
        let count = self.grid.len();
        if self.grid.tile(tile.index) != Some(*tile) {
            return Err(TilingError::TileOutOfRange {
                index: tile.index,
                count,
            });
        }
        if self.added[tile.index] {
            return Err(TilingError::Duplicate {
                tile: tile.index,
                mirror: 0,
            });
        }
        let [pz, py, px] = self.grid.patch();
        let expected = [self.heads, pz, py, px];
        let Some(((m0, first), rest)) = passes.split_first() else {
            return Err(TilingError::ZeroCount { what: "mirrors" });
        };
        for (_, l) in passes {
            if l.shape() != expected {
                return Err(TilingError::ShapeMismatch {
                    what: "logits",
                    expected: expected.to_vec(),
                    got: l.shape().to_vec(),
                });
            }
        }
        let mut pred = m0.apply(first.view()).to_owned();
        for (m, l) in rest {
            pred += &m.apply(l.view());
        }
        if passes.len() > 1 {
            let n = passes.len() as f32;
            pred.mapv_inplace(|v| v / n);
        }
        let [rz, ry, rx] = [0, 1, 2].map(|a| tile.lb[a]..tile.ub[a]);
        let mut w = self
            .weight
            .slice_mut(s![rz.clone(), ry.clone(), rx.clone()]);
        let mut out = self.sum.slice_mut(s![.., rz, ry, rx]);
        match &self.gaussian {
            Some(g) => {
                for (mut o, p) in out.outer_iter_mut().zip(pred.outer_iter()) {
                    Zip::from(&mut o)
                        .and(&p)
                        .and(g)
                        .par_for_each(|o, &p, &g| *o += p * g);
                }
                Zip::from(&mut w).and(g).for_each(|w, &g| *w += g);
            }
            None => {
                out += &pred;
                w += 1.0;
            }
        }
        self.added[tile.index] = true;
        Ok(())
    }

    /// Divides by the accumulated weights and crops the padding: the logits (heads, z, y, x) of the
    /// unpadded image.
    ///
    /// # Errors
    /// [`TilingError::Incomplete`] when a tile was not added.
    pub fn finish(mut self) -> Result<Array4<f32>> {
        let missing: Vec<usize> = (0..self.added.len()).filter(|&i| !self.added[i]).collect();
        if let Some(&first) = missing.first() {
            return Err(TilingError::Incomplete {
                count: missing.len(),
                tile: first,
                mirrors: "all".into(),
            });
        }
        for mut c in self.sum.outer_iter_mut() {
            Zip::from(&mut c)
                .and(&self.weight)
                .par_for_each(|v, &w| *v /= w);
        }
        let padding = *self.grid.padding();
        if padding.is_identity() {
            Ok(self.sum)
        } else {
            let [rz, ry, rx] = padding.slicer();
            try_to_owned(
                self.sum.slice(s![.., rz, ry, rx]),
                "the merged logits without padding",
            )
            .map_err(Into::into)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logit sums that cannot be allocated (2^46 voxels, two heads) are an error, not an abort.
    #[test]
    fn sums_that_cannot_be_allocated_are_an_error() {
        let shape = [1 << 16, 1 << 15, 1 << 15];
        let grid = TileGrid::new(shape, shape, 0.5).unwrap();
        let e = LogitMerge::new(2, grid, false).err().unwrap();
        assert_eq!(
            e,
            TilingError::OutOfMemory {
                what: "the logit sums of the sliding window",
                bytes: (2 * 4) << 46
            }
        );
    }

    #[test]
    fn gaussian_peak_is_ten_and_no_zero() {
        let g = gaussian_importance_map_v2([8, 24, 32]).unwrap();
        assert_eq!(g[[4, 12, 16]], 10.0);
        assert!(g.iter().all(|&v| v > 0.0 && v <= 10.0));
        assert!(g.iter().all(|&v| round_to_f16(v as f64) == v));
    }

    #[test]
    fn gaussian_2d_is_one_slice_with_peak_ten() {
        let g = gaussian_importance_map_v2_2d([32, 24]).unwrap();
        assert_eq!(g.shape(), [1, 32, 24]);
        assert_eq!(g[[0, 16, 12]], 10.0);
        assert!(g.iter().all(|&v| v > 0.0 && v <= 10.0));
        // Symmetric about the centre row.
        assert_eq!(g[[0, 15, 12]], g[[0, 17, 12]]);
    }

    #[test]
    fn slice_grids_take_every_slice_once() {
        let grid = TileGrid::slices([5, 40, 20], [32, 24], 0.5).unwrap();
        assert_eq!(grid.steps()[0], (0..5).collect::<Vec<_>>());
        assert_eq!(grid.steps()[1], [0, 8]);
        assert_eq!(grid.steps()[2], [0]);
        assert_eq!(grid.padded_shape(), [5, 40, 24]);
        assert_eq!(grid.patch(), [1, 32, 24]);
        let merge = LogitMerge::with_weights(
            2,
            grid.clone(),
            Some(gaussian_importance_map_v2_2d([32, 24]).unwrap()),
        );
        assert!(merge.is_ok());
        let bad = LogitMerge::with_weights(2, grid, Some(Array3::ones((2, 32, 24))));
        assert!(bad.is_err());
    }

    #[test]
    fn mirror_order_is_itertools() {
        let idx = |v: Vec<Mirror>| v.into_iter().map(Mirror::index).collect::<Vec<_>>();
        // z = 4, y = 2, x = 1: (), (z), (y), (x), (z,y), (z,x), (y,x), (z,y,x)
        assert_eq!(
            idx(v2_mirror_order(Some(&[0, 1, 2])).unwrap()),
            [0, 4, 2, 1, 6, 5, 3, 7]
        );
        assert_eq!(idx(v2_mirror_order(Some(&[2, 1])).unwrap()), [0, 2, 1, 3]);
        assert_eq!(idx(v2_mirror_order(None).unwrap()), [0]);
        assert!(v2_mirror_order(Some(&[3])).is_err());
    }

    #[test]
    fn constant_logits_survive_the_merge() {
        let grid = TileGrid::new([6, 5, 4], [4, 4, 4], 0.5).unwrap();
        let mut m = LogitMerge::new(2, grid.clone(), true).unwrap();
        let l = Array4::from_shape_fn((2, 4, 4, 4), |(c, ..)| c as f32 * 3.0 - 1.0);
        let tiles: Vec<Tile> = grid.tiles().collect();
        for t in &tiles {
            let passes = [(Mirror::IDENTITY, l.view()), (Mirror::ALL[5], l.view())];
            m.add(t, &passes).unwrap();
        }
        assert!(m.add(&tiles[0], &[(Mirror::IDENTITY, l.view())]).is_err());
        let out = m.finish().unwrap();
        assert_eq!(out.shape(), [2, 6, 5, 4]);
        for ((c, ..), &v) in out.indexed_iter() {
            assert!((v - (c as f32 * 3.0 - 1.0)).abs() < 1e-6);
        }
    }
}

//! Sliding-window starts and the grid of tiles, as nnU-Net 1.7.1 computes them.

use crate::error::{Result, TilingError};
use crate::pad::Padding;

/// nnU-Net's default `step_size` (half a patch between neighbouring tiles).
pub const DEFAULT_STEP_SIZE: f64 = 0.5;

/// Tile starts per spatial axis for a (padded) image of `image_size` and a patch of `patch_size`.
///
/// Reproduces `SegmentationNetwork._compute_steps_for_sliding_window(patch_size, image_size, step_size)` of
/// nnU-Net 1.7.1, with the same f64 arithmetic: `n = ceil((S - P) / (P * step_size)) + 1` tiles,
/// `actual = (S - P) / (n - 1)` and starts `round_half_even(actual * i)` (`np.round`). Unlike nnU-Net, whose
/// size assertion is a no-op, an image smaller than the patch is an error here (pad it first, see
/// [`Padding`]).
pub fn compute_steps(
    patch_size: [usize; 3],
    image_size: [usize; 3],
    step_size: f64,
) -> Result<[Vec<usize>; 3]> {
    // `!(a > b)` also rejects NaN.
    if !(step_size > 0.0 && step_size <= 1.0) {
        return Err(TilingError::InvalidStepSize { step_size });
    }
    if patch_size.contains(&0) {
        return Err(TilingError::EmptyPatch { patch: patch_size });
    }
    if (0..3).any(|a| image_size[a] < patch_size[a]) {
        return Err(TilingError::ImageSmallerThanPatch {
            image: image_size,
            patch: patch_size,
        });
    }
    Ok(std::array::from_fn(|a| {
        let max_step = image_size[a] - patch_size[a];
        let target = patch_size[a] as f64 * step_size;
        let num_steps = (max_step as f64 / target).ceil() as usize + 1;
        if num_steps > 1 {
            let actual = max_step as f64 / (num_steps - 1) as f64;
            (0..num_steps)
                .map(|i| (actual * i as f64).round_ties_even() as usize)
                .collect()
        } else {
            vec![0]
        }
    }))
}

/// One sliding-window position: its index in nnU-Net's order and its bounds in the padded volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Position in nnU-Net's loop order (axis 0 outer, axis 2 inner), `0..grid.len()`.
    pub index: usize,
    /// Lower bounds (inclusive) in the padded volume, (z, y, x).
    pub lb: [usize; 3],
    /// Upper bounds (exclusive) in the padded volume, `lb + patch`, (z, y, x).
    pub ub: [usize; 3],
}

/// The sliding-window grid of one preprocessed case: padding, starts per axis and the tiles.
///
/// Axes are (z, y, x) = nnU-Net's array axes (0, 1, 2). Tiles are numbered in the order of nnU-Net's loops in
/// `_internal_predict_3D_3Dconv_tiled`: axis 0 outermost, axis 2 innermost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    patch: [usize; 3],
    padding: Padding,
    steps: [Vec<usize>; 3],
}

impl TileGrid {
    /// The grid nnU-Net uses for an unpadded image of `image_shape` (z, y, x): pad to at least `patch`, then
    /// [`compute_steps`] with `step_size` ([`DEFAULT_STEP_SIZE`] in nnU-Net's inference).
    pub fn new(image_shape: [usize; 3], patch: [usize; 3], step_size: f64) -> Result<Self> {
        if image_shape.contains(&0) {
            return Err(TilingError::EmptyImage { shape: image_shape });
        }
        if patch.contains(&0) {
            return Err(TilingError::EmptyPatch { patch });
        }
        let padding = Padding::for_patch(image_shape, patch);
        let steps = compute_steps(patch, padding.padded_shape, step_size)?;
        Ok(TileGrid {
            patch,
            padding,
            steps,
        })
    }

    /// The grid nnunetv2 uses for a 2-D configuration on a (z, y, x) volume
    /// (`_internal_get_sliding_window_slicers` with a patch one axis shorter than the image): every slice
    /// `z` on its own (a patch of one slice, no padding in z), and in (y, x) the padding to `patch` and
    /// [`compute_steps`] with `step_size`. Tiles come slice by slice, then y, then x, nnunetv2's order.
    pub fn slices(image_shape: [usize; 3], patch: [usize; 2], step_size: f64) -> Result<Self> {
        let mut grid = TileGrid::new(image_shape, [1, patch[0], patch[1]], step_size)?;
        grid.steps[0] = (0..image_shape[0]).collect();
        Ok(grid)
    }

    /// A grid with explicit starts (for example read back from the recipe's `all_shape.txt`).
    ///
    /// The padding is derived from `image_shape` and `patch` as in [`TileGrid::new`]; every start must keep
    /// its tile inside the padded volume and the starts must be strictly increasing.
    pub fn with_steps(
        image_shape: [usize; 3],
        patch: [usize; 3],
        steps: [Vec<usize>; 3],
    ) -> Result<Self> {
        if image_shape.contains(&0) {
            return Err(TilingError::EmptyImage { shape: image_shape });
        }
        if patch.contains(&0) {
            return Err(TilingError::EmptyPatch { patch });
        }
        let padding = Padding::for_patch(image_shape, patch);
        for (axis, s) in steps.iter().enumerate() {
            let size = padding.padded_shape[axis];
            let ok = !s.is_empty()
                && s.windows(2).all(|w| w[0] < w[1])
                && s.iter().all(|&v| v + patch[axis] <= size);
            if !ok {
                return Err(TilingError::InvalidSteps {
                    axis,
                    steps: s.clone(),
                    size,
                    patch: patch[axis],
                });
            }
        }
        Ok(TileGrid {
            patch,
            padding,
            steps,
        })
    }

    /// The patch size (z, y, x).
    pub fn patch(&self) -> [usize; 3] {
        self.patch
    }

    /// The padding of the image to the patch size.
    pub fn padding(&self) -> &Padding {
        &self.padding
    }

    /// The unpadded image shape (z, y, x).
    pub fn image_shape(&self) -> [usize; 3] {
        self.padding.shape
    }

    /// The padded shape (z, y, x), in which tile bounds are expressed.
    pub fn padded_shape(&self) -> [usize; 3] {
        self.padding.padded_shape
    }

    /// The tile starts per axis.
    pub fn steps(&self) -> &[Vec<usize>; 3] {
        &self.steps
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.steps.iter().map(Vec::len).product()
    }

    /// Always false for a valid grid (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tile with this index, or `None` past the end.
    pub fn tile(&self, index: usize) -> Option<Tile> {
        if index >= self.len() {
            return None;
        }
        let n1 = self.steps[1].len();
        let n2 = self.steps[2].len();
        let idx = [index / (n1 * n2), (index / n2) % n1, index % n2];
        let lb: [usize; 3] = std::array::from_fn(|a| self.steps[a][idx[a]]);
        Some(Tile {
            index,
            lb,
            ub: std::array::from_fn(|a| lb[a] + self.patch[a]),
        })
    }

    /// The tile whose lower bounds are `lb` (z, y, x), if the grid has one.
    pub fn tile_at(&self, lb: [usize; 3]) -> Option<Tile> {
        let mut idx = [0usize; 3];
        for a in 0..3 {
            idx[a] = self.steps[a].binary_search(&lb[a]).ok()?;
        }
        let index = (idx[0] * self.steps[1].len() + idx[1]) * self.steps[2].len() + idx[2];
        self.tile(index)
    }

    /// All tiles in nnU-Net's order.
    pub fn tiles(&self) -> impl ExactSizeIterator<Item = Tile> + '_ {
        (0..self.len()).map(|i| self.tile(i).expect("index below len"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docstring_example_of_nnunet() {
        // nnU-Net's comment: image 110, patch 64, step 0.5 -> starts 0, 23, 46.
        let s = compute_steps([64, 64, 64], [110, 64, 65], 0.5).unwrap();
        assert_eq!(s[0], vec![0, 23, 46]);
        assert_eq!(s[1], vec![0]);
        assert_eq!(s[2], vec![0, 1]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(compute_steps([4, 4, 4], [8, 8, 8], 0.0).is_err());
        assert!(compute_steps([4, 4, 4], [8, 8, 8], 1.5).is_err());
        assert!(compute_steps([4, 4, 4], [8, 8, 8], f64::NAN).is_err());
        assert!(compute_steps([4, 4, 4], [3, 8, 8], 0.5).is_err());
        assert!(compute_steps([0, 4, 4], [3, 8, 8], 0.5).is_err());
        assert!(
            TileGrid::with_steps([8, 8, 8], [4, 4, 4], [vec![0, 5], vec![0], vec![0]]).is_err()
        );
        assert!(TileGrid::with_steps([8, 8, 8], [4, 4, 4], [vec![], vec![0], vec![0]]).is_err());
    }

    #[test]
    fn tile_order_is_axis0_outer() {
        let g = TileGrid::new([12, 8, 6], [8, 4, 4], 0.5).unwrap();
        assert_eq!(g.steps()[0], vec![0, 4]);
        assert_eq!(g.steps()[1], vec![0, 2, 4]);
        assert_eq!(g.steps()[2], vec![0, 2]);
        let t: Vec<_> = g.tiles().map(|t| t.lb).collect();
        assert_eq!(t.len(), 12);
        assert_eq!(t[0], [0, 0, 0]);
        assert_eq!(t[1], [0, 0, 2]);
        assert_eq!(t[2], [0, 2, 0]);
        assert_eq!(t[6], [4, 0, 0]);
        for tile in g.tiles() {
            assert_eq!(g.tile_at(tile.lb), Some(tile));
            assert_eq!(tile.ub, [tile.lb[0] + 8, tile.lb[1] + 4, tile.lb[2] + 4]);
        }
        assert_eq!(g.tile(12), None);
        assert_eq!(g.tile_at([1, 0, 0]), None);
    }
}

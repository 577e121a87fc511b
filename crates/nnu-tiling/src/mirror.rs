//! Test-time mirroring: the eight flips, their recipe numbering, and tile extraction.

use std::fmt;

use ndarray::{s, ArrayView4, Axis};
use rayon::prelude::*;

use crate::error::{Result, TilingError};
use crate::steps::{Tile, TileGrid};

/// One of the eight mirror combinations, numbered as nnU-Net's loop (`m` in
/// `_internal_maybe_mirror_and_pred_3D`) and the recipe's file suffix.
///
/// On a channel-first 4-D tile (c, z, y, x) the flipped axes are: m0 none, m1 (3), m2 (2), m3 (3, 2), m4 (1),
/// m5 (3, 1), m6 (2, 1), m7 (3, 2, 1). In spatial terms bit 0 flips x (spatial axis 2), bit 1 flips y (axis
/// 1) and bit 2 flips z (axis 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mirror(u8);

impl Mirror {
    /// No flip.
    pub const IDENTITY: Mirror = Mirror(0);

    /// All eight, in nnU-Net's order m0..m7.
    pub const ALL: [Mirror; 8] = [
        Mirror(0),
        Mirror(1),
        Mirror(2),
        Mirror(3),
        Mirror(4),
        Mirror(5),
        Mirror(6),
        Mirror(7),
    ];

    /// The mirror with recipe index `index` (0..=7).
    pub fn new(index: usize) -> Result<Self> {
        if index < 8 {
            Ok(Mirror(index as u8))
        } else {
            Err(TilingError::InvalidMirror { index })
        }
    }

    /// The recipe index m (0..=7).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Whether each spatial axis (z, y, x) is flipped.
    pub fn flips(self) -> [bool; 3] {
        [self.0 & 4 != 0, self.0 & 2 != 0, self.0 & 1 != 0]
    }

    /// The flipped axes of the channel-first 4-D tile, in the recipe's order (for example `[3, 1]` for m5).
    pub fn tile_axes(self) -> Vec<usize> {
        let f = self.flips();
        [(f[2], 3), (f[1], 2), (f[0], 1)]
            .into_iter()
            .filter_map(|(on, axis)| on.then_some(axis))
            .collect()
    }

    /// The spatial axes (0 = z, 1 = y, 2 = x) this mirror flips.
    pub fn spatial_axes(self) -> Vec<usize> {
        let f = self.flips();
        (0..3).filter(|&a| f[a]).collect()
    }

    /// `view` with this mirror's flips applied (negative strides; no copy). Flipping twice is the identity,
    /// so the same call flips a prediction back. `view` is channel-first (c, z, y, x).
    pub fn apply<'a, A>(self, view: ArrayView4<'a, A>) -> ArrayView4<'a, A> {
        let mut v = view;
        for (axis, flip) in self.flips().into_iter().enumerate() {
            if flip {
                v.invert_axis(Axis(axis + 1));
            }
        }
        v
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// A set of mirrors, iterated in nnU-Net's order (ascending m).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MirrorSet(u8);

impl MirrorSet {
    /// All eight mirrors: nnU-Net's default test-time augmentation with `mirror_axes = (0, 1, 2)`.
    pub fn all() -> Self {
        MirrorSet(0xff)
    }

    /// Only m0 (`do_mirroring = False`, the tools' `--disable-tta`).
    pub fn identity_only() -> Self {
        MirrorSet(1)
    }

    /// The empty set (useful to collect what is missing).
    pub fn empty() -> Self {
        MirrorSet(0)
    }

    /// The mirrors nnU-Net runs for `mirror_axes` (spatial axes 0..=2): every combination of those axes,
    /// `2^len(mirror_axes)` of them, each weighted `1 / 2^len`. Duplicate axes count once.
    pub fn from_axes(mirror_axes: &[usize]) -> Result<Self> {
        let mut allowed = 0u8; // bit mask in Mirror's encoding
        for &axis in mirror_axes {
            allowed |= match axis {
                0 => 4,
                1 => 2,
                2 => 1,
                _ => return Err(TilingError::InvalidMirrorAxis { axis }),
            };
        }
        let mask = (0u8..8)
            .filter(|m| m & !allowed == 0)
            .fold(0u8, |acc, m| acc | (1 << m));
        Ok(MirrorSet(mask))
    }

    /// nnU-Net's choice from its two arguments: [`MirrorSet::from_axes`] when `do_mirroring`, else m0 only.
    pub fn nnunet(do_mirroring: bool, mirror_axes: &[usize]) -> Result<Self> {
        if do_mirroring {
            Self::from_axes(mirror_axes)
        } else {
            Ok(Self::identity_only())
        }
    }

    /// Whether `m` is in the set.
    pub fn contains(self, m: Mirror) -> bool {
        self.0 & (1 << m.0) != 0
    }

    /// Number of mirrors.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set with `m` added.
    pub fn with(self, m: Mirror) -> Self {
        MirrorSet(self.0 | (1 << m.0))
    }

    /// The mirrors of `self` that are not in `other`.
    pub fn difference(self, other: MirrorSet) -> Self {
        MirrorSet(self.0 & !other.0)
    }

    /// The mirrors in nnU-Net's order.
    pub fn iter(self) -> impl Iterator<Item = Mirror> {
        Mirror::ALL.into_iter().filter(move |&m| self.contains(m))
    }

    /// The weight of each prediction in the mean: `1 / len` (nnU-Net's `1 / num_results`), exact in f32 for
    /// nnU-Net's sets (1, 2, 4 or 8 mirrors).
    pub fn weight(self) -> f32 {
        (1.0 / self.len().max(1) as f64) as f32
    }
}

impl fmt::Display for MirrorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{m}")?;
        }
        write!(f, "}}")
    }
}

/// Copies one tile of the zero-padded image into `out`, flipped by `mirror`, without padding the image.
///
/// `image` is the unpadded preprocessed image (c, z, y, x) whose spatial shape is `grid.image_shape()`;
/// positions of the tile that fall into the padding read 0 (nnU-Net pads with constant 0). `out` receives
/// the tile in C order (c, pz, py, px), exactly nnU-Net's `torch.flip(data[None, :, lb:ub, ...], axes)[0]`.
/// No allocation; rows are filled in parallel.
pub fn extract_tile(
    image: ArrayView4<'_, f32>,
    grid: &TileGrid,
    tile: &Tile,
    mirror: Mirror,
    out: &mut [f32],
) -> Result<()> {
    let (channels, z, y, x) = image.dim();
    let shape = grid.image_shape();
    if [z, y, x] != shape {
        return Err(TilingError::ShapeMismatch {
            what: "image",
            expected: vec![channels, shape[0], shape[1], shape[2]],
            got: vec![channels, z, y, x],
        });
    }
    let [pz, py, px] = grid.patch();
    if out.len() != channels * pz * py * px {
        return Err(TilingError::ShapeMismatch {
            what: "tile buffer",
            expected: vec![channels * pz * py * px],
            got: vec![out.len()],
        });
    }
    if px == 0 || channels == 0 {
        return Ok(());
    }
    let below = grid.padding().below;
    let flips = mirror.flips();
    // Source coordinate in the unpadded image of tile position i along `axis`, or None in the padding.
    let source = move |axis: usize, i: usize| -> Option<usize> {
        let p = grid.patch()[axis];
        let padded = tile.lb[axis] + if flips[axis] { p - 1 - i } else { i };
        padded.checked_sub(below[axis]).filter(|&v| v < shape[axis])
    };
    out.par_chunks_mut(px).enumerate().for_each(|(row, dst)| {
        let c = row / (pz * py);
        let iz = (row / py) % pz;
        let iy = row % py;
        let (Some(sz), Some(sy)) = (source(0, iz), source(1, iy)) else {
            dst.fill(0.0);
            return;
        };
        let src = image.slice(s![c, sz, sy, ..]);
        for (ix, d) in dst.iter_mut().enumerate() {
            *d = source(2, ix).map_or(0.0, |sx| src[sx]);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn recipe_numbering() {
        let axes: Vec<Vec<usize>> = Mirror::ALL.iter().map(|m| m.tile_axes()).collect();
        assert_eq!(
            axes,
            vec![
                vec![],
                vec![3],
                vec![2],
                vec![3, 2],
                vec![1],
                vec![3, 1],
                vec![2, 1],
                vec![3, 2, 1]
            ]
        );
        assert!(Mirror::new(8).is_err());
        assert_eq!(Mirror::new(5).unwrap().to_string(), "m5");
    }

    #[test]
    fn sets_follow_nnunet() {
        assert_eq!(MirrorSet::from_axes(&[0, 1, 2]).unwrap(), MirrorSet::all());
        let s = MirrorSet::from_axes(&[0, 2]).unwrap();
        assert_eq!(
            s.iter().map(Mirror::index).collect::<Vec<_>>(),
            vec![0, 1, 4, 5]
        );
        assert_eq!(s.weight(), 0.25);
        let s = MirrorSet::from_axes(&[1]).unwrap();
        assert_eq!(s.iter().map(Mirror::index).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(MirrorSet::nnunet(false, &[0, 1, 2]).unwrap().len(), 1);
        assert!(MirrorSet::from_axes(&[3]).is_err());
        assert_eq!(s.to_string(), "{m0,m2}");
    }

    #[test]
    fn extract_matches_padded_flip() {
        let img = Array4::from_shape_fn((2, 3, 5, 4), |(c, z, y, x)| {
            (1 + c * 1000 + z * 100 + y * 10 + x) as f32
        });
        let grid = TileGrid::new([3, 5, 4], [4, 4, 3], 0.5).unwrap();
        let (padded, _) = crate::pad_nd_image(img.view(), grid.patch()).unwrap();
        let mut buf = vec![0.0f32; 2 * 4 * 4 * 3];
        for tile in grid.tiles() {
            for m in Mirror::ALL {
                extract_tile(img.view(), &grid, &tile, m, &mut buf).unwrap();
                let region = padded.slice(s![
                    ..,
                    tile.lb[0]..tile.ub[0],
                    tile.lb[1]..tile.ub[1],
                    tile.lb[2]..tile.ub[2]
                ]);
                let expected: Vec<f32> = m.apply(region).iter().copied().collect();
                assert_eq!(buf, expected, "tile {} {m}", tile.index);
            }
        }
        assert!(extract_tile(
            img.view(),
            &grid,
            &grid.tile(0).unwrap(),
            Mirror::IDENTITY,
            &mut buf[1..]
        )
        .is_err());
    }
}

//! The Gaussian-weighted merge of per-tile, per-mirror logits into class probabilities.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use ndarray::{s, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut3, Axis, Zip};

use crate::error::{Result, TilingError};
use crate::gaussian::cached_gaussian_importance_map;
use crate::mirror::{Mirror, MirrorSet};
use crate::softmax::exp_f32;
use crate::steps::{Tile, TileGrid};
use nnu_alloc::{try_from_elem, try_to_owned};

/// How predictions are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregatorOptions {
    /// The mirrors each tile is predicted with (default: all eight; [`MirrorSet::identity_only`] for
    /// `--disable-tta`).
    pub mirrors: MirrorSet,
    /// Weight tiles by the Gaussian importance map (default true, as nnU-Net's inference). nnU-Net ignores it
    /// when the grid has a single tile, and so does the aggregator.
    pub use_gaussian: bool,
}

impl Default for AggregatorOptions {
    fn default() -> Self {
        AggregatorOptions {
            mirrors: MirrorSet::all(),
            use_gaussian: true,
        }
    }
}

/// A tile whose mirror set is not yet complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingTile {
    /// The tile.
    pub tile: Tile,
    /// The mirrors not received yet.
    pub mirrors: MirrorSet,
}

/// Merges network logits of all tiles and mirrors of one case into class probabilities (c, z, y, x).
///
/// Reproduces `_internal_predict_3D_3Dconv_tiled` with `_internal_maybe_mirror_and_pred_3D` of nnU-Net 1.7.1
/// (`all_in_gpu=False`, softmax as `inference_apply_nonlin`), in f32 like nnU-Net:
///
/// 1. per tile, for each mirror m in ascending order: `result += (1 / num_mirrors) * flip(softmax(logits))`
///    (softmax over classes: max, `exp(x - max)`, sequential sum over classes, division);
/// 2. `result *= gaussian` (when Gaussian weighting applies, i.e. `use_gaussian` and more than one tile);
/// 3. `aggregated[:, tile] += result`, and the weights `nb[:, tile] += gaussian` (or ones);
/// 4. at the end the padding is cropped and `aggregated / nb` returned.
///
/// Tiles may arrive in any order and mirrors of different tiles may interleave; a tile in flight keeps one
/// partial buffer (c x patch f32), taken from and returned to a pool, so the steady state allocates nothing.
/// The weights `nb` are not stored: they are recomputed per voxel at [`Aggregator::finish`] in nnU-Net's tile
/// order (one f32 volume less than nnU-Net, which keeps one per class).
///
/// Agreement with nnU-Net's f32 rounding is exact up to the softmax's `exp` (PyTorch uses SLEEF's
/// vectorised `exp` within 1 ulp, this crate a vectorisable one within 2 ulp), provided mirrors of a tile
/// arrive in ascending m and tiles complete in index order; any other order changes only the order of f32
/// additions (a few ulp). The goldens agree within 2e-7 in order and 4e-7 out of order.
///
/// Memory: each tile in flight holds c x patch f32 (24 MiB for 3 classes at 128^3); feed the mirrors of a
/// tile together (the bin path can sort its files) to keep one or two in flight.
///
/// Not reproduced: `all_in_gpu=True` (f16 accumulators on the GPU; unusable on nnU-Net's CPU path), and
/// region-based trainers (`regions_class_order`, sigmoid instead of softmax), whose probabilities differ.
#[derive(Debug)]
pub struct Aggregator {
    grid: TileGrid,
    num_classes: usize,
    options: AggregatorOptions,
    weight: f32,
    /// The Gaussian map, or ones when no Gaussian weighting applies (multiplying by 1.0 is exact).
    gaussian: Arc<Array3<f32>>,
    /// Σ of weighted predictions over the padded volume, (c, z, y, x).
    aggregated: Array4<f32>,
    received: Vec<MirrorSet>,
    complete: usize,
    in_flight: HashMap<usize, Array4<f32>>,
    pool: Vec<Array4<f32>>,
}

/// What a call to the plane kernel does with the softmax `s` of one mirror (`w` = 1 / num_mirrors).
enum Step<'a> {
    /// First mirror of several: `partial = w * s`.
    First(ArrayViewMut3<'a, f32>),
    /// Neither first nor last: `partial = partial + w * s`.
    Middle(ArrayViewMut3<'a, f32>),
    /// Last of several: `out = out + (partial + w * s) * g`.
    Last(ArrayView3<'a, f32>, ArrayViewMut3<'a, f32>),
    /// The only mirror: `out = out + (w * s) * g`.
    Only(ArrayViewMut3<'a, f32>),
}

thread_local! {
    /// Per-thread rows for the softmax (exp per class, max, sum); grown once, then reused.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Aggregator {
    /// An empty merge for `num_classes` network outputs (foreground classes + 1) over `grid`.
    ///
    /// Allocates the f32 accumulator for the padded volume (c x padded shape) and, when Gaussian weighting
    /// applies, fetches the cached importance map. An accumulator that cannot be allocated is
    /// [`TilingError::OutOfMemory`].
    pub fn new(num_classes: usize, grid: TileGrid, options: AggregatorOptions) -> Result<Self> {
        if num_classes == 0 {
            return Err(TilingError::ZeroCount {
                what: "num_classes",
            });
        }
        if options.mirrors.is_empty() {
            return Err(TilingError::ZeroCount { what: "mirrors" });
        }
        let [z, y, x] = grid.padded_shape();
        let aggregated = try_from_elem(
            (num_classes, z, y, x),
            0.0f32,
            "the class sums of the sliding window",
        )?;
        let patch = grid.patch();
        let gaussian = if options.use_gaussian && grid.len() > 1 {
            cached_gaussian_importance_map(patch)?
        } else {
            Arc::new(try_from_elem(patch, 1.0f32, "the tile weights")?)
        };
        Ok(Aggregator {
            num_classes,
            weight: options.mirrors.weight(),
            options,
            gaussian,
            aggregated,
            received: vec![MirrorSet::empty(); grid.len()],
            complete: 0,
            in_flight: HashMap::new(),
            pool: Vec::new(),
            grid,
        })
    }

    /// The grid being merged.
    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    /// Number of classes (network output channels).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The options given at creation.
    pub fn options(&self) -> AggregatorOptions {
        self.options
    }

    /// Whether Gaussian weighting is in effect (`use_gaussian` and more than one tile).
    pub fn uses_gaussian(&self) -> bool {
        self.options.use_gaussian && self.grid.len() > 1
    }

    /// Number of tiles with some but not all mirrors received (each holds a partial buffer).
    pub fn tiles_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// True when every tile has all its mirrors.
    pub fn is_complete(&self) -> bool {
        self.complete == self.grid.len()
    }

    /// The tiles still missing mirrors, in tile order, with the mirrors each lacks.
    pub fn missing(&self) -> Vec<MissingTile> {
        let all = self.options.mirrors;
        self.received
            .iter()
            .enumerate()
            .filter(|(_, r)| **r != all)
            .filter_map(|(i, r)| {
                self.grid.tile(i).map(|tile| MissingTile {
                    tile,
                    mirrors: all.difference(*r),
                })
            })
            .collect()
    }

    /// Adds the network's logits for `tile` run on the input flipped by `mirror`.
    ///
    /// `logits` is (classes, pz, py, px), exactly as the network produced it from the flipped input (the
    /// aggregator flips it back); any memory layout is accepted. Errors (and leaves the state untouched) for
    /// an unknown tile, a mirror outside the set, a duplicate, or a wrong shape.
    pub fn add(&mut self, tile: usize, mirror: Mirror, logits: ArrayView4<'_, f32>) -> Result<()> {
        let count = self.grid.len();
        if tile >= count {
            return Err(TilingError::TileOutOfRange { index: tile, count });
        }
        let set = self.options.mirrors;
        if !set.contains(mirror) {
            return Err(TilingError::MirrorNotInSet {
                mirror: mirror.index(),
                set: set.to_string(),
            });
        }
        let before = self.received[tile];
        if before.contains(mirror) {
            return Err(TilingError::Duplicate {
                tile,
                mirror: mirror.index(),
            });
        }
        let [pz, py, px] = self.grid.patch();
        let expected = [self.num_classes, pz, py, px];
        if logits.shape() != expected {
            return Err(TilingError::ShapeMismatch {
                what: "logits",
                expected: expected.to_vec(),
                got: logits.shape().to_vec(),
            });
        }
        let Some(t) = self.grid.tile(tile) else {
            return Err(TilingError::TileOutOfRange { index: tile, count });
        };
        let after = before.with(mirror);
        let first = before.is_empty();
        let last = after == set;
        let logits = mirror.apply(logits);
        let w = self.weight;
        let g = self.gaussian.view();
        let region = s![.., t.lb[0]..t.ub[0], t.lb[1]..t.ub[1], t.lb[2]..t.ub[2]];
        match (first, last) {
            (true, true) => {
                let mut out = self.aggregated.slice_mut(region);
                Zip::from(logits.axis_iter(Axis(1)))
                    .and(out.axis_iter_mut(Axis(1)))
                    .and(g.axis_iter(Axis(0)))
                    .par_for_each(|l, o, g| plane_kernel(l, g, w, Step::Only(o)));
            }
            (true, false) => {
                let mut buf = match self.pool.pop() {
                    Some(b) => b,
                    None => Array4::zeros(expected),
                };
                Zip::from(logits.axis_iter(Axis(1)))
                    .and(buf.axis_iter_mut(Axis(1)))
                    .and(g.axis_iter(Axis(0)))
                    .par_for_each(|l, p, g| plane_kernel(l, g, w, Step::First(p)));
                self.in_flight.insert(tile, buf);
            }
            (false, false) => {
                let buf = self
                    .in_flight
                    .entry(tile)
                    .or_insert_with(|| Array4::zeros(expected));
                Zip::from(logits.axis_iter(Axis(1)))
                    .and(buf.axis_iter_mut(Axis(1)))
                    .and(g.axis_iter(Axis(0)))
                    .par_for_each(|l, p, g| plane_kernel(l, g, w, Step::Middle(p)));
            }
            (false, true) => {
                let buf = self
                    .in_flight
                    .remove(&tile)
                    .unwrap_or_else(|| Array4::zeros(expected));
                let mut out = self.aggregated.slice_mut(region);
                Zip::from(logits.axis_iter(Axis(1)))
                    .and(buf.axis_iter(Axis(1)))
                    .and(out.axis_iter_mut(Axis(1)))
                    .and(g.axis_iter(Axis(0)))
                    .par_for_each(|l, p, o, g| plane_kernel(l, g, w, Step::Last(p, o)));
                self.pool.push(buf);
            }
        }
        self.received[tile] = after;
        if last {
            self.complete += 1;
        }
        Ok(())
    }

    /// Divides by the accumulated weights, crops the padding and returns the class probabilities
    /// (c, z, y, x) of the unpadded image, f32.
    ///
    /// Errors with [`TilingError::Incomplete`] (naming the first incomplete tile) unless every tile has all
    /// its mirrors. The division happens in place; only a padded case copies its crop.
    pub fn finish(mut self) -> Result<Array4<f32>> {
        let missing = self.missing();
        if let Some(first) = missing.first() {
            return Err(TilingError::Incomplete {
                count: missing.len(),
                tile: first.tile.index,
                mirrors: first.mirrors.to_string(),
            });
        }
        let patch = self.grid.patch();
        let padded = self.grid.padded_shape();
        // Per axis and padded coordinate: the range of tile-start indices covering it.
        let cover: [Vec<Range<usize>>; 3] = std::array::from_fn(|a| {
            let steps = &self.grid.steps()[a];
            (0..padded[a])
                .map(|q| {
                    let lo = steps.partition_point(|&s| s + patch[a] <= q);
                    let hi = steps.partition_point(|&s| s <= q);
                    lo..hi
                })
                .collect()
        });
        let steps = self.grid.steps();
        let g = self.gaussian.view();
        Zip::indexed(self.aggregated.axis_iter_mut(Axis(1))).par_for_each(|z, mut plane| {
            SCRATCH.with(|cell| {
                let mut row = cell.borrow_mut();
                row.resize(padded[2], 0.0);
                for y in 0..padded[1] {
                    // nnU-Net's aggregated_nb_of_predictions at (z, y, x): the Gaussian of every covering tile,
                    // summed in tile order (axis 0 outer), in f32.
                    for (x, wsum) in row.iter_mut().enumerate() {
                        let mut acc = 0.0f32;
                        for i0 in cover[0][z].clone() {
                            let gz = z - steps[0][i0];
                            for i1 in cover[1][y].clone() {
                                let gy = y - steps[1][i1];
                                for i2 in cover[2][x].clone() {
                                    acc += g[[gz, gy, x - steps[2][i2]]];
                                }
                            }
                        }
                        *wsum = acc;
                    }
                    for mut r in plane.slice_mut(s![.., y, ..]).outer_iter_mut() {
                        for (v, &wsum) in r.iter_mut().zip(row.iter()) {
                            *v /= wsum;
                        }
                    }
                }
            })
        });
        let padding = *self.grid.padding();
        if padding.is_identity() {
            Ok(self.aggregated)
        } else {
            let [rz, ry, rx] = padding.slicer();
            try_to_owned(
                self.aggregated.slice(s![.., rz, ry, rx]),
                "the merged probabilities without padding",
            )
            .map_err(Into::into)
        }
    }
}

/// Softmax over classes of one z-plane of flipped-back logits `l` (c, py, px), combined as `step` says.
///
/// Rows are first copied into contiguous per-thread scratch (this also undoes the flip of x), so that every
/// loop below runs on contiguous slices and vectorises.
fn plane_kernel(l: ArrayView3<'_, f32>, g: ArrayView2<'_, f32>, w: f32, mut step: Step<'_>) {
    let (nc, ny, nx) = l.dim();
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.resize((nc + 2) * nx, 0.0);
        let (e, rest) = buf.split_at_mut(nc * nx);
        let (mx, sum) = rest.split_at_mut(nx);
        for y in 0..ny {
            for (c, row) in e.chunks_exact_mut(nx).enumerate() {
                Zip::from(row)
                    .and(l.slice(s![c, y, ..]))
                    .for_each(|d, &v| *d = v);
            }
            // PyTorch's softmax over dim 1: max over classes, exp(x - max), running sum from 0, division.
            mx.copy_from_slice(&e[..nx]);
            for row in e.chunks_exact(nx).skip(1) {
                for (m, &v) in mx.iter_mut().zip(row) {
                    *m = if v > *m { v } else { *m };
                }
            }
            sum.fill(0.0);
            for row in e.chunks_exact_mut(nx) {
                for ((v, &m), s) in row.iter_mut().zip(&*mx).zip(sum.iter_mut()) {
                    *v = exp_f32(*v - m);
                    *s += *v;
                }
            }
            let grow = g.row(y);
            for (c, ec) in e.chunks_exact(nx).enumerate() {
                let sum: &[f32] = sum;
                match &mut step {
                    Step::First(p) => Zip::from(p.slice_mut(s![c, y, ..]))
                        .and(ec)
                        .and(sum)
                        .for_each(|pv, &ev, &s| *pv = w * (ev / s)),
                    Step::Middle(p) => Zip::from(p.slice_mut(s![c, y, ..]))
                        .and(ec)
                        .and(sum)
                        .for_each(|pv, &ev, &s| *pv += w * (ev / s)),
                    Step::Last(p, o) => Zip::from(o.slice_mut(s![c, y, ..]))
                        .and(p.slice(s![c, y, ..]))
                        .and(ec)
                        .and(sum)
                        .and(grow)
                        .for_each(|ov, &pv, &ev, &s, &gv| *ov += (pv + w * (ev / s)) * gv),
                    Step::Only(o) => Zip::from(o.slice_mut(s![c, y, ..]))
                        .and(ec)
                        .and(sum)
                        .and(grow)
                        .for_each(|ov, &ev, &s, &gv| *ov += (w * (ev / s)) * gv),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> TileGrid {
        TileGrid::new([6, 4, 4], [4, 4, 4], 0.5).unwrap()
    }

    /// Class sums that cannot be allocated (one tile of 2^15 x 2^15 x 2^14 voxels, three classes: 2^47.6
    /// bytes of f32, past any address space) are an error naming them, not an abort (issue 20).
    #[test]
    fn sums_that_cannot_be_allocated_are_an_error() {
        let shape = [1 << 15, 1 << 15, 1 << 14];
        let g = TileGrid::new(shape, shape, 0.5).unwrap();
        let e = Aggregator::new(3, g, AggregatorOptions::default()).unwrap_err();
        assert_eq!(
            e,
            TilingError::OutOfMemory {
                what: "the class sums of the sliding window",
                bytes: (3 * 4) << 44
            }
        );
        assert!(
            e.to_string()
                .starts_with("out of memory: cannot allocate 192.0 TiB (211106232532992 bytes)"),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_input_without_changing_state() {
        let g = grid();
        assert_eq!(g.len(), 2);
        let opts = AggregatorOptions {
            mirrors: MirrorSet::from_axes(&[0]).unwrap(),
            use_gaussian: true,
        };
        assert!(Aggregator::new(0, g.clone(), opts).is_err());
        let mut agg = Aggregator::new(2, g, opts).unwrap();
        let ok = Array4::<f32>::zeros((2, 4, 4, 4));
        let m4 = Mirror::new(4).unwrap();
        assert_eq!(
            agg.add(2, Mirror::IDENTITY, ok.view()),
            Err(TilingError::TileOutOfRange { index: 2, count: 2 })
        );
        assert!(matches!(
            agg.add(0, Mirror::new(1).unwrap(), ok.view()),
            Err(TilingError::MirrorNotInSet { mirror: 1, .. })
        ));
        let bad = Array4::<f32>::zeros((3, 4, 4, 4));
        assert!(matches!(
            agg.add(0, Mirror::IDENTITY, bad.view()),
            Err(TilingError::ShapeMismatch { what: "logits", .. })
        ));
        agg.add(0, m4, ok.view()).unwrap();
        assert_eq!(
            agg.add(0, m4, ok.view()),
            Err(TilingError::Duplicate { tile: 0, mirror: 4 })
        );
        assert_eq!(agg.tiles_in_flight(), 1);
        let missing = agg.missing();
        assert_eq!(missing.len(), 2);
        assert_eq!(missing[0].tile.index, 0);
        assert_eq!(missing[0].mirrors.to_string(), "{m0}");
        assert_eq!(missing[1].mirrors.to_string(), "{m0,m4}");
        assert!(!agg.is_complete());
        let err = agg.finish().unwrap_err();
        assert_eq!(
            err,
            TilingError::Incomplete {
                count: 2,
                tile: 0,
                mirrors: "{m0}".into()
            }
        );
    }

    #[test]
    fn constant_logits_give_their_softmax_and_buffers_are_reused() {
        let g = grid();
        let mut agg = Aggregator::new(2, g.clone(), AggregatorOptions::default()).unwrap();
        let logits =
            Array4::from_shape_fn((2, 4, 4, 4), |(c, ..)| if c == 0 { 0.0f32 } else { 1.0 });
        // Interleave the two tiles' mirrors: both in flight, then completed one after the other.
        for m in Mirror::ALL {
            for t in 0..2 {
                agg.add(t, m, logits.view()).unwrap();
            }
            if m.index() < 7 {
                assert_eq!(agg.tiles_in_flight(), 2);
            }
        }
        assert_eq!(agg.tiles_in_flight(), 0);
        assert_eq!(agg.pool.len(), 2);
        assert!(agg.missing().is_empty());
        let p = agg.finish().unwrap();
        assert_eq!(p.shape(), [2, 6, 4, 4]);
        let e = 1.0f32.exp();
        for (c, expected) in [(0usize, 1.0 / (1.0 + e)), (1, e / (1.0 + e))] {
            for v in p.index_axis(Axis(0), c) {
                assert!((v - expected).abs() < 1e-6, "{v} vs {expected}");
            }
        }
    }

    #[test]
    fn single_tile_ignores_the_gaussian() {
        let g = TileGrid::new([3, 4, 2], [4, 4, 4], 0.5).unwrap();
        assert_eq!(g.len(), 1);
        let logits =
            Array4::from_shape_fn((2, 4, 4, 4), |(c, z, y, x)| (c * z + y) as f32 - x as f32);
        let run = |use_gaussian| {
            let opts = AggregatorOptions {
                mirrors: MirrorSet::identity_only(),
                use_gaussian,
            };
            let mut agg = Aggregator::new(2, g.clone(), opts).unwrap();
            assert!(!agg.uses_gaussian());
            agg.add(0, Mirror::IDENTITY, logits.view()).unwrap();
            agg.finish().unwrap()
        };
        let a = run(true);
        assert_eq!(a, run(false));
        // Padding below is (0, 0, 1): output voxel x = 0 is tile voxel x = 1.
        let l = [logits[[0, 1, 2, 2]], logits[[1, 1, 2, 2]]];
        let m = l[0].max(l[1]);
        let e = [(l[0] - m).exp(), (l[1] - m).exp()];
        assert_eq!(a[[1, 1, 2, 1]], e[1] / (e[0] + e[1]));
    }
}

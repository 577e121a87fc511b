//! The Gaussian-weighted merge of per-tile, per-mirror logits into class probabilities.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use ndarray::{s, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut3, Axis, Zip};

use crate::error::{Result, TilingError};
use crate::gaussian::cached_gaussian_importance_map;
use crate::mirror::{Mirror, MirrorSet};
use crate::steps::{Tile, TileGrid};

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
/// Bitwise agreement with nnU-Net's f32 rounding holds up to the softmax's `exp` (PyTorch uses SLEEF's
/// vectorised `exp`, within 1 ulp), provided mirrors of a tile arrive in ascending m and tiles complete in
/// index order; any other order changes only the order of f32 additions (a few ulp).
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
    /// applies, fetches the cached importance map.
    pub fn new(num_classes: usize, grid: TileGrid, options: AggregatorOptions) -> Result<Self> {
        if num_classes == 0 {
            return Err(TilingError::ZeroCount {
                what: "num_classes",
            });
        }
        if options.mirrors.is_empty() {
            return Err(TilingError::ZeroCount { what: "mirrors" });
        }
        let patch = grid.patch();
        let gaussian = if options.use_gaussian && grid.len() > 1 {
            cached_gaussian_importance_map(patch)?
        } else {
            Arc::new(Array3::ones((patch[0], patch[1], patch[2])))
        };
        let [z, y, x] = grid.padded_shape();
        Ok(Aggregator {
            num_classes,
            weight: options.mirrors.weight(),
            options,
            gaussian,
            aggregated: Array4::zeros((num_classes, z, y, x)),
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
            Ok(self.aggregated.slice(s![.., rz, ry, rx]).to_owned())
        }
    }
}

/// Softmax over classes of one z-plane of flipped-back logits `l` (c, py, px), combined as `step` says.
fn plane_kernel(l: ArrayView3<'_, f32>, g: ArrayView2<'_, f32>, w: f32, mut step: Step<'_>) {
    let (nc, ny, nx) = l.dim();
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.resize((nc + 2) * nx, 0.0);
        let (e, rest) = buf.split_at_mut(nc * nx);
        let (mx, sum) = rest.split_at_mut(nx);
        for y in 0..ny {
            // PyTorch's softmax over dim 1: max over classes, exp(x - max), running sum, division.
            for (m, &v) in mx.iter_mut().zip(l.slice(s![0, y, ..])) {
                *m = v;
            }
            for c in 1..nc {
                for (m, &v) in mx.iter_mut().zip(l.slice(s![c, y, ..])) {
                    if v > *m || v.is_nan() {
                        *m = v;
                    }
                }
            }
            sum.fill(0.0);
            for c in 0..nc {
                let ec = &mut e[c * nx..(c + 1) * nx];
                for (((ev, &v), &m), s) in ec
                    .iter_mut()
                    .zip(l.slice(s![c, y, ..]))
                    .zip(mx.iter())
                    .zip(sum.iter_mut())
                {
                    *ev = (v - m).exp();
                    *s += *ev;
                }
            }
            let grow = g.row(y);
            for c in 0..nc {
                let ec = &e[c * nx..(c + 1) * nx];
                match &mut step {
                    Step::First(p) => {
                        for ((pv, &ev), &s) in
                            p.slice_mut(s![c, y, ..]).iter_mut().zip(ec).zip(&*sum)
                        {
                            *pv = w * (ev / s);
                        }
                    }
                    Step::Middle(p) => {
                        for ((pv, &ev), &s) in
                            p.slice_mut(s![c, y, ..]).iter_mut().zip(ec).zip(&*sum)
                        {
                            *pv += w * (ev / s);
                        }
                    }
                    Step::Last(p, o) => {
                        for ((((ov, &pv), &ev), &s), &gv) in o
                            .slice_mut(s![c, y, ..])
                            .iter_mut()
                            .zip(p.slice(s![c, y, ..]))
                            .zip(ec)
                            .zip(&*sum)
                            .zip(grow)
                        {
                            *ov += (pv + w * (ev / s)) * gv;
                        }
                    }
                    Step::Only(o) => {
                        for (((ov, &ev), &s), &gv) in o
                            .slice_mut(s![c, y, ..])
                            .iter_mut()
                            .zip(ec)
                            .zip(&*sum)
                            .zip(grow)
                        {
                            *ov += (w * (ev / s)) * gv;
                        }
                    }
                }
            }
        }
    });
}

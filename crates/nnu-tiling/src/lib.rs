//! Sliding-window tiling, test-time mirroring and the Gaussian-weighted merge of nnU-Net v1.
//!
//! This crate is the numerical core between preprocessing and the network: it pads a preprocessed case to
//! the patch size, lays out nnU-Net's sliding-window grid, cuts (and mirrors) the network input tiles, and
//! merges the network's logits back into one class-probability volume, reproducing nnU-Net 1.7.1's
//! `SegmentationNetwork._internal_predict_3D_3Dconv_tiled` (with `all_in_gpu=False`, the CPU path).
//! Both the bin path (tiles written to disk, predicted elsewhere, read back in any order) and the streaming
//! path use it.
//!
//! Axes are SimpleITK's numpy order (z, y, x), which is nnU-Net's array order (0, 1, 2); channel-first 4-D
//! arrays are (c, z, y, x).
//!
//! ```
//! use ndarray::Array4;
//! use nnu_tiling::{extract_tile, Aggregator, AggregatorOptions, MirrorSet, TileGrid};
//!
//! # fn main() -> Result<(), nnu_tiling::TilingError> {
//! let image = Array4::<f32>::zeros((1, 10, 12, 9)); // one modality, (z, y, x) = (10, 12, 9)
//! let grid = TileGrid::new([10, 12, 9], [8, 8, 8], 0.5)?;
//! let options = AggregatorOptions { mirrors: MirrorSet::all(), use_gaussian: true };
//! let mut merge = Aggregator::new(2, grid.clone(), options)?;
//! let mut input = vec![0.0f32; 8 * 8 * 8];
//! for tile in grid.tiles() {
//!     for mirror in options.mirrors.iter() {
//!         extract_tile(image.view(), &grid, &tile, mirror, &mut input)?;
//!         // A network would turn `input` into logits (classes, 8, 8, 8); constant ones here.
//!         let logits = Array4::<f32>::ones((2, 8, 8, 8));
//!         merge.add(tile.index, mirror, logits.view())?;
//!     }
//! }
//! let probabilities = merge.finish()?; // (2, 10, 12, 9), softmax averaged over tiles and mirrors
//! assert!((probabilities[[1, 5, 6, 4]] - 0.5).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```
//!
//! Deliberately not here: running a network (`nnu-engine`), the on-disk tile format (`nnu-bins`),
//! preprocessing and export (`nnu-preprocessing`), region-based (sigmoid) trainers and 2-D networks.
//! nnunetv2's merge (logits averaged over mirrors and tiles, an fp16 Gaussian) is [`v2`].

#![warn(missing_docs)]

mod aggregate;
mod error;
mod gaussian;
mod mirror;
mod pad;
mod softmax;
mod steps;
pub mod v2;

pub use aggregate::{Aggregator, AggregatorOptions, MissingTile};
pub use error::{Result, TilingError};
pub use gaussian::{cached_gaussian_importance_map, gaussian_importance_map};
pub use mirror::{extract_tile, Mirror, MirrorSet};
pub use pad::{pad_nd_image, Padding};
pub use steps::{compute_steps, Tile, TileGrid, DEFAULT_STEP_SIZE};

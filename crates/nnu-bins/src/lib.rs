//! The Ascend file exchange of the recipe, byte-compatible in both directions: raw f32 tile bins, their
//! names, `all_shape.txt`, `.info` lists with their shards, and the output dumps of `benchmark` /
//! `ais_bench`.
//!
//! The recipe (`3D_Nested_Unet` offline inference for Ascend 310, in `../shared/seed/`, whose scripts patch
//! nnU-Net's `_internal_predict_3D_3Dconv_tiled`) writes every sliding-window tile of a case, in each of the
//! eight mirror orientations, as `CASE_lbx_ubx_lby_uby_lbz_ubz_m.bin` (raw little-endian f32, C order, shape
//! `(1, P, P, P)`, no header), records the padded shape and the window starts in `all_shape.txt`, lists the
//! bins in a `.info` file (split four ways for four devices), and later reads back the final head of each
//! output, `NAME_1.bin` (`benchmark`) or `NAME_0.bin` (`ais_bench`), shape `(1, C, P, P, P)`.
//!
//! | module | files |
//! |---|---|
//! | [`name`] | tile and dump file names, [`Mirror`], [`TileBounds`] (and which axis is the recipe's `x`) |
//! | [`tile`] | writing tiles (mirrored) and arrays, memory-mapped reading ([`MappedBin`]) |
//! | [`shape`] | `all_shape.txt` ([`ShapeRecord`]) |
//! | [`info`] | `.info` lists and `sthK.info` shards (`gen_dataset_info.py`) |
//! | [`dump`] | output dumps in several folders and both numberings ([`DumpIndex`]) |
//!
//! Every file is written atomically and durably through `nnu-fsio` (a temporary file in the same folder,
//! fsync, rename, folder fsync), so an interrupted run never leaves a short `.bin` behind.
//!
//! ```
//! use ndarray::Array4;
//! use nnu_bins::{DumpIndex, DumpNaming, MappedBin, Mirror, ShapeRecord, TileWriter};
//!
//! # fn main() -> Result<(), nnu_bins::BinsError> {
//! let dir = std::env::temp_dir().join(format!("nnu-bins-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).map_err(|e| nnu_bins::BinsError::Io { path: dir.clone(), source: e })?;
//!
//! // A padded volume (1, 6, 4, 4) cut into 4^3 tiles with starts [0, 2] x [0] x [0].
//! let volume = Array4::<f32>::from_shape_fn((1, 6, 4, 4), |(_, z, y, x)| (z * 16 + y * 4 + x) as f32);
//! let record = ShapeRecord::new("liver_3", [6, 4, 4], [vec![0, 2], vec![0], vec![0]])?;
//! assert_eq!(record.line(), "liver_3 6 4 4-0,2-0-0");
//!
//! let mut writer = TileWriter::new();
//! for name in record.tile_names([4, 4, 4], &Mirror::set(true))? {
//!     let (l, u) = (name.bounds.lower, name.bounds.upper);
//!     let tile = volume.slice(ndarray::s![.., l[0]..u[0], l[1]..u[1], l[2]..u[2]]);
//!     writer.write(&dir.join(name.file_name()), tile, name.mirror)?;
//! }
//! let tile = MappedBin::open_shape(dir.join("liver_3_2_6_0_4_0_4_0.bin"), &[1, 4, 4, 4])?;
//! assert_eq!(tile.as_slice()[0], 32.0);
//!
//! // A device tool would now write STEM_1.bin (benchmark) or STEM_0.bin (ais_bench) for each input.
//! let index = DumpIndex::scan(&[&dir], None)?;
//! let report = index.check_case(&record, [4, 4, 4], &Mirror::set(true), 3)?;
//! assert_eq!(report.missing.len(), 16);
//! assert_eq!(DumpNaming::AisBench.file_name("liver_3_0_4_0_4_0_4_0", 0), "liver_3_0_4_0_4_0_4_0_0.bin");
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```
//!
//! This crate deliberately does not compute sliding-window steps, padding, softmax or the Gaussian merge
//! (that is `nnu-tiling`), nor run a network: it only names, writes, finds and reads the files.

#![warn(missing_docs)]

mod atomic;
pub mod dump;
mod error;
pub mod info;
pub mod name;
pub mod shape;
pub mod tile;

pub use crate::atomic::{write_atomic, write_atomic_with};
pub use crate::dump::{DumpFile, DumpFolder, DumpIndex, DumpNaming, DumpReport};
pub use crate::error::{BinsError, Result};
pub use crate::info::{write_info_set, InfoEntry, InfoOptions, InfoSummary};
pub use crate::name::{recipe_case_name, DumpName, Mirror, TileBounds, TileName};
pub use crate::shape::{
    read_all_shape, upsert_all_shape, write_all_shape, ShapeRecord, ALL_SHAPE_FILE,
};
pub use crate::tile::{read_f32_file, write_array, write_f32_file, MappedBin, TileWriter};

//! The Ascend file exchange: raw f32 tile bins, .info shards, all_shape.txt and output dumps.
//!
//! (Scaffold: the owning issue fills this crate in.)

//! Read nnU-Net v1 model folders without Python: pickles, plans, splits, torch checkpoints.
//!
//! (Scaffold: the owning issue fills this crate in.)

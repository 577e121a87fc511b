//! Composition of the steps: streaming predict, bin preprocess/postprocess, per-case bookkeeping.
//!
//! (Scaffold: the owning issue fills this crate in.)

pub mod infer;

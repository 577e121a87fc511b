//! nnU-Net v1 preprocessing (crop, resample, normalise) and export resampling, exact and fast.
//!
//! (Scaffold: the owning issue fills this crate in.)

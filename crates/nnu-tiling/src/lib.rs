//! Sliding-window tiling, mirroring and Gaussian-weighted merge of nnU-Net v1.
//!
//! (Scaffold: the owning issue fills this crate in.)

//! NIfTI volume IO with SimpleITK-compatible geometry (z, y, x arrays, LPS spacing/origin/direction).
//!
//! (Scaffold: the owning issue fills this crate in.)

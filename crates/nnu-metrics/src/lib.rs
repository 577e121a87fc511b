//! nnU-Net v1 evaluation metrics, summary.json, and surface metrics (HD95, ASSD, NSD).
//!
//! (Scaffold: the owning issue fills this crate in.)

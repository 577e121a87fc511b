//! Build ONNX graphs of Generic_UNetPlusPlus and Generic_UNet from nnU-Net checkpoints.
//!
//! (Scaffold: the owning issue fills this crate in.)

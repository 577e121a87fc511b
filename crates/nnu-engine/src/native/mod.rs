//! The native CPU engine for nnU-Net networks.

pub mod kernels;

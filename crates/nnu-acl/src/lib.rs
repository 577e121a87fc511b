//! Safe wrapper over AscendCL: devices, contexts, streams, .om models, buffers, execution.
//!
//! (Scaffold: the owning issue fills this crate in.)

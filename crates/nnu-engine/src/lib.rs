//! Inference backends (tract-onnx on CPU; Ascend ACL behind a feature) behind one Backend trait.
//!
//! (Scaffold: the owning issue fills this crate in.)

//! Raw FFI bindings to Huawei CANN's AscendCL (libascendcl.so).
//!
//! (Scaffold: the owning issue fills this crate in.)

//! The ONNX protobuf messages the native backend reads: the `nnu-onnx-proto` crate, which the
//! exporter (`nnu-onnx-export`) writes with too. Every field it does not list (doc strings,
//! metadata, nested graphs, sparse tensors, ...) is skipped by the decoder.

pub use nnu_onnx_proto::*;

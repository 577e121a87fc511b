//! The subset of the ONNX protobuf schema (`onnx.proto`, IR version 3 and later) that nnu-rs writes
//! and reads, encoded and decoded with [`prost`].
//!
//! `nnu-onnx-export` builds the networks it exports with these messages, and the native engine of
//! `nnu-engine` reads `.onnx` files with them; neither needs tract for the file format. Field numbers
//! and types are those of the ONNX specification, with proto3 encoding (scalars without presence,
//! packed repeated numbers) as ONNX's own `onnx.proto3` declares them. Fields that are not listed
//! here (metadata, functions, training info, sparse tensors, graph-valued attributes, ...) are
//! skipped when a file is decoded, so any valid ONNX model decodes.
//!
//! # Example
//!
//! A one-node model (`y = Relu(x)`) built, serialised and read back:
//!
//! ```
//! use nnu_onnx_proto::{
//!     decode_model, node, tensor_value_info, GraphProto, Message, ModelProto, OperatorSetIdProto,
//! };
//!
//! let graph = GraphProto {
//!     name: "relu".into(),
//!     node: vec![node("Relu", "y", vec!["x".into()], vec![])],
//!     input: vec![tensor_value_info("x", &[None, Some(4)])],
//!     output: vec![tensor_value_info("y", &[None, Some(4)])],
//!     ..Default::default()
//! };
//! let model = ModelProto {
//!     ir_version: 7,
//!     opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
//!     graph: Some(graph),
//!     ..Default::default()
//! };
//! let bytes = model.encode_to_vec();
//! let back = decode_model(&bytes).expect("a valid model");
//! assert_eq!(back, model);
//! let input = &back.graph.as_ref().expect("a graph").input[0];
//! assert_eq!(input.fixed_dims(), vec![None, Some(4)]);
//! ```
// Messages and fields are documented by their ONNX names; the derive output has no docs of its own.
#![allow(missing_docs)]

pub use prost::{DecodeError, Message};

/// `ModelProto`: the file's top-level message.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    /// The IR version the file follows.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Operator sets the graph uses (the default domain `""` first, by convention).
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "4")]
    pub domain: String,
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `OperatorSetIdProto`: an operator set and its version.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `GraphProto`: nodes, weights (initializers), inputs and outputs.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "6")]
    pub doc_string: String,
}

/// `AttributeProto`: a named attribute of a node (graph-valued attributes are not decoded).
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// An [`AttributeType`] as its number.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
}

/// `AttributeProto.AttributeType`: which of an attribute's fields holds its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum AttributeType {
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
}

/// `TensorProto`: a constant tensor (weights, `Constant` values).
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// A [`DataType`] as its number.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(string, tag = "12")]
    pub doc_string: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// `DEFAULT` (0, data in this message) or `EXTERNAL` (1, data in another file).
    #[prost(int32, optional, tag = "14")]
    pub data_location: Option<i32>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
}

/// `StringStringEntryProto`: a key and its value (external data locations, metadata).
#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `TensorProto.DataType`: element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum DataType {
    Undefined = 0,
    Float = 1,
    Uint8 = 2,
    Int8 = 3,
    Uint16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    Uint32 = 12,
    Uint64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    Bfloat16 = 16,
}

/// `TensorProto.DataLocation.EXTERNAL`: the tensor's bytes live in another file.
pub const DATA_LOCATION_EXTERNAL: i32 = 1;

/// `ValueInfoProto`: a graph input or output with its type.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

/// `TypeProto`: the type of a value (tensor types are decoded; others are skipped).
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(string, tag = "6")]
    pub denotation: String,
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
}

/// The nested messages of [`TypeProto`].
pub mod type_proto {
    /// `TypeProto.value`: the kinds of type decoded here.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A dense tensor.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }

    /// `TypeProto.Tensor`: element type and shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// A [`DataType`](super::DataType) as its number.
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// The shape, `None` when unknown.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }
}

/// `TensorShapeProto`: one [`tensor_shape_proto::Dimension`] per axis.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// The nested messages of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// `TensorShapeProto.Dimension`: a fixed size, a symbolic name, or unknown.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// Semantic tag of the axis (rarely set).
        #[prost(string, tag = "3")]
        pub denotation: String,
        /// The size or its name.
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
    }

    /// The nested oneof of [`Dimension`].
    pub mod dimension {
        /// `TensorShapeProto.Dimension.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A fixed size.
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// A symbolic size (`batch`, `N`, ...).
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }

    impl Dimension {
        /// A fixed size.
        pub fn fixed(size: i64) -> Self {
            Self {
                denotation: String::new(),
                value: Some(dimension::Value::DimValue(size)),
            }
        }

        /// A symbolic size named `name`.
        pub fn symbol(name: &str) -> Self {
            Self {
                denotation: String::new(),
                value: Some(dimension::Value::DimParam(name.to_owned())),
            }
        }

        /// The fixed size, `None` when the dimension is symbolic, unknown or not positive.
        pub fn fixed_size(&self) -> Option<usize> {
            match self.value {
                Some(dimension::Value::DimValue(v)) if v > 0 => usize::try_from(v).ok(),
                _ => None,
            }
        }
    }
}

/// Decodes a serialised `ModelProto` (the bytes of an `.onnx` file).
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, DecodeError> {
    ModelProto::decode(bytes)
}

/// A node `op` with one output `name` (the node is named after its output) and `attrs`.
pub fn node(op: &str, name: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs,
        output: vec![name.to_owned()],
        name: name.to_owned(),
        op_type: op.to_owned(),
        attribute: attrs,
        ..Default::default()
    }
}

/// An `ints` attribute.
pub fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An `int` attribute.
pub fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// A `float` attribute.
pub fn float_attr(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

/// A float32 tensor value-info named `name`; each axis is a fixed size, or `None` for a symbolic
/// one (named `batch` on the first axis, `d{i}` elsewhere).
pub fn tensor_value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    use tensor_shape_proto::Dimension;
    let dim = dims
        .iter()
        .enumerate()
        .map(|(i, d)| match (i, d) {
            (_, Some(v)) => Dimension::fixed(*v as i64),
            (0, None) => Dimension::symbol("batch"),
            (i, None) => Dimension::symbol(&format!("d{i}")),
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl ValueInfoProto {
    /// The tensor type of the value, `None` when it is not a tensor or has no type.
    pub fn tensor_type(&self) -> Option<&type_proto::Tensor> {
        match self.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(t) => Some(t),
        }
    }

    /// Each axis's fixed size (`None` where symbolic or unknown); empty when the shape is unknown.
    pub fn fixed_dims(&self) -> Vec<Option<usize>> {
        self.tensor_type()
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.iter().map(|d| d.fixed_size()).collect())
            .unwrap_or_default()
    }
}

impl TensorProto {
    /// Number of elements `dims` declares, `None` when negative or overflowing.
    fn element_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| {
            usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
        })
    }

    /// The tensor's values as f32 (from `raw_data` or the typed fields), `None` for types other
    /// than float, double, int32 and int64 or a size that does not match `dims`.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let n = self.element_count()?;
        let values: Vec<f32> = match self.data_type {
            t if t == DataType::Float as i32 && !self.raw_data.is_empty() => self
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            t if t == DataType::Float as i32 => self.float_data.clone(),
            t if t == DataType::Double as i32 && !self.raw_data.is_empty() => self
                .raw_data
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            t if t == DataType::Double as i32 => {
                self.double_data.iter().map(|&v| v as f32).collect()
            }
            _ => self.to_i64()?.into_iter().map(|v| v as f32).collect(),
        };
        (values.len() == n).then_some(values)
    }

    /// The tensor's values as i64 for integer tensors (shapes, axes), `None` otherwise or when the
    /// size does not match `dims`.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let n = self.element_count()?;
        let values: Vec<i64> = match self.data_type {
            t if t == DataType::Int64 as i32 && !self.raw_data.is_empty() => self
                .raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            t if t == DataType::Int64 as i32 => self.int64_data.clone(),
            t if t == DataType::Int32 as i32 && !self.raw_data.is_empty() => self
                .raw_data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            t if t == DataType::Int32 as i32 => self.int32_data.iter().map(|&v| v as i64).collect(),
            _ => return None,
        };
        (values.len() == n).then_some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_typed_tensors_decode_alike() {
        let raw = TensorProto {
            dims: vec![2],
            data_type: DataType::Float as i32,
            raw_data: [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            ..Default::default()
        };
        let typed = TensorProto {
            dims: vec![2],
            data_type: DataType::Float as i32,
            float_data: vec![1.5, -2.0],
            ..Default::default()
        };
        assert_eq!(raw.to_f32(), Some(vec![1.5, -2.0]));
        assert_eq!(typed.to_f32(), raw.to_f32());
        let ints = TensorProto {
            dims: vec![3],
            data_type: DataType::Int32 as i32,
            int32_data: vec![1, -2, 3],
            ..Default::default()
        };
        assert_eq!(ints.to_i64(), Some(vec![1, -2, 3]));
        assert_eq!(ints.to_f32(), Some(vec![1.0, -2.0, 3.0]));
    }

    #[test]
    fn a_size_that_does_not_match_dims_is_refused() {
        let t = TensorProto {
            dims: vec![3],
            data_type: DataType::Float as i32,
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(t.to_f32(), None);
        let negative = TensorProto {
            dims: vec![-1],
            data_type: DataType::Int64 as i32,
            ..Default::default()
        };
        assert_eq!(negative.to_i64(), None);
        let string = TensorProto {
            dims: vec![1],
            data_type: DataType::String as i32,
            string_data: vec![b"a".to_vec()],
            ..Default::default()
        };
        assert_eq!(string.to_f32(), None);
    }

    #[test]
    fn symbolic_and_fixed_dimensions() {
        let v = tensor_value_info("x", &[None, Some(3), None]);
        assert_eq!(v.fixed_dims(), vec![None, Some(3), None]);
        let dims = &v
            .tensor_type()
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.clone());
        let names: Vec<_> = dims
            .iter()
            .flatten()
            .map(|d| match &d.value {
                Some(tensor_shape_proto::dimension::Value::DimParam(p)) => p.clone(),
                Some(tensor_shape_proto::dimension::Value::DimValue(v)) => v.to_string(),
                None => String::new(),
            })
            .collect();
        assert_eq!(names, ["batch", "3", "d2"]);
    }
}

//! The torch pieces a checkpoint's pickle refers to: storages (by persistent id) and tensor views.

use std::rc::Rc;

/// Element type of a torch storage / tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorDtype {
    /// `torch.float32` (`FloatStorage`)
    F32,
    /// `torch.float64` (`DoubleStorage`)
    F64,
    /// `torch.float16` (`HalfStorage`)
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`)
    BF16,
    /// `torch.int64` (`LongStorage`)
    I64,
    /// `torch.int32` (`IntStorage`)
    I32,
    /// `torch.int16` (`ShortStorage`)
    I16,
    /// `torch.int8` (`CharStorage`)
    I8,
    /// `torch.uint8` (`ByteStorage`, also untyped storages)
    U8,
    /// `torch.bool` (`BoolStorage`)
    Bool,
}

impl TensorDtype {
    /// The dtype of a `torch.<Name>Storage` class, `None` for unknown classes.
    pub fn from_storage_class(name: &str) -> Option<TensorDtype> {
        Some(match name {
            "FloatStorage" => TensorDtype::F32,
            "DoubleStorage" => TensorDtype::F64,
            "HalfStorage" => TensorDtype::F16,
            "BFloat16Storage" => TensorDtype::BF16,
            "LongStorage" => TensorDtype::I64,
            "IntStorage" => TensorDtype::I32,
            "ShortStorage" => TensorDtype::I16,
            "CharStorage" => TensorDtype::I8,
            "ByteStorage" | "UntypedStorage" => TensorDtype::U8,
            "BoolStorage" => TensorDtype::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TensorDtype::F64 | TensorDtype::I64 => 8,
            TensorDtype::F32 | TensorDtype::I32 => 4,
            TensorDtype::F16 | TensorDtype::BF16 | TensorDtype::I16 => 2,
            TensorDtype::I8 | TensorDtype::U8 | TensorDtype::Bool => 1,
        }
    }

    /// torch's name, e.g. `float32`.
    pub fn name(self) -> &'static str {
        match self {
            TensorDtype::F32 => "float32",
            TensorDtype::F64 => "float64",
            TensorDtype::F16 => "float16",
            TensorDtype::BF16 => "bfloat16",
            TensorDtype::I64 => "int64",
            TensorDtype::I32 => "int32",
            TensorDtype::I16 => "int16",
            TensorDtype::I8 => "int8",
            TensorDtype::U8 => "uint8",
            TensorDtype::Bool => "bool",
        }
    }
}

impl std::fmt::Display for TensorDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A storage named by a checkpoint's persistent id `('storage', torch.FloatStorage, key, location, numel)`.
/// Its bytes live in the archive entry `data/<key>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// The archive key (`"0"`, `"1"`, ...).
    pub key: String,
    /// Element type.
    pub dtype: TensorDtype,
    /// Where it was saved from (`cpu`, `cuda:0`); the reader ignores it.
    pub location: String,
    /// Number of elements.
    pub numel: u64,
}

/// A tensor as `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...)` describes it.
#[derive(Clone, Debug)]
pub struct TensorRef {
    /// The storage it views.
    pub storage: Rc<StorageRef>,
    /// Offset into the storage, in elements.
    pub storage_offset: u64,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<usize>,
    /// `requires_grad` as saved.
    pub requires_grad: bool,
}

//! The value tree a pickle decodes to, with the numpy arrays it can hold.
//!
//! The two refer to each other (a [`Value`] can be an [`NdArray`], an object array holds [`Value`]s), so
//! their types are defined here together, and the modules depend one way: `pickle` (the opcodes, and
//! the constructors that build arrays with `numpy`'s decoding) uses `numpy`, which uses only this
//! module. Both re-export what they own (`nnu_artifacts::pickle::Value`, `nnu_artifacts::numpy::NdArray`).

use std::fmt;
use std::rc::Rc;

use crate::torch::{StorageRef, TensorRef};

/// Byte order of a dtype, as in the first character of `dtype.str`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// `<`
    Little,
    /// `>`
    Big,
    /// `|`: one-byte types, strings and objects.
    NotApplicable,
}

/// The kind of a dtype, as in `dtype.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtypeKind {
    /// `b`
    Bool,
    /// `i`
    Int,
    /// `u`
    UInt,
    /// `f`
    Float,
    /// `c`
    Complex,
    /// `U` (UTF-32 code units)
    Unicode,
    /// `S`
    Bytes,
    /// `O`
    Object,
    /// `V` (raw or structured)
    Void,
    /// `M`
    DateTime,
    /// `m`
    TimeDelta,
}

/// A numpy dtype: kind, item size in bytes and byte order. Structured dtypes keep only their size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtype {
    /// What the items are.
    pub kind: DtypeKind,
    /// Bytes per item (`dtype.itemsize`; for `U` four bytes per character).
    pub itemsize: usize,
    /// Byte order of multi-byte items.
    pub byte_order: ByteOrder,
}

/// The items of an array, decoded to native values in C order.
#[derive(Clone, Debug)]
pub enum ArrayData {
    /// `b1`
    Bool(Vec<bool>),
    /// `i1`
    I8(Vec<i8>),
    /// `i2`
    I16(Vec<i16>),
    /// `i4`
    I32(Vec<i32>),
    /// `i8`
    I64(Vec<i64>),
    /// `u1`
    U8(Vec<u8>),
    /// `u2`
    U16(Vec<u16>),
    /// `u4`
    U32(Vec<u32>),
    /// `u8`
    U64(Vec<u64>),
    /// `f2`, as IEEE half-precision bit patterns (see [`f16_to_f32`](crate::numpy::f16_to_f32)).
    F16(Vec<u16>),
    /// `f4`
    F32(Vec<f32>),
    /// `f8`
    F64(Vec<f64>),
    /// `U` strings, trailing NULs removed as numpy does.
    Str(Vec<String>),
    /// `S` byte strings, trailing NULs removed as numpy does.
    Bytes(Vec<Vec<u8>>),
    /// `O` object arrays.
    Object(Vec<Value>),
    /// Anything else (complex, datetime, structured): the raw bytes in C order, file byte order.
    Raw(Vec<u8>),
}

/// A decoded numpy array (or, with an empty shape, a numpy scalar).
#[derive(Clone, Debug)]
pub struct NdArray {
    /// The dtype as numpy reports it after unpickling. Items are always decoded to native values; a
    /// big-endian array pickled through `_reconstruct` comes back little-endian (numpy's `__setstate__`
    /// byte-swaps it), one pickled through protocol 5's `_frombuffer` keeps its big-endian dtype.
    pub dtype: Dtype,
    /// The shape; empty for scalars.
    pub shape: Vec<usize>,
    /// `true` when the pickle stored the items in Fortran order (they were reordered to C order in `data`).
    pub fortran_order: bool,
    /// The items in C order.
    pub data: ArrayData,
}

/// One decoded Python value.
///
/// Compound values are reference counted: a memo entry that the pickle references twice (for example the
/// `numpy.dtype` shared by every float32 scalar of a plans file) comes back as two clones of the same `Rc`,
/// never as a deep copy and never as an empty placeholder. Cloning a `Value` is therefore cheap.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in an `i64`.
    Int(i64),
    /// An `int` that does not fit in an `i64`: little-endian two's complement bytes, as `LONG1`/`LONG4` store it.
    BigInt(Rc<[u8]>),
    /// A `float`.
    Float(f64),
    /// A `str` (Python 2 `str` values are decoded as latin-1, like `pickle.load(..., encoding='latin1')`).
    Str(Rc<str>),
    /// `bytes` or `bytearray`.
    Bytes(Rc<[u8]>),
    /// A `list`.
    List(Rc<Vec<Value>>),
    /// A `tuple` (also `torch.Size`).
    Tuple(Rc<Vec<Value>>),
    /// A `set` or `frozenset`, in pickle order.
    Set(Rc<Vec<Value>>),
    /// A `dict` or `collections.OrderedDict`, in insertion order.
    Dict(Rc<Dict>),
    /// A `numpy.ndarray` (decoded, C order).
    Array(Rc<NdArray>),
    /// A numpy scalar such as `np.float32(99.4)`: a zero-dimensional [`NdArray`].
    Scalar(Rc<NdArray>),
    /// A `numpy.dtype`.
    Dtype(Rc<Dtype>),
    /// A torch storage named by a persistent id (`('storage', torch.FloatStorage, key, location, numel)`).
    Storage(Rc<StorageRef>),
    /// A torch tensor view (`torch._utils._rebuild_tensor_v2`), still pointing into its storage.
    Tensor(Rc<TensorRef>),
    /// A global (class or function) that was referenced but not called, e.g. `numpy.ndarray`.
    Global(Rc<GlobalName>),
    /// Any other object: the reader records how it was built and never runs code.
    Object(Rc<Object>),
    /// A persistent id that is not a torch storage.
    Persistent(Rc<Value>),
}

/// A `module.name` pair from a `GLOBAL` / `STACK_GLOBAL` opcode (Python 2 module names are mapped to their
/// Python 3 names: `__builtin__` -> `builtins`, `copy_reg` -> `copyreg`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalName {
    /// The module, e.g. `collections`.
    pub module: String,
    /// The attribute, e.g. `OrderedDict`.
    pub name: String,
}

impl fmt::Display for GlobalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// An object the reader does not know: what built it and the state it was given. Nothing is executed.
#[derive(Clone, Debug)]
pub struct Object {
    /// The callable or class (`REDUCE`, `NEWOBJ`, `INST`, `OBJ`); `None` when it was not a plain global.
    pub class: Option<GlobalName>,
    /// The arguments it was called with (a tuple; for `NEWOBJ_EX` a tuple `(args, kwargs)`).
    pub args: Value,
    /// The state given by `BUILD`, if any.
    pub state: Option<Value>,
    /// Items added with `APPEND`/`APPENDS`.
    pub list_items: Vec<Value>,
    /// Items added with `SETITEM`/`SETITEMS`.
    pub dict_items: Vec<(Value, Value)>,
}

/// A `dict` or `OrderedDict`: entries in insertion order, later duplicates replacing earlier values in place
/// (as Python does).
#[derive(Clone, Debug, Default)]
pub struct Dict {
    /// `true` for `collections.OrderedDict`.
    pub ordered: bool,
    /// The entries, in insertion order.
    pub entries: Vec<(Value, Value)>,
}

impl Dict {
    /// The value under `key`, compared with Python equality for ints, floats, bools, strings, bytes and tuples.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.key_eq(key))
            .map(|(_, v)| v)
    }

    /// The value under the string key `key`.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
            .map(|(_, v)| v)
    }

    /// The value under the integer key `key`.
    pub fn get_int(&self, key: i64) -> Option<&Value> {
        self.get(&Value::Int(key))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Value {
    /// A short name of the value's Python type, for error messages (`int`, `str`, `numpy.ndarray`, ...).
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(_) => "list".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::Set(_) => "set".into(),
            Value::Dict(d) if d.ordered => "OrderedDict".into(),
            Value::Dict(_) => "dict".into(),
            Value::Array(a) => format!("numpy.ndarray[{}]", a.dtype.descr()),
            Value::Scalar(a) => format!("numpy scalar {}", a.dtype.descr()),
            Value::Dtype(_) => "numpy.dtype".into(),
            Value::Storage(_) => "torch storage".into(),
            Value::Tensor(_) => "torch.Tensor".into(),
            Value::Global(g) => format!("global {g}"),
            Value::Object(o) => match &o.class {
                Some(c) => format!("object {c}"),
                None => "object".into(),
            },
            Value::Persistent(_) => "persistent id".into(),
        }
    }

    /// Python equality for the value kinds that occur as dict keys; compound and foreign values compare by
    /// identity.
    ///
    /// Linear in the number of distinct tuple pairs compared: tuples that share sub-tuples (through the
    /// memo) are not expanded, so a few hundred bytes of nested shared tuples cannot make it exponential.
    pub fn key_eq(&self, other: &Value) -> bool {
        self.key_eq_memo(other, &mut std::collections::HashSet::new())
    }

    /// [`Value::key_eq`], remembering the tuple pairs already found equal (a pair found unequal ends the
    /// whole comparison, so only equal pairs can come back).
    fn key_eq_memo(
        &self,
        other: &Value,
        equal: &mut std::collections::HashSet<[usize; 2]>,
    ) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::BigInt(a), Value::BigInt(b)) => a == b,
            (Value::Tuple(a), Value::Tuple(b)) => {
                // Python compares items by identity first, so a tuple always equals itself.
                let pair = [
                    Rc::as_ptr(a) as *const () as usize,
                    Rc::as_ptr(b) as *const () as usize,
                ];
                if Rc::ptr_eq(a, b) || equal.contains(&pair) {
                    return true;
                }
                let eq = a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|(x, y)| x.key_eq_memo(y, equal));
                if eq {
                    equal.insert(pair);
                }
                eq
            }
            (Value::None, Value::None) => true,
            (Value::Global(a), Value::Global(b)) => a == b,
            _ => match (self.as_number(), other.as_number()) {
                (Some(a), Some(b)) => a == b,
                _ => self.same_object(other),
            },
        }
    }

    /// For bool, int and float: the value as a number that compares like Python (ints exactly).
    fn as_number(&self) -> Option<Number> {
        match self {
            Value::Bool(b) => Some(Number::Int(i64::from(*b))),
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    /// `true` when both are the same shared compound value (Python `is`).
    pub fn same_object(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::List(a), Value::List(b)) => Rc::ptr_eq(a, b),
            (Value::Tuple(a), Value::Tuple(b)) => Rc::ptr_eq(a, b),
            (Value::Set(a), Value::Set(b)) => Rc::ptr_eq(a, b),
            (Value::Dict(a), Value::Dict(b)) => Rc::ptr_eq(a, b),
            (Value::Array(a), Value::Array(b)) => Rc::ptr_eq(a, b),
            (Value::Scalar(a), Value::Scalar(b)) => Rc::ptr_eq(a, b),
            (Value::Dtype(a), Value::Dtype(b)) => Rc::ptr_eq(a, b),
            (Value::Storage(a), Value::Storage(b)) => Rc::ptr_eq(a, b),
            (Value::Tensor(a), Value::Tensor(b)) => Rc::ptr_eq(a, b),
            (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
            (Value::Str(a), Value::Str(b)) => Rc::ptr_eq(a, b),
            (Value::Bytes(a), Value::Bytes(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The dict, if this is a `dict` or `OrderedDict`.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The items of a list, tuple or set.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => Some(v),
            _ => None,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is `bytes` / `bytearray`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The array, if this is a `numpy.ndarray`.
    pub fn as_array(&self) -> Option<&NdArray> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A Python `bool` or a numpy boolean scalar.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Scalar(a) => match &a.data {
                ArrayData::Bool(v) => v.first().copied(),
                _ => None,
            },
            _ => None,
        }
    }

    /// An integer: a Python `int`/`bool`, or a numpy integer scalar that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Scalar(a) if a.dtype.is_integer() => a.to_i64().and_then(|v| v.first().copied()),
            _ => None,
        }
    }

    /// A number as `f64`: `float`, `int`, `bool` or a numeric numpy scalar. Conversions from float32 are
    /// exact; integers beyond 2^53 round.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Scalar(a) => a.to_f64().and_then(|v| v.first().copied()),
            _ => None,
        }
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                // Python compares int and float exactly; an f64 with a fractional part or out of range never
                // equals an int.
                f.fract() == 0.0
                    && *f >= -9.223_372_036_854_776e18
                    && *f < 9.223_372_036_854_776e18
                    && *f as i64 == *i
            }
        }
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, items: &[Value], open: &str, close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{v}")?;
    }
    if open == "(" && items.len() == 1 {
        f.write_str(",")?;
    }
    f.write_str(close)
}

/// Python's `repr` of a `str`: single quotes unless the text holds `'` and no `"`.
fn write_py_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    write!(f, "{q}")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c == q => write!(f, "\\{c}")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    write!(f, "{q}")
}

fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        write!(f, "{x}")
    }
}

/// A Python-like `repr`, for messages and `nnu-inspect`; arrays print their dtype, shape and a few items.
///
/// Like Python's `repr`, a sub-object shared through the memo is written out at every reference, so the text
/// can be exponentially longer than the pickle (`[l, l]` nested 40 times). To render an untrusted value,
/// write into a `fmt::Write` that returns an error after a size limit: formatting stops there.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => write!(f, "<int of {} bytes>", b.len()),
            Value::Float(x) => write_float(f, *x),
            Value::Str(s) => write_py_str(f, s),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(v) => write_seq(f, v, "[", "]"),
            Value::Tuple(v) => write_seq(f, v, "(", ")"),
            Value::Set(v) => write_seq(f, v, "{", "}"),
            Value::Dict(d) => {
                f.write_str("{")?;
                for (i, (k, v)) in d.entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            Value::Array(a) => {
                write!(f, "array(")?;
                match a.to_f64() {
                    Some(v) if v.len() <= 8 => {
                        let items: Vec<Value> = v.into_iter().map(Value::Float).collect();
                        write_seq(f, &items, "[", "]")?;
                    }
                    _ => match a.to_strings() {
                        Some(v) if v.len() <= 8 => write!(f, "{v:?}")?,
                        _ => write!(f, "...")?,
                    },
                }
                write!(f, ", dtype={}, shape={:?})", a.dtype.descr(), a.shape)
            }
            Value::Scalar(a) => match a.to_f64().and_then(|v| v.first().copied()) {
                Some(x) => {
                    write!(f, "np.{}(", a.dtype.descr())?;
                    write_float(f, x)?;
                    f.write_str(")")
                }
                None => write!(f, "np.{}(...)", a.dtype.descr()),
            },
            Value::Dtype(d) => write!(f, "dtype('{}')", d.descr()),
            Value::Storage(s) => write!(f, "<storage {} {} x{}>", s.key, s.dtype, s.numel),
            Value::Tensor(t) => write!(f, "tensor({}, shape={:?})", t.storage.dtype, t.shape),
            Value::Global(g) => write!(f, "<global {g}>"),
            Value::Object(o) => match &o.class {
                Some(c) => write!(f, "<{c} object>"),
                None => f.write_str("<object>"),
            },
            Value::Persistent(p) => write!(f, "<persistent {p}>"),
        }
    }
}

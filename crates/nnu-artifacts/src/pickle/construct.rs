//! The constructors the pickle machine interprets when it freezes a call: dicts and sets, bytes
//! (`_codecs.encode`), numpy arrays, scalars and dtypes, torch storages (persistent ids) and tensors. Any
//! other global becomes an opaque [`Object`].

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::numpy::{Dtype, DtypeKind, NdArray};
use crate::torch::{StorageRef, TensorDtype, TensorRef};
use crate::value::{Dict, Object, Value};

/// A malformed object: `what` it was meant to be and why it is not.
pub(super) fn bad(what: &str, reason: impl Into<String>) -> Error {
    Error::BadObject {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// Builds a dict with Python's semantics for repeated keys (the later value wins, the first position stays).
pub(super) fn make_dict(ordered: bool, items: Vec<(Value, Value)>) -> Dict {
    let mut entries: Vec<(Value, Value)> = Vec::with_capacity(items.len());
    let mut str_index: HashMap<Rc<str>, usize> = HashMap::new();
    let mut int_index: HashMap<i64, usize> = HashMap::new();
    for (k, v) in items {
        let slot = match &k {
            Value::Str(s) => str_index.get(s).copied(),
            Value::Int(n) => int_index.get(n).copied(),
            Value::Bool(b) => int_index.get(&i64::from(*b)).copied(),
            _ => entries.iter().position(|(e, _)| e.key_eq(&k)),
        };
        match slot {
            Some(p) => entries[p].1 = v,
            None => {
                match &k {
                    Value::Str(s) => {
                        str_index.insert(s.clone(), entries.len());
                    }
                    Value::Int(n) => {
                        int_index.insert(*n, entries.len());
                    }
                    Value::Bool(b) => {
                        int_index.insert(i64::from(*b), entries.len());
                    }
                    _ => {}
                }
                entries.push((k, v));
            }
        }
    }
    Dict { ordered, entries }
}

pub(super) fn persistent(pid: Value) -> Value {
    if let Some(
        [Value::Str(tag), Value::Global(cls), Value::Str(key), Value::Str(location), numel, ..],
    ) = pid.as_seq()
    {
        let dtype = TensorDtype::from_storage_class(&cls.name);
        let numel = numel.as_i64().and_then(|n| u64::try_from(n).ok());
        if let (true, Some(dtype), Some(numel)) = (
            &**tag == "storage" && cls.module.starts_with("torch"),
            dtype,
            numel,
        ) {
            return Value::Storage(Rc::new(StorageRef {
                key: key.to_string(),
                dtype,
                location: location.to_string(),
                numel,
            }));
        }
    }
    Value::Persistent(Rc::new(pid))
}

fn tuple_items<'v>(args: &'v Value, what: &str) -> Result<&'v [Value]> {
    match args {
        Value::Tuple(t) => Ok(t),
        other => Err(bad(
            what,
            format!("arguments are a {}, not a tuple", other.type_name()),
        )),
    }
}

fn usize_seq(v: &Value, what: &str, field: &str) -> Result<Vec<usize>> {
    let items = v
        .as_seq()
        .ok_or_else(|| bad(what, format!("{field} is a {}, not a tuple", v.type_name())))?;
    items
        .iter()
        .map(|x| {
            x.as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad(what, format!("{field} holds {x:?}, not a size")))
        })
        .collect()
}

/// Raw item bytes of an array: `bytes`, or a latin-1 `str` (Python 2 pickles).
fn raw_bytes(v: &Value, what: &str) -> Result<Rc<[u8]>> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Str(s) => s
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .map(Into::into)
            .ok_or_else(|| bad(what, "data string has characters beyond latin-1")),
        other => Err(bad(
            what,
            format!("data is a {}, not bytes", other.type_name()),
        )),
    }
}

fn array_from_state(state: &Value) -> Result<Value> {
    const W: &str = "numpy.ndarray";
    let st = state
        .as_seq()
        .ok_or_else(|| bad(W, format!("state is a {}, not a tuple", state.type_name())))?;
    // numpy writes (version, shape, dtype, is_fortran, data); very old files omit the version.
    let st = match st.len() {
        5 => &st[1..],
        4 => st,
        n => return Err(bad(W, format!("state has {n} items, expected 5"))),
    };
    let shape = usize_seq(&st[0], W, "shape")?;
    let dtype = match &st[1] {
        Value::Dtype(d) => (**d).clone(),
        other => return Err(bad(W, format!("dtype is a {}", other.type_name()))),
    };
    let fortran = st[2]
        .as_bool()
        .ok_or_else(|| bad(W, "is_fortran is not a bool"))?;
    let mut a = make_array(dtype, shape, fortran, &st[3])?;
    // numpy's ndarray.__setstate__ (numpy 2.4) hands back non-native data in native byte order; the items
    // are decoded to native values anyway, so report the dtype as numpy does.
    if a.dtype.byte_order == crate::numpy::ByteOrder::Big
        && !matches!(a.data, crate::numpy::ArrayData::Raw(_))
    {
        a.dtype.byte_order = crate::numpy::ByteOrder::Little;
    }
    Ok(Value::Array(Rc::new(a)))
}

fn make_array(dtype: Dtype, shape: Vec<usize>, fortran: bool, data: &Value) -> Result<NdArray> {
    const W: &str = "numpy.ndarray";
    if dtype.kind == DtypeKind::Object {
        let items = data
            .as_seq()
            .ok_or_else(|| bad(W, "object array data is not a list"))?;
        let n = crate::numpy::element_count(&shape).ok_or_else(|| bad(W, "shape overflows"))?;
        if items.len() != n {
            return Err(bad(
                W,
                format!("object array has {} items, shape needs {n}", items.len()),
            ));
        }
        return Ok(NdArray {
            dtype,
            shape,
            fortran_order: fortran,
            data: crate::numpy::ArrayData::Object(items.to_vec()),
        });
    }
    let raw = raw_bytes(data, W)?;
    NdArray::from_raw(dtype, shape, fortran, &raw).map_err(|e| bad(W, e.to_string()))
}

fn dtype_call(args: &Value, state: Option<&Value>) -> Result<Value> {
    const W: &str = "numpy.dtype";
    let a = tuple_items(args, W)?;
    let s = a
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| bad(W, "first argument is not a type string"))?;
    let mut d = Dtype::parse(s).ok_or_else(|| bad(W, format!("unknown type string {s:?}")))?;
    if let Some(state) = state {
        let st = state
            .as_seq()
            .ok_or_else(|| bad(W, "state is not a tuple"))?;
        if st.len() < 8 {
            return Err(bad(
                W,
                format!("state has {} items, expected 8 or 9", st.len()),
            ));
        }
        d.byte_order = match st[1].as_str() {
            Some("<") | Some("=") => crate::numpy::ByteOrder::Little,
            Some(">") => crate::numpy::ByteOrder::Big,
            Some("|") => crate::numpy::ByteOrder::NotApplicable,
            _ => return Err(bad(W, format!("byte order {:?}", st[1]))),
        };
        let elsize = st[5]
            .as_i64()
            .ok_or_else(|| bad(W, "elsize is not an int"))?;
        if elsize > 0 {
            d.itemsize = usize::try_from(elsize).map_err(|_| bad(W, "elsize out of range"))?;
        }
        if !matches!(st[3], Value::None) {
            // Structured dtype: keep it as raw records of `itemsize` bytes.
            d.kind = DtypeKind::Void;
        }
    }
    Ok(Value::Dtype(Rc::new(d)))
}

fn encode_str(s: &str, encoding: &str, what: &str) -> Result<Rc<[u8]>> {
    match encoding.to_ascii_lowercase().replace('_', "-").as_str() {
        "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" | "l1" => s
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .map(Into::into)
            .ok_or_else(|| bad(what, "string has characters beyond latin-1")),
        "utf-8" | "utf8" | "ascii" => Ok(s.as_bytes().into()),
        e => Err(bad(what, format!("unsupported encoding {e:?}"))),
    }
}

/// Interprets a call of a known global; anything else becomes an opaque [`Object`].
pub(super) fn call(
    func: Value,
    args: Value,
    state: Option<Value>,
    list_items: Vec<Value>,
    dict_items: Vec<(Value, Value)>,
) -> Result<Value> {
    let g = match &func {
        Value::Global(g) => Some(g.clone()),
        _ => None,
    };
    let key = g.as_ref().map(|g| (g.module.as_str(), g.name.as_str()));
    let numpy_core = |m: &str| m == "numpy.core.multiarray" || m == "numpy._core.multiarray";
    match key {
        Some(("collections", "OrderedDict")) | Some(("builtins", "dict")) => {
            let ordered = key == Some(("collections", "OrderedDict"));
            let mut items = Vec::new();
            if let Some(Value::List(init) | Value::Tuple(init)) =
                tuple_items(&args, "dict")?.first()
            {
                for pair in init.iter() {
                    match pair.as_seq() {
                        Some([k, v]) => items.push((k.clone(), v.clone())),
                        _ => return Err(bad("dict", "initial items are not pairs")),
                    }
                }
            }
            items.extend(dict_items);
            return Ok(Value::Dict(Rc::new(make_dict(ordered, items))));
        }
        Some(("builtins", "set" | "frozenset")) => {
            let mut items: Vec<Value> = match tuple_items(&args, "set")?.first() {
                Some(v) => v
                    .as_seq()
                    .ok_or_else(|| bad("set", "argument is not a sequence"))?
                    .to_vec(),
                None => Vec::new(),
            };
            items.extend(list_items);
            return Ok(Value::Set(Rc::new(items)));
        }
        Some(("builtins", "list")) if matches!(tuple_items(&args, "list")?, [] | [_]) => {
            let mut items: Vec<Value> = match tuple_items(&args, "list")?.first() {
                Some(v) => v
                    .as_seq()
                    .ok_or_else(|| bad("list", "argument is not a sequence"))?
                    .to_vec(),
                None => Vec::new(),
            };
            items.extend(list_items);
            return Ok(Value::List(Rc::new(items)));
        }
        Some(("builtins", "bytearray" | "bytes")) => {
            let a = tuple_items(&args, "bytearray")?;
            return Ok(Value::Bytes(match a {
                [] => Rc::from(Vec::new()),
                [Value::Bytes(b)] => b.clone(),
                [Value::Str(s), Value::Str(enc), ..] => encode_str(s, enc, "bytearray")?,
                [Value::List(items)] => items
                    .iter()
                    .map(|x| x.as_i64().and_then(|n| u8::try_from(n).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| bad("bytearray", "items are not bytes"))?
                    .into(),
                _ => return Err(bad("bytearray", "unsupported arguments")),
            }));
        }
        Some(("_codecs", "encode")) => {
            let a = tuple_items(&args, "_codecs.encode")?;
            return match a {
                [Value::Str(s), Value::Str(enc)] => {
                    Ok(Value::Bytes(encode_str(s, enc, "_codecs.encode")?))
                }
                [Value::Str(s)] => Ok(Value::Bytes(s.as_bytes().into())),
                _ => Err(bad("_codecs.encode", "arguments are not (str, encoding)")),
            };
        }
        Some((m, "_reconstruct")) if numpy_core(m) => {
            let state = state.ok_or_else(|| bad("numpy.ndarray", "no BUILD state"))?;
            return array_from_state(&state);
        }
        Some((m, "scalar")) if numpy_core(m) => {
            const W: &str = "numpy scalar";
            let a = tuple_items(&args, W)?;
            let dtype = match a.first() {
                Some(Value::Dtype(d)) => (**d).clone(),
                _ => return Err(bad(W, "first argument is not a dtype")),
            };
            let data = a.get(1).cloned().unwrap_or(Value::None);
            let data = if dtype.kind == DtypeKind::Object {
                Value::List(Rc::new(vec![data]))
            } else {
                data
            };
            return Ok(Value::Scalar(Rc::new(make_array(
                dtype,
                Vec::new(),
                false,
                &data,
            )?)));
        }
        Some(("numpy", "dtype")) => return dtype_call(&args, state.as_ref()),
        Some(("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer")) => {
            const W: &str = "numpy.ndarray";
            let a = tuple_items(&args, W)?;
            let [buf, Value::Dtype(dtype), shape, order] = a else {
                return Err(bad(
                    W,
                    "_frombuffer arguments are not (buffer, dtype, shape, order)",
                ));
            };
            let shape = usize_seq(shape, W, "shape")?;
            let fortran = order.as_str() == Some("F");
            return Ok(Value::Array(Rc::new(make_array(
                (**dtype).clone(),
                shape,
                fortran,
                buf,
            )?)));
        }
        Some(("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor")) => {
            const W: &str = "torch tensor";
            let a = tuple_items(&args, W)?;
            let (Some(Value::Storage(storage)), Some(offset), Some(size), Some(stride)) =
                (a.first(), a.get(1), a.get(2), a.get(3))
            else {
                return Err(bad(
                    W,
                    "arguments are not (storage, offset, size, stride, ...)",
                ));
            };
            let storage_offset = offset
                .as_i64()
                .and_then(|o| u64::try_from(o).ok())
                .ok_or_else(|| bad(W, "storage offset is not a size"))?;
            let shape = usize_seq(size, W, "size")?;
            let stride = usize_seq(stride, W, "stride")?;
            if shape.len() != stride.len() {
                return Err(bad(
                    W,
                    format!("size has {} dims, stride {}", shape.len(), stride.len()),
                ));
            }
            let requires_grad = a.get(4).and_then(Value::as_bool).unwrap_or(false);
            return Ok(Value::Tensor(Rc::new(TensorRef {
                storage: storage.clone(),
                storage_offset,
                shape,
                stride,
                requires_grad,
            })));
        }
        Some(("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")) => {
            if let Some(t @ Value::Tensor(_)) = tuple_items(&args, "torch parameter")?.first() {
                return Ok(t.clone());
            }
        }
        Some(("torch", "Size")) => {
            if let Some(t @ Value::Tuple(_)) = tuple_items(&args, "torch.Size")?.first() {
                return Ok(t.clone());
            }
        }
        _ => {}
    }
    // copyreg._reconstructor(cls, base, state): the object's class is the first argument.
    let class = match (&key, args.as_seq()) {
        (Some(("copyreg", "_reconstructor")), Some([Value::Global(c), ..])) => Some((**c).clone()),
        _ => g.map(|g| (*g).clone()),
    };
    Ok(Value::Object(Rc::new(Object {
        class,
        args,
        state,
        list_items,
        dict_items,
    })))
}

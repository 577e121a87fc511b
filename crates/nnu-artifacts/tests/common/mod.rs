//! Shared test helpers: fixture paths, the golden JSON encoding of `scripts/goldens/artifacts_make.py`,
//! and a small SHA-256 (goldens store tensor hashes; the crate itself needs no hashing).
#![allow(dead_code)]

use std::path::PathBuf;
use std::rc::Rc;

use nnu_artifacts::numpy::{ArrayData, ByteOrder, Dtype, DtypeKind, NdArray};
use nnu_artifacts::pickle::{Dict, Value};
use serde_json::Value as J;

/// `fixtures/artifacts/` of the workspace.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/artifacts")
}

/// `fixtures/reference/`: small nnU-Net v1 model folders (made by `scripts/goldens/reference_make.py`).
pub fn reference() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference")
}

pub fn read_json(path: &std::path::Path) -> J {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f64_from_hex(h: &str) -> f64 {
    f64::from_bits(u64::from_str_radix(h, 16).expect("golden float hex"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn obj1(j: &J) -> (&str, &J) {
    let o = j.as_object().expect("tagged object");
    assert_eq!(o.len(), 1, "one tag: {j}");
    let (k, v) = o.iter().next().expect("one entry");
    (k.as_str(), v)
}

/// Compares a decoded value with the golden JSON encoding of what Python read. Exact: floats by bits.
pub fn check(v: &Value, j: &J, path: &str) -> Result<(), String> {
    let fail = |what: String| Err(format!("{path}: {what}"));
    if j.is_null() {
        return match v {
            Value::None => Ok(()),
            _ => fail(format!("expected None, got {v}")),
        };
    }
    if let Some(b) = j.as_bool() {
        return match v {
            Value::Bool(x) if *x == b => Ok(()),
            _ => fail(format!("expected {b}, got {v}")),
        };
    }
    let (tag, body) = obj1(j);
    match tag {
        "int" => {
            let s = body.as_str().expect("int text");
            match (v, s.parse::<i64>()) {
                (Value::Int(i), Ok(e)) if *i == e => Ok(()),
                (Value::BigInt(b), Err(_)) => {
                    // Compare via the reader's own bytes: re-encode the decimal golden.
                    if big_to_decimal(b) == s {
                        Ok(())
                    } else {
                        fail(format!("big int {} != {s}", big_to_decimal(b)))
                    }
                }
                _ => fail(format!("expected int {s}, got {v:?}")),
            }
        }
        "float" => match v {
            Value::Float(x)
                if x.to_bits() == f64_from_hex(body.as_str().expect("hex")).to_bits() =>
            {
                Ok(())
            }
            _ => fail(format!(
                "expected float {}, got {v}",
                f64_from_hex(body.as_str().expect("hex"))
            )),
        },
        "str" => match v {
            Value::Str(s) if &**s == body.as_str().expect("str") => Ok(()),
            _ => fail(format!("expected str {body}, got {v}")),
        },
        "raw" => match v {
            Value::Bytes(b) if hex(b) == body.as_str().expect("hex") => Ok(()),
            _ => fail(format!("expected raw item {body}, got {v:?}")),
        },
        "bytes" => match v {
            Value::Bytes(b) if hex(b) == body.as_str().expect("hex") => Ok(()),
            _ => fail(format!("expected bytes {body}, got {v:?}")),
        },
        "list" | "tuple" | "set" => {
            let items = body.as_array().expect("items");
            let got = match (tag, v) {
                ("list", Value::List(x)) | ("tuple", Value::Tuple(x)) | ("set", Value::Set(x)) => x,
                _ => return fail(format!("expected {tag}, got {}", v.type_name())),
            };
            if got.len() != items.len() {
                return fail(format!("{tag} length {} != {}", got.len(), items.len()));
            }
            if tag == "set" {
                // Python's iteration order after loading may differ from the pickle's: match as a multiset.
                let mut used = vec![false; got.len()];
                for (k, e) in items.iter().enumerate() {
                    let hit = (0..got.len()).find(|&i| !used[i] && check(&got[i], e, "").is_ok());
                    match hit {
                        Some(i) => used[i] = true,
                        None => return fail(format!("set item {k} ({e}) not found")),
                    }
                }
                return Ok(());
            }
            for (k, (g, e)) in got.iter().zip(items).enumerate() {
                check(g, e, &format!("{path}/{k}"))?;
            }
            Ok(())
        }
        "dict" | "odict" => {
            let Value::Dict(d) = v else {
                return fail(format!("expected {tag}, got {}", v.type_name()));
            };
            if d.ordered != (tag == "odict") {
                return fail(format!("ordered flag {} for {tag}", d.ordered));
            }
            let items = body.as_array().expect("pairs");
            if d.entries.len() != items.len() {
                return fail(format!("{} entries != {}", d.entries.len(), items.len()));
            }
            for (k, ((gk, gv), e)) in d.entries.iter().zip(items).enumerate() {
                check(gk, &e[0], &format!("{path}/key{k}"))?;
                check(gv, &e[1], &format!("{path}/{gk}"))?;
            }
            Ok(())
        }
        "ndarray" | "scalar" => {
            let a = match (tag, v) {
                ("ndarray", Value::Array(a)) | ("scalar", Value::Scalar(a)) => a,
                _ => return fail(format!("expected {tag}, got {}", v.type_name())),
            };
            if a.dtype.descr() != body["dtype"].as_str().expect("dtype") {
                return fail(format!("dtype {} != {}", a.dtype.descr(), body["dtype"]));
            }
            let data: Vec<J> = if tag == "scalar" {
                vec![body["data"].clone()]
            } else {
                let shape: Vec<usize> = body["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|x| x.as_u64().expect("dim") as usize)
                    .collect();
                if a.shape != shape {
                    return fail(format!("shape {:?} != {shape:?}", a.shape));
                }
                if a.fortran_order != body["fortran"].as_bool().expect("fortran") {
                    return fail(format!("fortran flag {}", a.fortran_order));
                }
                body["data"].as_array().expect("data").clone()
            };
            let items = array_items(a);
            if items.len() != data.len() {
                return fail(format!("{} items != {}", items.len(), data.len()));
            }
            for (k, (g, e)) in items.iter().zip(&data).enumerate() {
                check(g, e, &format!("{path}[{k}]"))?;
            }
            Ok(())
        }
        "dtype" => match v {
            Value::Dtype(d) if d.descr() == body.as_str().expect("descr") => Ok(()),
            _ => fail(format!("expected dtype {body}, got {v}")),
        },
        "tensor" => match v {
            Value::Tensor(t) => {
                let shape: Vec<usize> = body["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|x| x.as_u64().expect("dim") as usize)
                    .collect();
                if t.shape == shape
                    && t.storage.dtype.name() == body["dtype"].as_str().expect("dtype")
                {
                    Ok(())
                } else {
                    fail(format!(
                        "tensor {:?} {} != {body}",
                        t.shape, t.storage.dtype
                    ))
                }
            }
            _ => fail(format!("expected tensor, got {}", v.type_name())),
        },
        "object" => {
            // Objects the reader does not interpret: it must at least name the class Python built.
            let want = body.as_str().expect("class");
            let got = match v {
                Value::Object(o) => o
                    .class
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                other => other.type_name(),
            };
            if want.ends_with(&got) || got.ends_with(want) {
                Ok(())
            } else {
                fail(format!("object {want} read as {got}"))
            }
        }
        t => fail(format!("unknown golden tag {t}")),
    }
}

/// Items of an array as values, in the golden's encoding (floats widened to f64, ints exact).
fn array_items(a: &NdArray) -> Vec<Value> {
    match &a.data {
        ArrayData::Bool(v) => v.iter().map(|&b| Value::Bool(b)).collect(),
        ArrayData::I8(v) => v.iter().map(|&x| Value::Int(x.into())).collect(),
        ArrayData::I16(v) => v.iter().map(|&x| Value::Int(x.into())).collect(),
        ArrayData::I32(v) => v.iter().map(|&x| Value::Int(x.into())).collect(),
        ArrayData::I64(v) => v.iter().map(|&x| Value::Int(x)).collect(),
        ArrayData::U8(v) => v.iter().map(|&x| Value::Int(x.into())).collect(),
        ArrayData::U16(v) => v.iter().map(|&x| Value::Int(x.into())).collect(),
        ArrayData::U32(v) => v.iter().map(|&x| Value::Int(x.into())).collect(),
        ArrayData::U64(v) => v
            .iter()
            .map(|&x| match i64::try_from(x) {
                Ok(i) => Value::Int(i),
                Err(_) => Value::BigInt(Rc::from(
                    x.to_le_bytes()
                        .iter()
                        .copied()
                        .chain([0])
                        .collect::<Vec<u8>>(),
                )),
            })
            .collect(),
        ArrayData::F16(_) | ArrayData::F32(_) | ArrayData::F64(_) => a
            .to_f64()
            .expect("floats")
            .into_iter()
            .map(Value::Float)
            .collect(),
        ArrayData::Str(v) => v.iter().map(|s| Value::Str(s.as_str().into())).collect(),
        ArrayData::Bytes(v) => v
            .iter()
            .map(|b| Value::Bytes(b.as_slice().into()))
            .collect(),
        ArrayData::Object(v) => v.clone(),
        ArrayData::Raw(r) => {
            let n = a.dtype.itemsize.max(1);
            r.chunks(n).map(|c| Value::Bytes(c.into())).collect()
        }
    }
}

/// Decimal text of a little-endian two's complement integer.
pub fn big_to_decimal(le: &[u8]) -> String {
    let negative = le.last().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = le.to_vec();
    if negative {
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = u16::from(!*b) + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    // Repeated division by 10 of the little-endian magnitude.
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut().rev() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

/// Turns a golden JSON encoding back into a value tree (to feed the typed readers with exactly what Python read).
pub fn to_value(j: &J) -> Value {
    if j.is_null() {
        return Value::None;
    }
    if let Some(b) = j.as_bool() {
        return Value::Bool(b);
    }
    let (tag, body) = obj1(j);
    match tag {
        "int" => Value::Int(
            body.as_str()
                .expect("int")
                .parse()
                .expect("golden ints in range"),
        ),
        "float" => Value::Float(f64_from_hex(body.as_str().expect("hex"))),
        "str" => Value::Str(body.as_str().expect("str").into()),
        "list" => Value::List(Rc::new(
            body.as_array()
                .expect("items")
                .iter()
                .map(to_value)
                .collect(),
        )),
        "tuple" => Value::Tuple(Rc::new(
            body.as_array()
                .expect("items")
                .iter()
                .map(to_value)
                .collect(),
        )),
        "dict" | "odict" => Value::Dict(Rc::new(Dict {
            ordered: tag == "odict",
            entries: body
                .as_array()
                .expect("pairs")
                .iter()
                .map(|p| (to_value(&p[0]), to_value(&p[1])))
                .collect(),
        })),
        "ndarray" | "scalar" => {
            let descr = body["dtype"].as_str().expect("dtype");
            let dtype = Dtype::parse(descr).expect("golden dtype");
            let items: Vec<Value> = if tag == "scalar" {
                vec![to_value(&body["data"])]
            } else {
                body["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .map(to_value)
                    .collect()
            };
            let shape: Vec<usize> = if tag == "scalar" {
                Vec::new()
            } else {
                body["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|x| x.as_u64().expect("dim") as usize)
                    .collect()
            };
            let data = match dtype.kind {
                DtypeKind::Float => {
                    ArrayData::F64(items.iter().map(|x| x.as_f64().expect("float")).collect())
                }
                DtypeKind::Int | DtypeKind::UInt => {
                    ArrayData::I64(items.iter().map(|x| x.as_i64().expect("int")).collect())
                }
                DtypeKind::Bool => {
                    ArrayData::Bool(items.iter().map(|x| x.as_bool().expect("bool")).collect())
                }
                DtypeKind::Unicode => ArrayData::Str(
                    items
                        .iter()
                        .map(|x| x.as_str().expect("str").to_owned())
                        .collect(),
                ),
                _ => ArrayData::Object(items),
            };
            // Keep the dtype's kind and size so typed readers see what Python saw.
            let a = NdArray {
                dtype: Dtype {
                    byte_order: ByteOrder::Little,
                    ..dtype
                },
                shape,
                fortran_order: false,
                data,
            };
            if tag == "scalar" {
                Value::Scalar(Rc::new(a))
            } else {
                Value::Array(Rc::new(a))
            }
        }
        t => panic!("to_value: unsupported golden tag {t}"),
    }
}

/// SHA-256 (FIPS 180-4) of `data`, lowercase hex.
pub fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut s = h;
        for i in 0..64 {
            let s1 = s[4].rotate_right(6) ^ s[4].rotate_right(11) ^ s[4].rotate_right(25);
            let ch = (s[4] & s[5]) ^ (!s[4] & s[6]);
            let t1 = s[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = s[0].rotate_right(2) ^ s[0].rotate_right(13) ^ s[0].rotate_right(22);
            let maj = (s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]);
            let t2 = s0.wrapping_add(maj);
            s = [
                t1.wrapping_add(t2),
                s[0],
                s[1],
                s[2],
                s[3].wrapping_add(t1),
                s[4],
                s[5],
                s[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(s) {
            *a = a.wrapping_add(b);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

//! Typed access to a decoded value tree, with errors that name the key path.

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::pickle::{Dict, Value};

/// A value together with the slash-separated key path it was found under.
#[derive(Clone, Copy)]
pub(crate) struct At<'v> {
    pub v: &'v Value,
    pub path: &'v str,
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    }
}

pub(crate) fn bad_value(path: &str, expected: &str, found: &Value) -> Error {
    Error::BadValue {
        key: path.to_owned(),
        expected: expected.to_owned(),
        found: short(found),
    }
}

/// A `fmt::Write` that keeps the first `left` bytes and then fails, which stops the formatting early.
struct Prefix {
    out: String,
    left: usize,
}

impl std::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            if self.left < c.len_utf8() {
                return Err(std::fmt::Error);
            }
            self.left -= c.len_utf8();
            self.out.push(c);
        }
        Ok(())
    }
}

/// A short rendering of a value for error messages. Only the first few hundred bytes are rendered: a value
/// whose full rendering is huge (shared sub-lists from the memo expand exponentially) costs no more.
fn short(v: &Value) -> String {
    let mut w = Prefix {
        out: String::new(),
        left: 400,
    };
    let _ = std::fmt::Write::write_fmt(&mut w, format_args!("{v}"));
    let s = w.out;
    if s.chars().count() > 80 {
        format!(
            "{}... ({})",
            s.chars().take(77).collect::<String>(),
            v.type_name()
        )
    } else {
        format!("{s} ({})", v.type_name())
    }
}

impl<'v> At<'v> {
    pub fn dict(&self) -> Result<&'v Dict> {
        self.v
            .as_dict()
            .ok_or_else(|| bad_value(self.path, "a dict", self.v))
    }

    /// `dict[key]` for a string key.
    pub fn key(&self, key: &str) -> Result<(&'v Value, String)> {
        let path = join(self.path, key);
        match self.dict()?.get_str(key) {
            Some(v) => Ok((v, path)),
            None => Err(Error::MissingKey { key: path }),
        }
    }

    /// `dict[key]` for a string key, `None` when absent.
    pub fn opt_key(&self, key: &str) -> Result<Option<(&'v Value, String)>> {
        Ok(self.dict()?.get_str(key).map(|v| (v, join(self.path, key))))
    }

    /// `dict[i]` for an integer key (or item `i` of a list); JSON copies of a plans file turn int keys into
    /// strings, so `"i"` works too.
    pub fn index_key(&self, i: i64) -> Result<(&'v Value, String)> {
        let path = join(self.path, &i.to_string());
        if let Value::List(items) = self.v {
            // 2D planners build `plans_per_stage` as a list before turning it into a dict; accept both.
            return usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .map(|v| (v, path.clone()))
                .ok_or(Error::MissingKey { key: path });
        }
        let d = self.dict()?;
        match d.get_int(i).or_else(|| d.get_str(&i.to_string())) {
            Some(v) => Ok((v, path)),
            None => Err(Error::MissingKey { key: path }),
        }
    }

    pub fn i64(&self) -> Result<i64> {
        self.v
            .as_i64()
            .ok_or_else(|| bad_value(self.path, "an integer", self.v))
    }

    pub fn usize(&self) -> Result<usize> {
        let i = self.i64()?;
        usize::try_from(i).map_err(|_| bad_value(self.path, "a non-negative integer", self.v))
    }

    pub fn f64(&self) -> Result<f64> {
        self.v
            .as_f64()
            .ok_or_else(|| bad_value(self.path, "a number", self.v))
    }

    pub fn bool(&self) -> Result<bool> {
        match self.v {
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            v => v
                .as_bool()
                .ok_or_else(|| bad_value(self.path, "a bool", self.v)),
        }
    }

    pub fn string(&self) -> Result<String> {
        self.v
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad_value(self.path, "a string", self.v))
    }

    /// Items of a list / tuple, or of a 1-D numpy array.
    pub fn seq_f64(&self) -> Result<Vec<f64>> {
        match self.v {
            Value::Array(a) if a.shape.len() == 1 => a.to_f64(),
            v => v
                .as_seq()
                .and_then(|s| s.iter().map(Value::as_f64).collect()),
        }
        .ok_or_else(|| bad_value(self.path, "a list of numbers", self.v))
    }

    pub fn seq_usize(&self) -> Result<Vec<usize>> {
        let err = || bad_value(self.path, "a list of non-negative integers", self.v);
        let ints: Vec<i64> = match self.v {
            Value::Array(a) if a.shape.len() == 1 => a.to_i64().ok_or_else(err)?,
            v => v
                .as_seq()
                .and_then(|s| s.iter().map(Value::as_i64).collect())
                .ok_or_else(err)?,
        };
        ints.into_iter()
            .map(|i| usize::try_from(i).map_err(|_| err()))
            .collect()
    }

    pub fn seq_i64(&self) -> Result<Vec<i64>> {
        match self.v {
            Value::Array(a) if a.shape.len() == 1 => a.to_i64(),
            v => v
                .as_seq()
                .and_then(|s| s.iter().map(Value::as_i64).collect()),
        }
        .ok_or_else(|| bad_value(self.path, "a list of integers", self.v))
    }

    /// A list of lists of sizes (kernel sizes), or a 2-D numpy array.
    pub fn seq_seq_usize(&self) -> Result<Vec<Vec<usize>>> {
        let err = || bad_value(self.path, "a list of lists of sizes", self.v);
        match self.v {
            Value::Array(a) if a.shape.len() == 2 => {
                let flat = a.to_i64().ok_or_else(err)?;
                let cols = a.shape[1];
                if cols == 0 {
                    return Err(err());
                }
                flat.chunks(cols)
                    .map(|row| {
                        row.iter()
                            .map(|&i| usize::try_from(i).map_err(|_| err()))
                            .collect()
                    })
                    .collect()
            }
            v => {
                let items = v.as_seq().ok_or_else(err)?;
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let p = join(self.path, &i.to_string());
                        At { v: item, path: &p }.seq_usize()
                    })
                    .collect()
            }
        }
    }

    /// Strings of a list, tuple or numpy string / object array.
    pub fn seq_string(&self) -> Result<Vec<String>> {
        match self.v {
            Value::Array(a) => a.to_strings(),
            v => v
                .as_seq()
                .and_then(|s| s.iter().map(|x| x.as_str().map(str::to_owned)).collect()),
        }
        .ok_or_else(|| bad_value(self.path, "a list of strings", self.v))
    }
}

/// Converts a JSON document into the value tree a pickle would give: objects become dicts with string keys,
/// arrays become lists, integers `Int`, other numbers `Float`.
pub(crate) fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s.as_str().into()),
        serde_json::Value::Array(a) => Value::List(Rc::new(a.iter().map(from_json).collect())),
        serde_json::Value::Object(o) => Value::Dict(Rc::new(Dict {
            ordered: false,
            entries: o
                .iter()
                .map(|(k, v)| (Value::Str(k.as_str().into()), from_json(v)))
                .collect(),
        })),
    }
}

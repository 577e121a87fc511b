//! A JSON value that serialises exactly like CPython's `json.dump` / `json.dumps`.
//!
//! nnU-Net writes `summary.json` with `batchgenerators.utilities.file_and_folder_operations.save_json`,
//! i.e. `json.dump(obj, f, sort_keys=True, indent=4)`, and derives the `id` field from
//! `json.dumps(json_dict)` (insertion order, separators `", "` and `": "`). Reproducing both byte for byte
//! needs Python's spelling of floats (`repr`), of non-finite values (`NaN`, `Infinity`), and of strings
//! (`ensure_ascii=True`), which `serde_json` does not follow; hence this small writer.

use std::fmt::Write as _;

/// A JSON value whose objects keep insertion order (sorting happens at serialisation time when asked).
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A Python `int`, written without a decimal point.
    Int(i64),
    /// A Python `float`, written with `repr` (`0.5`, `1.0`, `1e-05`, `NaN`).
    Float(f64),
    /// A string, escaped as `ensure_ascii=True` does.
    Str(String),
    /// A list.
    Array(Vec<JsonValue>),
    /// A dict; the order of the pairs is the insertion order.
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// `json.dumps(value, sort_keys=True, indent=4)` (what `save_json` writes; no trailing newline).
    pub fn to_python_indented(&self) -> String {
        let mut out = String::new();
        self.write_indented(&mut out, 0);
        out
    }

    /// `json.dumps(value)` with default arguments: insertion order, separators `", "` and `": "`.
    pub fn to_python_compact(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }

    fn write_indented(&self, out: &mut String, level: usize) {
        match self {
            JsonValue::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline_indent(out, level + 1);
                    item.write_indented(out, level + 1);
                }
                newline_indent(out, level);
                out.push(']');
            }
            JsonValue::Object(pairs) if !pairs.is_empty() => {
                let mut sorted: Vec<&(String, JsonValue)> = pairs.iter().collect();
                // Python sorts str keys by code point; Rust's str ordering is by UTF-8 bytes, which
                // orders code points identically.
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline_indent(out, level + 1);
                    write_py_str(out, key);
                    out.push_str(": ");
                    value.write_indented(out, level + 1);
                }
                newline_indent(out, level);
                out.push('}');
            }
            other => other.write_compact(out),
        }
    }

    fn write_compact(&self, out: &mut String) {
        match self {
            JsonValue::Null => out.push_str("null"),
            JsonValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            JsonValue::Float(f) => out.push_str(&py_float_repr(*f)),
            JsonValue::Str(s) => write_py_str(out, s),
            JsonValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_compact(out);
                }
                out.push(']');
            }
            JsonValue::Object(pairs) => {
                out.push('{');
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_py_str(out, key);
                    out.push_str(": ");
                    value.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

fn newline_indent(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level * 4 {
        out.push(' ');
    }
}

/// Writes `s` as `json.dumps` does with `ensure_ascii=True`: everything outside printable ASCII
/// (`' '..='~'`) is escaped, with surrogate pairs above the BMP.
fn write_py_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `float.__repr__` as `json.dump` uses it: shortest round-trip digits, fixed notation for
/// decimal exponents in `-4..16` (always with a fractional part, `1.0`), otherwise scientific with a signed
/// two-digit-minimum exponent (`1e-05`, `1.5e+16`); non-finite values as `NaN`, `Infinity`, `-Infinity`.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Rust's `{:e}` without precision prints the shortest digits that round-trip, like CPython's repr.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are CPython 3.11's repr() of the same doubles.
        let cases: [(f64, &str); 16] = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want, "repr of {x:e}");
        }
        assert_eq!(py_float_repr(f64::INFINITY), "Infinity");
        assert_eq!(py_float_repr(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn dumps_like_python() {
        let v = JsonValue::Object(vec![
            (
                "b".into(),
                JsonValue::Array(vec![JsonValue::Int(1), JsonValue::Float(0.5)]),
            ),
            ("a".into(), JsonValue::Str("é\"\n\u{1F600}".into())),
            ("c".into(), JsonValue::Object(vec![])),
            ("d".into(), JsonValue::Array(vec![])),
        ]);
        // json.dumps(v, sort_keys=True, indent=4) and json.dumps(v) in CPython 3.11.
        assert_eq!(
            v.to_python_indented(),
            "{\n    \"a\": \"\\u00e9\\\"\\n\\ud83d\\ude00\",\n    \"b\": [\n        1,\n        0.5\n    ],\n    \"c\": {},\n    \"d\": []\n}"
        );
        assert_eq!(
            v.to_python_compact(),
            "{\"b\": [1, 0.5], \"a\": \"\\u00e9\\\"\\n\\ud83d\\ude00\", \"c\": {}, \"d\": []}"
        );
    }
}

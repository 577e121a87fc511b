//! numpy arrays, scalars and dtypes as they come out of a pickle.
//!
//! numpy pickles an array as `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` followed by
//! `BUILD` with the state `(version, shape, dtype, is_fortran, rawdata)` (numpy >= 2 names the module
//! `numpy._core.multiarray`; protocol 5 may use `numpy.core.numeric._frombuffer`). The reader decodes the raw
//! bytes into typed native values in C order, whatever the byte order and memory order of the file.

use std::fmt;

use crate::value::Value;
pub use crate::value::{ArrayData, ByteOrder, Dtype, DtypeKind, NdArray};

impl DtypeKind {
    fn from_char(c: char) -> Option<DtypeKind> {
        Some(match c {
            'b' | '?' => DtypeKind::Bool,
            'i' => DtypeKind::Int,
            'u' => DtypeKind::UInt,
            'f' => DtypeKind::Float,
            'c' => DtypeKind::Complex,
            'U' => DtypeKind::Unicode,
            'S' | 'a' => DtypeKind::Bytes,
            'O' => DtypeKind::Object,
            'V' => DtypeKind::Void,
            'M' => DtypeKind::DateTime,
            'm' => DtypeKind::TimeDelta,
            _ => return None,
        })
    }

    /// The `dtype.kind` character.
    pub fn as_char(self) -> char {
        match self {
            DtypeKind::Bool => 'b',
            DtypeKind::Int => 'i',
            DtypeKind::UInt => 'u',
            DtypeKind::Float => 'f',
            DtypeKind::Complex => 'c',
            DtypeKind::Unicode => 'U',
            DtypeKind::Bytes => 'S',
            DtypeKind::Object => 'O',
            DtypeKind::Void => 'V',
            DtypeKind::DateTime => 'M',
            DtypeKind::TimeDelta => 'm',
        }
    }
}

impl Dtype {
    /// Parses a type string as numpy pickles it (`'f4'`, `'<i8'`, `'U9'`, `'b1'`, `'O8'`, `'M8[ns]'`).
    /// Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Dtype> {
        let mut chars = s.chars().peekable();
        let mut byte_order = None;
        if let Some(&c) = chars.peek() {
            byte_order = match c {
                '<' => Some(ByteOrder::Little),
                '>' => Some(ByteOrder::Big),
                '|' => Some(ByteOrder::NotApplicable),
                // Native order: the files we read were written on little-endian machines.
                '=' => Some(ByteOrder::Little),
                _ => None,
            };
            if byte_order.is_some() {
                chars.next();
            }
        }
        let kind = DtypeKind::from_char(chars.next()?)?;
        let rest: String = chars.collect();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let tail = &rest[digits.len()..];
        if !(tail.is_empty() || (tail.starts_with('[') && tail.ends_with(']'))) {
            return None;
        }
        let n: usize = if digits.is_empty() {
            match kind {
                DtypeKind::Bool => 1,
                DtypeKind::Object => 8,
                DtypeKind::Unicode | DtypeKind::Bytes | DtypeKind::Void => 0,
                _ => return None,
            }
        } else {
            digits.parse().ok()?
        };
        let itemsize = if kind == DtypeKind::Unicode {
            n.checked_mul(4)?
        } else {
            n
        };
        let byte_order = byte_order.unwrap_or(
            if itemsize <= 1
                || matches!(kind, DtypeKind::Object | DtypeKind::Bytes | DtypeKind::Void)
            {
                ByteOrder::NotApplicable
            } else {
                ByteOrder::Little
            },
        );
        Some(Dtype {
            kind,
            itemsize,
            byte_order,
        })
    }

    /// numpy's `dtype.str`, e.g. `<f4`, `|b1`, `<U9`.
    pub fn descr(&self) -> String {
        let order = match self.byte_order {
            ByteOrder::Little => '<',
            ByteOrder::Big => '>',
            ByteOrder::NotApplicable => '|',
        };
        let n = if self.kind == DtypeKind::Unicode {
            self.itemsize / 4
        } else {
            self.itemsize
        };
        if self.kind == DtypeKind::Object {
            return "|O".to_owned();
        }
        format!("{order}{}{n}", self.kind.as_char())
    }

    /// `true` for signed and unsigned integer kinds.
    pub fn is_integer(&self) -> bool {
        matches!(self.kind, DtypeKind::Int | DtypeKind::UInt)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.descr())
    }
}

/// Why raw bytes could not become an array.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Size { expected: usize, found: usize },
    Overflow,
    BadUnicode,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Size { expected, found } => {
                write!(
                    f,
                    "array data has {found} bytes, dtype and shape need {expected}"
                )
            }
            DecodeError::Overflow => write!(f, "array shape is too large"),
            DecodeError::BadUnicode => write!(f, "array string is not valid UTF-32"),
        }
    }
}

/// Most items an array of zero-sized items (`U0`, `S0`, `V0`) may have.
const MAX_EMPTY_ITEMS: usize = 1 << 20;

pub use nnu_numerics::{bf16_to_f32, f16_to_f32};

fn chunks<const N: usize>(raw: &[u8], big: bool) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(move |c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        if big {
            a.reverse();
        }
        a
    })
}

/// Element count of `shape`, or `None` on overflow.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Reorders items stored in Fortran order into C order.
pub(crate) fn fortran_to_c<T: Clone>(data: Vec<T>, shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 || data.is_empty() {
        return data;
    }
    // Fortran strides (in items) of each axis.
    let mut fstride = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    for _ in 0..data.len() {
        out.push(data[offset].clone());
        // Advance the C-order multi-index (last axis fastest), keeping the Fortran offset in step.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            offset += fstride[k];
            if index[k] < shape[k] {
                break;
            }
            offset -= fstride[k] * shape[k];
            index[k] = 0;
        }
    }
    out
}

impl NdArray {
    /// Decodes `raw` (items in the dtype's byte order, C or Fortran memory order) into an array.
    pub(crate) fn from_raw(
        dtype: Dtype,
        shape: Vec<usize>,
        fortran_order: bool,
        raw: &[u8],
    ) -> Result<NdArray, DecodeError> {
        let count = element_count(&shape).ok_or(DecodeError::Overflow)?;
        let expected = count
            .checked_mul(dtype.itemsize)
            .ok_or(DecodeError::Overflow)?;
        if raw.len() != expected {
            return Err(DecodeError::Size {
                expected,
                found: raw.len(),
            });
        }
        if dtype.itemsize == 0 && count > MAX_EMPTY_ITEMS {
            // Zero-sized items need no data, so only the count bounds the allocation.
            return Err(DecodeError::Overflow);
        }
        let big = dtype.byte_order == ByteOrder::Big;
        let sz = dtype.itemsize;
        let data = match (dtype.kind, sz) {
            (DtypeKind::Bool, 1) => ArrayData::Bool(raw.iter().map(|&b| b != 0).collect()),
            (DtypeKind::Int, 1) => ArrayData::I8(raw.iter().map(|&b| b as i8).collect()),
            (DtypeKind::Int, 2) => {
                ArrayData::I16(chunks::<2>(raw, big).map(i16::from_le_bytes).collect())
            }
            (DtypeKind::Int, 4) => {
                ArrayData::I32(chunks::<4>(raw, big).map(i32::from_le_bytes).collect())
            }
            (DtypeKind::Int, 8) => {
                ArrayData::I64(chunks::<8>(raw, big).map(i64::from_le_bytes).collect())
            }
            (DtypeKind::UInt, 1) => ArrayData::U8(raw.to_vec()),
            (DtypeKind::UInt, 2) => {
                ArrayData::U16(chunks::<2>(raw, big).map(u16::from_le_bytes).collect())
            }
            (DtypeKind::UInt, 4) => {
                ArrayData::U32(chunks::<4>(raw, big).map(u32::from_le_bytes).collect())
            }
            (DtypeKind::UInt, 8) => {
                ArrayData::U64(chunks::<8>(raw, big).map(u64::from_le_bytes).collect())
            }
            (DtypeKind::Float, 2) => {
                ArrayData::F16(chunks::<2>(raw, big).map(u16::from_le_bytes).collect())
            }
            (DtypeKind::Float, 4) => {
                ArrayData::F32(chunks::<4>(raw, big).map(f32::from_le_bytes).collect())
            }
            (DtypeKind::Float, 8) => {
                ArrayData::F64(chunks::<8>(raw, big).map(f64::from_le_bytes).collect())
            }
            (DtypeKind::Unicode, _) if sz > 0 => {
                let mut out = Vec::with_capacity(count);
                for item in raw.chunks_exact(sz) {
                    let mut s = String::new();
                    for cp in chunks::<4>(item, big).map(u32::from_le_bytes) {
                        s.push(char::from_u32(cp).ok_or(DecodeError::BadUnicode)?);
                    }
                    s.truncate(s.trim_end_matches('\0').len());
                    out.push(s);
                }
                ArrayData::Str(out)
            }
            (DtypeKind::Unicode, _) => ArrayData::Str(vec![String::new(); count]),
            (DtypeKind::Bytes, _) if sz > 0 => ArrayData::Bytes(
                raw.chunks_exact(sz)
                    .map(|c| {
                        let end = c.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                        c[..end].to_vec()
                    })
                    .collect(),
            ),
            (DtypeKind::Bytes, _) => ArrayData::Bytes(vec![Vec::new(); count]),
            _ => ArrayData::Raw(raw.to_vec()),
        };
        let data = if fortran_order {
            data.into_c_order(&shape, sz)
        } else {
            data
        };
        Ok(NdArray {
            dtype,
            shape,
            fortran_order,
            data,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        element_count(&self.shape).unwrap_or(0)
    }

    /// `true` when the array has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items as `f64` in C order, for boolean, integer and float dtypes (f32 and f16 convert exactly,
    /// 64-bit integers beyond 2^53 round). `None` for other dtypes.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match &self.data {
            ArrayData::Bool(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
            ArrayData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::U16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::U32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::F16(v) => v.iter().map(|&x| f64::from(f16_to_f32(x))).collect(),
            ArrayData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::Object(v) => v.iter().map(Value::as_f64).collect::<Option<Vec<_>>>()?,
            _ => return None,
        })
    }

    /// The items as `i64` in C order, for boolean and integer dtypes (and floats that hold whole numbers,
    /// as nnU-Net's plans sometimes store sizes as float arrays). `None` otherwise or when a value does not
    /// fit.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        Some(match &self.data {
            ArrayData::Bool(v) => v.iter().map(|&b| i64::from(b)).collect(),
            ArrayData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::I64(v) => v.clone(),
            ArrayData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x).ok())
                .collect::<Option<Vec<_>>>()?,
            ArrayData::F16(_) | ArrayData::F32(_) | ArrayData::F64(_) => self
                .to_f64()?
                .into_iter()
                .map(|f| (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64))
                .collect::<Option<Vec<_>>>()?,
            ArrayData::Object(v) => v.iter().map(Value::as_i64).collect::<Option<Vec<_>>>()?,
            _ => return None,
        })
    }

    /// The items as strings in C order, for `U`, `S` (latin-1) and object arrays of `str`.
    pub fn to_strings(&self) -> Option<Vec<String>> {
        match &self.data {
            ArrayData::Str(v) => Some(v.clone()),
            ArrayData::Bytes(v) => Some(
                v.iter()
                    .map(|b| b.iter().map(|&c| char::from(c)).collect())
                    .collect(),
            ),
            ArrayData::Object(v) => v.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => None,
        }
    }
}

impl ArrayData {
    fn into_c_order(self, shape: &[usize], itemsize: usize) -> ArrayData {
        match self {
            ArrayData::Bool(v) => ArrayData::Bool(fortran_to_c(v, shape)),
            ArrayData::I8(v) => ArrayData::I8(fortran_to_c(v, shape)),
            ArrayData::I16(v) => ArrayData::I16(fortran_to_c(v, shape)),
            ArrayData::I32(v) => ArrayData::I32(fortran_to_c(v, shape)),
            ArrayData::I64(v) => ArrayData::I64(fortran_to_c(v, shape)),
            ArrayData::U8(v) => ArrayData::U8(fortran_to_c(v, shape)),
            ArrayData::U16(v) => ArrayData::U16(fortran_to_c(v, shape)),
            ArrayData::U32(v) => ArrayData::U32(fortran_to_c(v, shape)),
            ArrayData::U64(v) => ArrayData::U64(fortran_to_c(v, shape)),
            ArrayData::F16(v) => ArrayData::F16(fortran_to_c(v, shape)),
            ArrayData::F32(v) => ArrayData::F32(fortran_to_c(v, shape)),
            ArrayData::F64(v) => ArrayData::F64(fortran_to_c(v, shape)),
            ArrayData::Str(v) => ArrayData::Str(fortran_to_c(v, shape)),
            ArrayData::Bytes(v) => ArrayData::Bytes(fortran_to_c(v, shape)),
            ArrayData::Object(v) => ArrayData::Object(v),
            ArrayData::Raw(v) => {
                if itemsize == 0 {
                    return ArrayData::Raw(v);
                }
                let items: Vec<&[u8]> = v.chunks_exact(itemsize).collect();
                ArrayData::Raw(fortran_to_c(items, shape).concat())
            }
        }
    }
}

/// The header of a little-endian f32 C-order `.npy` (format 1.x to 3.x) at the start of `bytes`: the
/// shape and the offset where the data start. Anything else is [`Error::Npy`](crate::Error::Npy).
pub fn npy_f32_header(bytes: &[u8]) -> crate::Result<(Vec<usize>, usize)> {
    let bad = |msg: &str| crate::Error::Npy(msg.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported .npy version")),
    };
    let text = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated .npy header"))?;
    if !text.contains("'descr': '<f4'") || !text.contains("'fortran_order': False") {
        return Err(bad(
            "only little-endian f32 C-order .npy files are supported",
        ));
    }
    let shape_txt = text
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in .npy header"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad("bad shape in .npy header"))
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok((shape, start + hlen))
}

/// The shape and values (C order) of a little-endian f32 C-order `.npy` held in `bytes` (format 1.x to
/// 3.x, e.g. an array of an `.npz`): exactly the data bytes its shape needs, else
/// [`Error::Npy`](crate::Error::Npy).
pub fn parse_npy_f32(bytes: &[u8]) -> crate::Result<(Vec<usize>, Vec<f32>)> {
    let (shape, offset) = npy_f32_header(bytes)?;
    let data = &bytes[offset..];
    // Checked: a crafted shape must be an error, not an overflow.
    let need = shape
        .iter()
        .try_fold(4usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            crate::Error::Npy(format!("shape {shape:?} in the .npy header is too large"))
        })?;
    if data.len() != need {
        return Err(crate::Error::Npy(format!(
            "expected {need} data bytes for shape {shape:?}, found {}",
            data.len()
        )));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

/// Reads a little-endian f32 C-order `.npy` file ([`parse_npy_f32`]); errors name the file.
pub fn read_npy_f32(path: impl AsRef<std::path::Path>) -> crate::Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy_f32(&bytes).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_becomes_c_order() {
        // np.array([[1, 2, 3], [4, 5, 6]], order='F') stores 1 4 2 5 3 6.
        let c = fortran_to_c(vec![1, 4, 2, 5, 3, 6], &[2, 3]);
        assert_eq!(c, vec![1, 2, 3, 4, 5, 6]);
        // 3-D: shape (2, 2, 2), value = 100 i + 10 j + k; Fortran order has i fastest.
        let mut f = Vec::new();
        for k in 0..2 {
            for j in 0..2 {
                for i in 0..2 {
                    f.push(100 * i + 10 * j + k);
                }
            }
        }
        assert_eq!(
            fortran_to_c(f, &[2, 2, 2]),
            vec![0, 1, 10, 11, 100, 101, 110, 111]
        );
    }

    #[test]
    fn dtype_strings_parse() {
        let d = Dtype::parse("U9").unwrap();
        assert_eq!(
            (d.kind, d.itemsize, d.descr()),
            (DtypeKind::Unicode, 36, "<U9".to_string())
        );
        assert_eq!(Dtype::parse(">i8").unwrap().byte_order, ByteOrder::Big);
        assert_eq!(Dtype::parse("b1").unwrap().descr(), "|b1");
        assert_eq!(Dtype::parse("f4").unwrap().descr(), "<f4");
        assert!(Dtype::parse("x4").is_none());
        assert!(Dtype::parse("f4junk").is_none());
    }
}

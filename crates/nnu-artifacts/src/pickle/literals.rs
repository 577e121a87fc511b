//! Decoding the literals of pickle opcodes: Python ints (two's complement bytes of `LONG1` / `LONG4`,
//! decimal text of protocol 0) and protocol 0's quoted strings and raw-unicode-escape text.

use crate::value::Value;

/// A Python int from little-endian two's complement bytes (`LONG1` / `LONG4`).
pub(super) fn int_from_le(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    // Drop redundant sign-extension bytes, keeping one that carries the sign.
    let mut n = bytes.len();
    while n > 1 && bytes[n - 1] == fill && (bytes[n - 2] & 0x80 != 0) == negative {
        n -= 1;
    }
    if n <= 8 {
        let mut a = [fill; 8];
        a[..n].copy_from_slice(&bytes[..n]);
        Value::Int(i64::from_le_bytes(a))
    } else {
        Value::BigInt(bytes[..n].into())
    }
}

/// Decimal text (optional sign) to little-endian two's complement bytes.
pub(super) fn decimal_to_le(text: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 10_000 {
        return None;
    }
    // Magnitude as little-endian bytes, multiplied up digit by digit.
    let mut mag: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    mag.push(0); // room for the sign bit
    if negative {
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = u16::from(!*byte) + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    Some(mag)
}

/// Bytes as Latin-1 text (each byte one char): Python 2 `str`s (`STRING`, `BINSTRING`,
/// `SHORT_BINSTRING`) and protocol-0 persistent ids.
pub(super) fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// The body of a protocol-0 `STRING` literal (`'...'` or `"..."` with Python escapes) as bytes.
pub(super) fn unquote_py2(l: &[u8]) -> Option<Vec<u8>> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if l.len() < 2 || l[0] != l[l.len() - 1] || !(l[0] == b'\'' || l[0] == b'"') {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && i < body.len() && (b'0'..=b'7').contains(&body[i]) {
                    v = v * 8 + u32::from(body[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push((v & 0xff) as u8);
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Some(out)
}

/// Decodes Python's `raw-unicode-escape` (latin-1 bytes plus `\uXXXX` / `\UXXXXXXXX`).
pub(super) fn raw_unicode_escape(l: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' && i + 1 < l.len() && (l[i + 1] == b'u' || l[i + 1] == b'U') {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let h = std::str::from_utf8(l.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(h, 16).ok()?)?);
            i += 2 + n;
        } else {
            out.push(char::from(l[i]));
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_decode() {
        assert!(matches!(int_from_le(&[0xff]), Value::Int(-1)));
        assert!(matches!(
            int_from_le(&[0x00, 0x80, 0x00]),
            Value::Int(32768)
        ));
        assert!(matches!(int_from_le(&[0x00, 0x80]), Value::Int(-32768)));
        assert!(matches!(int_from_le(&[0xff, 0x7f]), Value::Int(32767)));
        let big = [0u8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(matches!(int_from_le(&big), Value::BigInt(_)));
        assert_eq!(decimal_to_le("-1").unwrap(), vec![0xff, 0xff]);
        assert_eq!(decimal_to_le("256").unwrap(), vec![0, 1, 0]);
        assert!(matches!(
            int_from_le(&decimal_to_le("-129").unwrap()),
            Value::Int(-129)
        ));
        assert!(decimal_to_le("1x").is_none());
    }

    #[test]
    fn py2_literals_decode() {
        assert_eq!(unquote_py2(b"'a\\x00\\'b'").unwrap(), b"a\0'b");
        assert_eq!(unquote_py2(b"\"\\101\\n\"").unwrap(), b"A\n");
        assert!(unquote_py2(b"'abc").is_none());
        assert_eq!(
            raw_unicode_escape(b"caf\xe9 \\u20ac").unwrap(),
            "caf\u{e9} \u{20ac}"
        );
    }
}

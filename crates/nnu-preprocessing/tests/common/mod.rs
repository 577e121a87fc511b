//! Test helpers: reading the goldens in `fixtures/preprocessing` (gzip-compressed `.npy`, JSON).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};

/// `fixtures/preprocessing` of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/preprocessing")
}

/// Reads a gzip-compressed `.npy` (C order, little-endian) as f32, whatever its stored numeric dtype.
pub fn read_npy_gz_f32(path: &Path) -> ArrayD<f32> {
    let (descr, shape, data) = read_raw(path);
    let v: Vec<f32> = match descr.as_str() {
        "<f4" => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "<f2" => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        "<i2" => data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
            .collect(),
        "|u1" => data.iter().map(|&b| b as f32).collect(),
        other => panic!("{}: unsupported dtype {other}", path.display()),
    };
    ArrayD::from_shape_vec(IxDyn(&shape), v).expect("npy shape")
}

/// Reads a gzip-compressed `.npy` of dtype uint8.
pub fn read_npy_gz_u8(path: &Path) -> ArrayD<u8> {
    let (descr, shape, data) = read_raw(path);
    assert_eq!(descr, "|u1", "{}", path.display());
    ArrayD::from_shape_vec(IxDyn(&shape), data).expect("npy shape")
}

fn read_raw(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut bytes)
        .expect("gzip");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).expect("header");
    assert!(
        header.contains("'fortran_order': False"),
        "{}: Fortran order",
        path.display()
    );
    let descr = field(header, "'descr':")
        .trim()
        .trim_matches('\'')
        .to_string();
    let shape_txt = field(header, "'shape':");
    let shape: Vec<usize> = shape_txt
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("shape"))
        .collect();
    (descr, shape, bytes[start + hlen..].to_vec())
}

fn field<'a>(header: &'a str, key: &str) -> &'a str {
    let i = header.find(key).expect("npy header key") + key.len();
    let rest = &header[i..];
    let end = if rest.trim_start().starts_with('(') {
        rest.find(')').expect("tuple") + 1
    } else {
        rest.find(',').expect("field end")
    };
    &rest[..end]
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if frac == 0 {
            sign
        } else {
            // subnormal: normalise
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (frac << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (frac << 13)
    };
    f32::from_bits(bits)
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("json")
}

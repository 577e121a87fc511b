//! NIfTI-1 / NIfTI-2 header parsing into one internal representation, and NIfTI-1 serialisation.
//!
//! NIfTI-1 headers are parsed by the `nifti` crate (`NiftiHeader::from_reader`, which also detects the
//! byte order); NIfTI-2 headers (540 bytes, 64-bit fields) are parsed here, since `nifti` 0.18 does not
//! know them. Either way the result is a [`RawHeader`] with every field widened to `f64`/`i64`.

use std::path::Path;

use crate::error::VolumeError;

/// Size of a NIfTI-1 header plus the 4-byte extension flag.
pub(crate) const NIFTI1_DATA_OFFSET: usize = 352;
/// Size of a NIfTI-2 header plus the 4-byte extension flag.
pub(crate) const NIFTI2_DATA_OFFSET: usize = 544;
/// Bytes needed to parse either header.
pub(crate) const MAX_HEADER_BYTES: usize = 540;

/// On-disk voxel type of a NIfTI file (the `datatype` header field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `DT_UINT8` (2).
    U8,
    /// `DT_INT8` (256).
    I8,
    /// `DT_INT16` (4).
    I16,
    /// `DT_UINT16` (512).
    U16,
    /// `DT_INT32` (8).
    I32,
    /// `DT_UINT32` (768).
    U32,
    /// `DT_INT64` (1024).
    I64,
    /// `DT_UINT64` (1280).
    U64,
    /// `DT_FLOAT32` (16).
    F32,
    /// `DT_FLOAT64` (64).
    F64,
}

impl DataType {
    /// The datatype for a NIfTI `datatype` code, if this crate decodes it.
    pub fn from_code(code: i16) -> Option<DataType> {
        Some(match code {
            2 => DataType::U8,
            256 => DataType::I8,
            4 => DataType::I16,
            512 => DataType::U16,
            8 => DataType::I32,
            768 => DataType::U32,
            1024 => DataType::I64,
            1280 => DataType::U64,
            16 => DataType::F32,
            64 => DataType::F64,
            _ => return None,
        })
    }

    /// The NIfTI `datatype` code.
    pub fn code(self) -> i16 {
        match self {
            DataType::U8 => 2,
            DataType::I8 => 256,
            DataType::I16 => 4,
            DataType::U16 => 512,
            DataType::I32 => 8,
            DataType::U32 => 768,
            DataType::I64 => 1024,
            DataType::U64 => 1280,
            DataType::F32 => 16,
            DataType::F64 => 64,
        }
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::I64 | DataType::U64 | DataType::F64 => 8,
        }
    }

    /// Whether the type holds integers.
    pub fn is_integer(self) -> bool {
        !matches!(self, DataType::F32 | DataType::F64)
    }
}

/// Every header field the reader needs, widened to 64 bits.
#[derive(Clone, Debug)]
pub(crate) struct RawHeader {
    /// 1 or 2.
    pub version: u8,
    pub big_endian: bool,
    pub dim: [i64; 8],
    pub datatype: i16,
    pub pixdim: [f64; 8],
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub xyzt_units: i32,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
}

impl RawHeader {
    /// Offset of the first voxel byte, as niftilib fixes it (never inside the header).
    pub fn data_offset(&self) -> Option<usize> {
        let min = if self.version == 1 {
            NIFTI1_DATA_OFFSET
        } else {
            NIFTI2_DATA_OFFSET
        };
        if !self.vox_offset.is_finite() || self.vox_offset < 0.0 || self.vox_offset > 1e15 {
            return None;
        }
        Some((self.vox_offset.floor() as usize).max(min))
    }
}

/// Parses the header at the start of `bytes` (at least [`MAX_HEADER_BYTES`] long, or the whole file).
pub(crate) fn parse_header(path: &Path, bytes: &[u8]) -> Result<RawHeader, VolumeError> {
    let bad_magic = |bytes: &[u8]| {
        let sizeof_hdr = bytes
            .get(0..4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        let magic = if sizeof_hdr == 540 || sizeof_hdr.swap_bytes() == 540 {
            bytes.get(4..12).unwrap_or(&[]).to_vec()
        } else {
            bytes.get(344..348).unwrap_or(&[]).to_vec()
        };
        VolumeError::BadMagic {
            path: path.to_path_buf(),
            magic,
            sizeof_hdr,
        }
    };
    if bytes.len() < 348 {
        return Err(VolumeError::Truncated {
            path: path.to_path_buf(),
            needed: 348,
            available: bytes.len() as u64,
        });
    }
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if le == 540 || le.swap_bytes() == 540 {
        if bytes.len() < 540 {
            return Err(VolumeError::Truncated {
                path: path.to_path_buf(),
                needed: 540,
                available: bytes.len() as u64,
            });
        }
        if &bytes[4..8] != b"n+2\0" {
            return Err(bad_magic(bytes));
        }
        return Ok(parse_nifti2(bytes, le != 540));
    }
    if &bytes[344..348] != b"n+1\0" {
        return Err(bad_magic(bytes));
    }
    let h = nifti::NiftiHeader::from_reader(&bytes[..348]).map_err(|_| bad_magic(bytes))?;
    let mut dim = [0i64; 8];
    for (d, &v) in dim.iter_mut().zip(h.dim.iter()) {
        // `nifti` reads the signed short fields as u16: undo that so negative sizes stay negative.
        *d = i64::from(v as i16);
    }
    let f = |v: f32| f64::from(v);
    Ok(RawHeader {
        version: 1,
        big_endian: h.endianness == nifti::Endianness::Big,
        dim,
        datatype: h.datatype,
        pixdim: h.pixdim.map(f),
        vox_offset: f(h.vox_offset),
        scl_slope: f(h.scl_slope),
        scl_inter: f(h.scl_inter),
        xyzt_units: i32::from(h.xyzt_units),
        qform_code: i32::from(h.qform_code),
        sform_code: i32::from(h.sform_code),
        quatern: [f(h.quatern_b), f(h.quatern_c), f(h.quatern_d)],
        qoffset: [f(h.quatern_x), f(h.quatern_y), f(h.quatern_z)],
        srow: [h.srow_x.map(f), h.srow_y.map(f), h.srow_z.map(f)],
    })
}

/// Field offsets from the NIfTI-2 standard (`nifti2.h`).
fn parse_nifti2(b: &[u8], swap: bool) -> RawHeader {
    let rd = |o: usize, n: usize| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&b[o..o + n]);
        if swap {
            a[..n].reverse();
        }
        a
    };
    let i16_ = |o: usize| {
        let a = rd(o, 2);
        i16::from_le_bytes([a[0], a[1]])
    };
    let i32_ = |o: usize| {
        let a = rd(o, 4);
        i32::from_le_bytes([a[0], a[1], a[2], a[3]])
    };
    let i64_ = |o: usize| i64::from_le_bytes(rd(o, 8));
    let f64_ = |o: usize| f64::from_le_bytes(rd(o, 8));
    let mut dim = [0i64; 8];
    let mut pixdim = [0f64; 8];
    for i in 0..8 {
        dim[i] = i64_(16 + 8 * i);
        pixdim[i] = f64_(104 + 8 * i);
    }
    let mut srow = [[0f64; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f64_(400 + 32 * r + 8 * c);
        }
    }
    RawHeader {
        version: 2,
        big_endian: swap != cfg!(target_endian = "big"),
        dim,
        datatype: i16_(12),
        pixdim,
        vox_offset: i64_(168) as f64,
        scl_slope: f64_(176),
        scl_inter: f64_(184),
        xyzt_units: i32_(500),
        qform_code: i32_(344),
        sform_code: i32_(348),
        quatern: [f64_(352), f64_(360), f64_(368)],
        qoffset: [f64_(376), f64_(384), f64_(392)],
        srow,
    }
}

/// What the writer puts into a NIfTI-1 header.
pub(crate) struct WriteHeader {
    pub dims_xyz: [usize; 3],
    pub datatype: DataType,
    pub pixdim: [f64; 4],
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub descrip: &'static [u8],
}

/// Serialises a little-endian NIfTI-1 header plus a zero extension flag (352 bytes).
///
/// Field layout from `nifti1.h`. Like ITK's writer: qform_code = sform_code = 1 (`NIFTI_XFORM_SCANNER_ANAT`),
/// `xyzt_units` = mm + s, scl_slope = 1, scl_inter = 0, vox_offset = 352.
pub(crate) fn nifti1_header_bytes(h: &WriteHeader) -> [u8; NIFTI1_DATA_OFFSET] {
    let mut b = [0u8; NIFTI1_DATA_OFFSET];
    let put = |b: &mut [u8; NIFTI1_DATA_OFFSET], off: usize, bytes: &[u8]| {
        b[off..off + bytes.len()].copy_from_slice(bytes)
    };
    put(&mut b, 0, &348i32.to_le_bytes());
    put(&mut b, 38, b"r"); // `regular`, as niftilib writes it
    let dims: [i16; 8] = [
        3,
        h.dims_xyz[0] as i16,
        h.dims_xyz[1] as i16,
        h.dims_xyz[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        put(&mut b, 40 + 2 * i, &d.to_le_bytes());
    }
    put(&mut b, 70, &h.datatype.code().to_le_bytes());
    put(&mut b, 72, &((h.datatype.size() * 8) as i16).to_le_bytes());
    let pixdim: [f32; 8] = [
        h.pixdim[0] as f32,
        h.pixdim[1] as f32,
        h.pixdim[2] as f32,
        h.pixdim[3] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (i, p) in pixdim.iter().enumerate() {
        put(&mut b, 76 + 4 * i, &p.to_le_bytes());
    }
    put(&mut b, 108, &(NIFTI1_DATA_OFFSET as f32).to_le_bytes());
    put(&mut b, 112, &1f32.to_le_bytes());
    put(&mut b, 116, &0f32.to_le_bytes());
    put(&mut b, 123, &[2 | 8]); // NIFTI_UNITS_MM | NIFTI_UNITS_SEC
    let n = h.descrip.len().min(79);
    put(&mut b, 148, &h.descrip[..n]);
    put(&mut b, 252, &1i16.to_le_bytes());
    put(&mut b, 254, &1i16.to_le_bytes());
    for i in 0..3 {
        put(&mut b, 256 + 4 * i, &(h.quatern[i] as f32).to_le_bytes());
        put(&mut b, 268 + 4 * i, &(h.qoffset[i] as f32).to_le_bytes());
    }
    for r in 0..3 {
        for c in 0..4 {
            put(
                &mut b,
                280 + 16 * r + 4 * c,
                &(h.srow[r][c] as f32).to_le_bytes(),
            );
        }
    }
    put(&mut b, 344, b"n+1\0");
    b
}

//! The voxel types the reader produces and the writer stores.

use crate::header::DataType;

mod sealed {
    pub trait Sealed {}
}

/// A voxel type with a NIfTI datatype: `u8`, `i8`, `i16`, `u16`, `i32`, `u32`, `f32`, `f64`.
///
/// Sealed: the set matches the datatypes this crate encodes and decodes.
pub trait Voxel:
    sealed::Sealed + Copy + Send + Sync + Default + PartialEq + std::fmt::Debug + 'static
{
    /// The NIfTI datatype written for this type.
    const DATATYPE: DataType;
    /// Type name for error messages.
    const NAME: &'static str;
    /// Little-endian encoding, `DATATYPE.size()` bytes.
    fn write_le(self, out: &mut [u8]);
    /// Reads one value from `DATATYPE.size()` bytes in the given byte order.
    fn read(bytes: &[u8], big_endian: bool) -> Self;
    /// The value as `f64` (exact for every type but 64-bit integers beyond 2^53).
    fn to_f64(self) -> f64;
    /// The value as `f32`, rounding like a C cast (`static_cast<float>`, numpy's `astype`).
    fn to_f32(self) -> f32;
    /// `v` if it is exactly representable (integral and in range for integer types), else `None`.
    fn from_f64_exact(v: f64) -> Option<Self>;
}

macro_rules! voxel {
    ($t:ty, $dt:expr, $name:expr, int) => {
        voxel!(@common $t, $dt, $name);
        impl Voxel for $t {
            voxel!(@body $t, $dt, $name);
            fn from_f64_exact(v: f64) -> Option<Self> {
                if v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64 {
                    Some(v as $t)
                } else {
                    None
                }
            }
        }
    };
    ($t:ty, $dt:expr, $name:expr, float) => {
        voxel!(@common $t, $dt, $name);
        impl Voxel for $t {
            voxel!(@body $t, $dt, $name);
            fn from_f64_exact(v: f64) -> Option<Self> {
                Some(v as $t)
            }
        }
    };
    (@common $t:ty, $dt:expr, $name:expr) => {
        impl sealed::Sealed for $t {}
    };
    (@body $t:ty, $dt:expr, $name:expr) => {
        const DATATYPE: DataType = $dt;
        const NAME: &'static str = $name;
        #[inline(always)]
        fn write_le(self, out: &mut [u8]) {
            out.copy_from_slice(&self.to_le_bytes());
        }
        #[inline(always)]
        fn read(bytes: &[u8], big_endian: bool) -> Self {
            let mut a = [0u8; std::mem::size_of::<$t>()];
            a.copy_from_slice(&bytes[..std::mem::size_of::<$t>()]);
            if big_endian {
                <$t>::from_be_bytes(a)
            } else {
                <$t>::from_le_bytes(a)
            }
        }
        #[inline(always)]
        fn to_f64(self) -> f64 {
            self as f64
        }
        #[inline(always)]
        fn to_f32(self) -> f32 {
            self as f32
        }
    };
}

voxel!(u8, DataType::U8, "u8", int);
voxel!(i8, DataType::I8, "i8", int);
voxel!(i16, DataType::I16, "i16", int);
voxel!(u16, DataType::U16, "u16", int);
voxel!(i32, DataType::I32, "i32", int);
voxel!(u32, DataType::U32, "u32", int);
voxel!(f32, DataType::F32, "f32", float);
voxel!(f64, DataType::F64, "f64", float);

/// Runs `$body` with `$S` bound to the Rust type of the on-disk datatype `$dt`.
macro_rules! with_source_type {
    ($dt:expr, $S:ident, $body:expr) => {
        match $dt {
            DataType::U8 => {
                type $S = u8;
                $body
            }
            DataType::I8 => {
                type $S = i8;
                $body
            }
            DataType::I16 => {
                type $S = i16;
                $body
            }
            DataType::U16 => {
                type $S = u16;
                $body
            }
            DataType::I32 => {
                type $S = i32;
                $body
            }
            DataType::U32 => {
                type $S = u32;
                $body
            }
            DataType::I64 => {
                type $S = $crate::voxel::I64;
                $body
            }
            DataType::U64 => {
                type $S = $crate::voxel::U64;
                $body
            }
            DataType::F32 => {
                type $S = f32;
                $body
            }
            DataType::F64 => {
                type $S = f64;
                $body
            }
        }
    };
}
pub(crate) use with_source_type;

/// On-disk 64-bit integers: readable, not a public voxel type.
pub(crate) trait Source: Copy + Send + Sync {
    const SIZE: usize;
    fn read(bytes: &[u8], big_endian: bool) -> Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
}

impl<T: Voxel> Source for T {
    const SIZE: usize = std::mem::size_of::<T>();
    #[inline(always)]
    fn read(bytes: &[u8], big_endian: bool) -> Self {
        <T as Voxel>::read(bytes, big_endian)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        <T as Voxel>::to_f64(self)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        <T as Voxel>::to_f32(self)
    }
}

macro_rules! wide {
    ($name:ident, $t:ty) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $name(pub $t);
        impl Source for $name {
            const SIZE: usize = 8;
            #[inline(always)]
            fn read(bytes: &[u8], big_endian: bool) -> Self {
                let mut a = [0u8; 8];
                a.copy_from_slice(&bytes[..8]);
                $name(if big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                })
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self.0 as f64
            }
            #[inline(always)]
            fn to_f32(self) -> f32 {
                self.0 as f32
            }
        }
    };
}
wide!(I64, i64);
wide!(U64, u64);

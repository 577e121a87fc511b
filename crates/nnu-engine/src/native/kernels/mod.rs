//! Compute kernels of the native CPU engine: 3-D convolution, transposed convolution (stride = kernel),
//! InstanceNorm + activation, activation and residual addition on one sample's activations.
//!
//! Activations live in a channel-blocked layout, [`Act`]: `[ceil(c/16)][z][y][x][16]` f32, the `nCdhw16c`
//! layout of oneDNN. A convolution is computed directly on it (no im2col) by register-blocked micro-kernels
//! in the manner of Georganas et al., "Anatomy of High-Performance Deep Learning Convolutions on SIMD
//! Architectures" (SC'18): the accumulators are several 16-channel output blocks times several output `x`
//! positions held in vector registers; for each input channel and tap, one input scalar is broadcast and
//! multiplied with the packed 16-wide weight vector of each output block. Input rows are staged with their
//! `x` padding so the hot loop has no branches; `z`/`y` taps that fall into the padding are skipped. A work
//! item (output blocks x one output plane x a run of rows) walks the input in slabs of one 16-channel block
//! and one `kz` tap, whose weights (at most 9 x 16 x 2 x 64 bytes) stay in L1 while every output row of the
//! item is swept; the accumulators go back to the output between slabs.
//!
//! Each kernel exists for AVX-512 ([`Isa::Avx512`]), AVX2 + FMA ([`Isa::Avx2`]) and plain Rust
//! ([`Isa::Portable`], every target), chosen at run time with [`detect_isa`]. With [`Precision::Bf16`] the
//! convolutions use AMX tiles where the CPU and OS allow them ([`Isa::Amx`], `tdpbf16ps`), else AVX512_BF16
//! dot products (`vdpbf16ps`); both round inputs and weights to bf16 and accumulate in f32. A layer of
//! fewer than 16 input channels (the image) stays in f32.
//!
//! An f32 3x3x3 convolution of stride 1 and padding 1 with at least 16 input and output channels (most
//! of an nnU-Net's work) runs as Winograd F(2x2x2, 3x3x3) instead (`winograd.rs`): 64 multiplications
//! per 2x2x2 outputs instead of 216, the sums over input channels done by the same register-blocked
//! micro-kernel. Deep layers whose transformed weights would exceed 16 MiB keep the direct kernel.
//!
//! A stride-1 convolution of at most 8 output channels (the first levels of a small network, such as the
//! demo's) would leave most lanes of the blocked kernel's vectors empty; it takes the narrow path instead
//! (`narrow.rs`: several output positions per vector, read from a segmented copy of the input plane),
//! in f32 under either precision.
//!
//! InstanceNorm statistics are gathered while a convolution writes its output. The normalisation and
//! activation can then be deferred ([`defer_norm_act`]) instead of a pass over the data: the readers that
//! copy their input anyway apply them on the way (the bf16 conversions of the AMX and AVX512_BF16 paths,
//! the narrow path's segmented planes, the transposed convolution's staged rows). The f32 blocked kernel
//! reads its input in place, so a deferred input is [`materialize`]d for it in one pass
//! ([`PackedConv::reads_deferred`] says which convolution reads it deferred).
//!
//! Work is spread over rayon's current thread pool (the caller installs its own pool).
//!
//! This module does not know graphs, ONNX or buffer planning; it computes one operator at a time.

mod amx;
mod bf16;
mod conv;
mod convt;
mod elementwise;
mod narrow;
mod simd;
#[cfg(test)]
mod tests;
mod winograd;

use ndarray::{ArrayView4, ArrayViewMut4};

use crate::EngineError;

pub use amx::amx_supported;
pub use conv::{conv3d, PackedConv};
pub use convt::{conv_transpose3d, PackedConvTranspose};
pub use elementwise::{activate, add_assign, defer_norm_act, materialize, norm_act};

/// Channels per block of the blocked layout (one AVX-512 register of f32).
pub const LANES: usize = 16;

/// One 64-byte channel block: 16 lanes of one voxel.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([f32; LANES]);

/// One sample's activations in the channel-blocked layout `[ceil(c/16)][z][y][x][16]` (f32, 64-byte
/// aligned). Lanes of the last block at or beyond the channel count are kept at 0 by every operation of this
/// module (a convolution reads only the lanes below the channel count, so garbage there would not leak).
///
/// An `Act` may be *deferred* ([`defer_norm_act`]): its stored values are a convolution's raw output and
/// its logical values `act(raw * scale + shift)` per channel, the InstanceNorm and activation that the
/// next reader applies as it copies the data anyway (see [`Act::is_deferred`], [`materialize`]).
pub struct Act {
    buf: Vec<Block>,
    channels: usize,
    dims: [usize; 3],
    deferred: Option<Deferred>,
}

/// The per-channel `act(x * scale + shift)` a deferred [`Act`]'s stored values still await, per block.
#[derive(Clone, Debug)]
struct Deferred {
    scale: Vec<[f32; LANES]>,
    shift: Vec<[f32; LANES]>,
    act: Activation,
}

/// The deferred transform of one 16-channel input block as a reader applies it: `y = x * scale + shift`
/// (fused), then `max(y, slope * y)` (LeakyReLU of a slope in [0, 1]; ReLU is slope 0, identity 1).
/// Lanes beyond the channel count have scale and shift 0, so they stay 0.
#[derive(Clone, Copy, Debug)]
pub(super) struct Xf {
    pub(super) scale: [f32; LANES],
    pub(super) shift: [f32; LANES],
    pub(super) slope: f32,
}

impl Xf {
    /// The transform of lane `l` of one value (scalar readers).
    #[inline(always)]
    pub(super) fn apply(&self, l: usize, x: f32) -> f32 {
        let y = x.mul_add(self.scale[l], self.shift[l]);
        y.max(y * self.slope)
    }
}

/// The slope `s` with `act(y) = max(y, s * y)`, when `act` has that form.
fn slope_of(act: Activation) -> Option<f32> {
    match act {
        Activation::None => Some(1.0),
        Activation::Relu => Some(0.0),
        Activation::LeakyRelu(a) if (0.0..=1.0).contains(&a) => Some(a),
        Activation::LeakyRelu(_) => None,
    }
}

fn blocks_of(channels: usize) -> usize {
    channels.div_ceil(LANES)
}

fn run_error(message: String) -> EngineError {
    EngineError::Run {
        backend: "native",
        message,
    }
}

impl Act {
    /// Zero-filled activations of `channels` channels and spatial `dims` (z, y, x). The allocation is
    /// fallible: [`EngineError::OutOfMemory`] when it cannot be made.
    pub fn try_zeros(channels: usize, dims: [usize; 3]) -> Result<Act, EngineError> {
        let mut act = Act {
            buf: Vec::new(),
            channels: 0,
            dims: [0; 3],
            deferred: None,
        };
        act.reshape(channels, dims)?;
        act.buf.iter_mut().for_each(|b| *b = Block([0.0; LANES]));
        Ok(act)
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Spatial shape (z, y, x).
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Number of f32 elements allocated (at least `ceil(c/16) * 16 * z * y * x`).
    pub fn capacity(&self) -> usize {
        self.buf.capacity() * LANES
    }

    /// Number of 16-channel blocks, `ceil(channels / 16)`.
    pub fn blocks(&self) -> usize {
        blocks_of(self.channels)
    }

    /// Whether the stored values still await a deferred normalisation and activation
    /// ([`defer_norm_act`]); [`materialize`] applies it.
    pub fn is_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// The deferred transform of block `b`, if any.
    fn xf(&self, b: usize) -> Option<Xf> {
        let d = self.deferred.as_ref()?;
        Some(Xf {
            scale: d.scale[b],
            shift: d.shift[b],
            slope: slope_of(d.act)?,
        })
    }

    /// Changes the shape, reusing the allocation when it is large enough (otherwise it grows, fallibly).
    /// The content is unspecified afterwards, padding lanes included, and nothing is deferred; every
    /// operation that writes an [`Act`] as its output sets them.
    pub fn reshape(&mut self, channels: usize, dims: [usize; 3]) -> Result<(), EngineError> {
        self.deferred = None;
        let n = blocks_of(channels)
            .checked_mul(dims[0])
            .and_then(|v| v.checked_mul(dims[1]))
            .and_then(|v| v.checked_mul(dims[2]))
            .ok_or(EngineError::OutOfMemory { bytes: usize::MAX })?;
        if n > self.buf.len() {
            self.buf
                .try_reserve_exact(n - self.buf.len())
                .map_err(|_| EngineError::OutOfMemory {
                    bytes: n.saturating_mul(std::mem::size_of::<Block>()),
                })?;
        }
        self.buf.resize(n, Block([0.0; LANES]));
        self.channels = channels;
        self.dims = dims;
        Ok(())
    }

    /// The blocked data, `blocks() * z * y * x * 16` values.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `Block` is `repr(C)` around `[f32; 16]` with no padding (64 bytes, align 64), so the
        // vector's blocks are a contiguous run of `len * 16` initialised f32.
        unsafe {
            std::slice::from_raw_parts(self.buf.as_ptr() as *const f32, self.buf.len() * LANES)
        }
    }

    /// The blocked data, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`; the borrow of `self` is exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.buf.as_mut_ptr() as *mut f32,
                self.buf.len() * LANES,
            )
        }
    }

    fn voxels(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Copies `src` (c, z, y, x), any strides, into the blocked layout; padding lanes become 0.
    ///
    /// # Panics
    /// When the shape of `src` differs from `(channels, z, y, x)` (a programming error of the caller).
    pub fn load_cdhw(&mut self, src: ArrayView4<f32>) {
        self.deferred = None;
        let [z, y, x] = self.dims;
        assert_eq!(
            src.shape(),
            &[self.channels, z, y, x],
            "load_cdhw: shape mismatch"
        );
        let voxels = self.voxels();
        let channels = self.channels;
        let data = self.as_mut_slice();
        for (b, chunk) in data.chunks_mut(voxels * LANES).enumerate() {
            for (v, out) in chunk.chunks_exact_mut(LANES).enumerate() {
                let (iz, rem) = (v / (y * x), v % (y * x));
                let (iy, ix) = (rem / x, rem % x);
                for (l, o) in out.iter_mut().enumerate() {
                    let c = b * LANES + l;
                    *o = if c < channels {
                        src[[c, iz, iy, ix]]
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    /// Copies the stored activations into `dst` (c, z, y, x), any strides ([`materialize`] a deferred
    /// `Act` first to get its logical values).
    ///
    /// # Panics
    /// When the shape of `dst` differs from `(channels, z, y, x)`.
    pub fn store_cdhw(&self, mut dst: ArrayViewMut4<f32>) {
        let [z, y, x] = self.dims;
        assert_eq!(
            dst.shape(),
            &[self.channels, z, y, x],
            "store_cdhw: shape mismatch"
        );
        let data = self.as_slice();
        let voxels = self.voxels();
        for ((c, iz, iy, ix), o) in dst.indexed_iter_mut() {
            let v = (iz * y + iy) * x + ix;
            *o = data[((c / LANES) * voxels + v) * LANES + c % LANES];
        }
    }
}

/// Instruction set a kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 with AMX tiles: bf16 convolutions on the tile matrix unit ([`amx_supported`]), every f32
    /// kernel as [`Isa::Avx512`].
    Amx,
    /// AVX-512F (16-lane registers, 32 of them).
    Avx512,
    /// AVX2 with FMA (each 16-lane block in two 8-lane registers).
    Avx2,
    /// Plain Rust, for every target.
    Portable,
}

impl Isa {
    /// Whether this CPU can run kernels of this instruction set.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Amx => amx_supported(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The best instruction set of this CPU (run-time detection; [`Isa::Portable`] on other architectures).
/// AMX counts only where the OS grants its tiles; the environment variable `NNU_AMX=0` leaves it out
/// (to compare the AVX512_BF16 path on the same machine).
pub fn detect_isa() -> Isa {
    let amx_allowed = std::env::var("NNU_AMX").map_or(true, |v| v != "0");
    [Isa::Amx, Isa::Avx512, Isa::Avx2]
        .into_iter()
        .filter(|isa| *isa != Isa::Amx || amx_allowed)
        .into_iter()
        .find(|isa| isa.supported())
        .unwrap_or(Isa::Portable)
}

/// Whether this CPU has AVX512_BF16 (needed for [`Precision::Bf16`]).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub use crate::Precision;

/// Activation applied after a normalisation, or alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x >= 0`, else `slope * x` (nnU-Net: 0.01).
    LeakyRelu(f32),
}

/// Shape of a 3-D convolution: symmetric zero padding, no dilation, one group. Axis order (z, y, x).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// Input channels (over all concatenated sources).
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Zero padding on each side.
    pub pad: [usize; 3],
}

impl ConvSpec {
    /// Output spatial shape for an input of `in_dims`: `(i + 2p - k) / s + 1` per axis (0 when the
    /// kernel does not fit).
    pub fn out_dims(&self, in_dims: [usize; 3]) -> [usize; 3] {
        std::array::from_fn(|a| {
            let padded = in_dims[a] + 2 * self.pad[a];
            if padded < self.kernel[a] {
                0
            } else {
                (padded - self.kernel[a]) / self.stride[a] + 1
            }
        })
    }
}

/// Per-output-channel sum and sum of squares (f64) of a convolution's output, gathered while it is
/// written; `count` is the number of voxels per channel. Feeds [`norm_act`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelStats {
    /// Sum over the voxels, per channel.
    pub sum: Vec<f64>,
    /// Sum of squares over the voxels, per channel.
    pub sumsq: Vec<f64>,
    /// Voxels per channel.
    pub count: usize,
}

//! The small numerics that several steps reproduce bit for bit from NumPy and torch, in one place:
//! NumPy's pairwise sum ([`pairwise_sum`]), NumPy's default percentile ([`percentile_linear`]), and the
//! IEEE half-precision and bfloat16 conversions ([`f16_to_f32`], [`f32_to_f16`], [`bf16_to_f32`],
//! [`round_to_f16`]).
//!
//! Users: `nnu-metrics` (means and HD95 as NumPy computes them), `nnu-tiling` (the Gaussian's
//! normalisation; nnunetv2's fp16 Gaussian), `nnu-pipeline` (latency percentiles), `nnu-artifacts` (f16
//! and bf16 tensors of checkpoints) and `nnu-acl` (fp16 model inputs and outputs). The crate has no
//! dependencies, so the lowest of them can use it.
//!
//! ```
//! use nnu_numerics::{f16_to_f32, f32_to_f16, pairwise_sum, percentile_linear};
//!
//! // A sequential sum of 200 times 0.1 gives 20.000000000000004; NumPy's (and this) gives 20.
//! assert_eq!(pairwise_sum(&[0.1; 200]), 20.0);
//! // np.percentile([1, 2, 3, 4], 50) == 2.5
//! assert_eq!(percentile_linear(vec![4.0, 1.0, 3.0, 2.0], 50.0), 2.5);
//! assert_eq!(f16_to_f32(f32_to_f16(-2.0)), -2.0);
//! ```
//!
//! Deliberately not here: anything with arrays of more than one dimension, or any IO.

#![warn(missing_docs)]

mod half;
mod stats;

pub use crate::half::{bf16_to_f32, f16_to_f32, f32_to_f16, round_to_f16};
pub use crate::stats::{pairwise_sum, percentile_linear};

//! nnU-Net v1 preprocessing (crop, resample, normalise) and export resampling, exact and fast.
//!
//! This crate reproduces, voxel for voxel, what nnU-Net 1.7.1 does to an image before the network sees it
//! and to the class probabilities afterwards:
//!
//! - [`crop`]: crop to the nonzero box (`ImageCropper.crop`, `crop_to_nonzero`);
//! - [`resample`]: `skimage.transform.resize(order 0/1/3, mode='edge', anti_aliasing=False)` as scikit-image
//!   0.26 / scipy 1.17 compute it, and nnU-Net's separate-z rules (`resample_patient`,
//!   `resample_data_or_seg`), as separable 1-D passes in f64, parallel with rayon;
//! - [`normalize`]: the `CT`, `CT2`, `noNorm` and z-score schemes of `GenericPreprocessor`;
//! - [`preprocess_case`]: all of it in nnU-Net's order, with the [`CaseProperties`] nnU-Net keeps;
//! - [`v2`]: nnunetv2's order and schemes (`DefaultPreprocessor`: transpose, crop, normalise by scheme
//!   name, then resample with the plans' function);
//! - [`export`]: probabilities back to the original image (`save_segmentation_nifti_from_softmax`) and the
//!   largest-connected-component postprocessing.
//!
//! Arrays are in SimpleITK's numpy order (z, y, x); channel-first 4-D arrays are (c, z, y, x).
//!
//! ```
//! use ndarray::Array3;
//! use nnu_preprocessing::{preprocess_case, ItkGeometry, IntensityProperties, Normalization, PreprocessParams};
//!
//! // a CT-like 8 x 10 x 10 volume with 2 mm slices, resampled to 1 mm isotropic
//! let image = Array3::from_shape_fn((8, 10, 10), |(z, y, x)| (z * 100 + y * 10 + x) as f32 - 500.0);
//! let stats = IntensityProperties { mean: 0.0, sd: 200.0, percentile_00_5: -400.0, percentile_99_5: 300.0 };
//! let params = PreprocessParams::new(
//!     [1.0, 1.0, 1.0],
//!     vec![Normalization::Ct { stats, use_nonzero_mask: false }],
//! );
//! let geometry = ItkGeometry::from_spacing_zyx([2.0, 1.0, 1.0]);
//! let (data, props) = preprocess_case(vec![image], &geometry, &params)?;
//! assert_eq!(data.shape(), &[1, 16, 10, 10]);
//! assert_eq!(props.size_after_resampling, [16, 10, 10]);
//! # Ok::<(), nnu_preprocessing::PreprocessError>(())
//! ```
//!
//! # Exactness
//!
//! The goldens in `fixtures/preprocessing` (made by `scripts/goldens/preprocessing_make.py` with nnU-Net 1.7.1,
//! scipy 1.17.1, scikit-image 0.26.0) are matched within 1e-4 on normalised data (in practice 0 to 4e-7), with
//! identical shapes, boxes and exported label maps. Deliberate differences: statistics of the z-score schemes are
//! accumulated in f64 (numpy sums f32 pairwise); separable 1-D passes instead of scipy's `(order + 1)^3`-tap
//! loop (same result up to f64 rounding); the spline prefilter's initial sum stops once `|z|^i < 1e-22`;
//! an all-zero image and infinite voxels are errors.
//!
//! # Memory
//!
//! Channels are processed one at a time. An order-3 resize that changes z holds one f64 buffer of the
//! in-plane-resized channel (`in_z x out_y x out_x`); everything else (orders 0 and 1, separate z along the
//! first axis, no change along z) streams plane by plane and holds only per-thread planes. `CT` (without
//! mask) and `noNorm` normalisation are fused into the resampling's store, so the preprocessed output is
//! written once. Where the resampling streams, the export resamples every class and takes the argmax plane
//! by plane straight into its u8 output; otherwise it keeps one resampled f32 channel and a running f32
//! maximum besides it.
//!
//! Every volume-sized buffer (the preprocessed output, masks, resampling and export buffers) is allocated
//! fallibly: one that cannot be had is [`PreprocessError::OutOfMemory`], naming the buffer and its bytes,
//! never an abort of the process.
//!
//! Deliberately not here: reading and writing images (`nnu-volume`), reading plans (`nnu-artifacts`; the
//! pipeline fills [`PreprocessParams`] from them), padding and tiling (`nnu-tiling`), and anything that needs
//! Python at build, test or run time.

#![warn(missing_docs)]

pub mod case;
pub mod crop;
mod error;
pub mod export;
mod kernel;
pub mod normalize;
pub mod resample;
pub mod v2;

pub use case::{
    append_prev_stage_v1, preprocess_case, CaseProperties, ItkGeometry, PreprocessParams,
};
pub use crop::CropBbox;
pub use error::PreprocessError;
pub use export::{
    export_probabilities, export_probabilities_per_class, export_segmentation, ExportOptions,
    Postprocessing,
};
pub use normalize::{IntensityProperties, Normalization};
pub use resample::{Order, ResamplePlan};

//! Read nnU-Net v1 model folders without Python: pickles, plans, splits, torch checkpoints.
//!
//! A user arrives with a model folder as nnU-Net v1 (or the UNet++ fork) leaves it: `plans.pkl`,
//! `fold_K/model_final_checkpoint.model` (a `torch.save` zip) and its `.model.pkl` sidecar, maybe a
//! `splits_final.pkl`. This crate reads all of them in pure Rust:
//!
//! - [`pickle`]: a pickle reader (protocols 0-5) that decodes into a [`pickle::Value`] tree, understands numpy
//!   arrays / scalars / dtypes and torch tensors, and never executes anything;
//! - [`Plans`] / [`Splits`]: the typed plans and cross-validation folds;
//! - [`Checkpoint`] / [`TrainerInfo`]: the state_dict as dense named tensors, and the trainer name;
//! - [`ModelFolder`]: all of the above for one folder, with errors that name the missing file.
//!
//! ```no_run
//! use nnu_artifacts::ModelFolder;
//!
//! let model = ModelFolder::open("Task003_Liver/nnUNetPlusPlusTrainerV2__nnUNetPlansv2.1")?;
//! let stage = model.plans.fullres_stage();
//! println!("patch {:?} at spacing {:?}", stage.patch_size, stage.current_spacing);
//! let ckpt = model.checkpoint(Some(0))?;
//! let w = ckpt.get("conv_blocks_context.0.blocks.0.conv.weight").map(|t| t.to_f32());
//! # let _ = w;
//! # Ok::<(), nnu_artifacts::Error>(())
//! ```
//!
//! ```
//! // Any pickle decodes to a value tree; here pickle.dumps([1, 'a'], protocol=4).
//! let v = nnu_artifacts::pickle::from_slice(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x01a\x94e.")?;
//! assert_eq!(v.to_string(), "[1, 'a']");
//! # Ok::<(), nnu_artifacts::Error>(())
//! ```
//!
//! Deliberately not done: writing pickles or checkpoints, the legacy pre-1.6 (non-zip) `torch.save` format,
//! protocol 5 out-of-band buffers, and running any Python object's code (unknown globals stay opaque).

#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod model;
pub mod numpy;
pub mod pickle;
pub mod plans;
pub mod torch;
mod typed;
pub mod v2;
mod value;

pub use checkpoint::{Checkpoint, NamedTensor, TrainerInfo, V2TrainerInfo};
pub use error::{Error, Result};
pub use model::{FoldDir, ModelFolder};
pub use plans::{Fold, IntensityProperties, Plans, Splits, StagePlan};
pub use torch::TensorDtype;

//! nnunetv2 model folders: `plans.json`, `dataset.json`, `fold_K/checkpoint_final.pth`.
//!
//! nnunetv2 (2.x) keeps its plans as JSON with one entry per configuration (`2d`, `3d_fullres`,
//! `3d_lowres`, `3d_cascade_fullres`, or custom ones that `inherits_from` another), names its network by
//! class path (`dynamic_network_architectures.architectures.unet.PlainConvUNet`) with constructor keyword
//! arguments, and keeps labels by name in `dataset.json`. [`V2ModelFolder`] opens such a folder as
//! `nnUNetv2_predict_from_modelfolder` does; [`V2Plans::configuration`] resolves one configuration
//! (inheritance included), and [`UNetArchitecture`] is the typed network description the ONNX export
//! builds from.
//!
//! The v1 reader ([`crate::ModelFolder`]) stays separate: nnU-Net v1 and nnunetv2 model folders share no
//! file format. [`detect`] tells the two apart by the files a folder holds.

mod arch;
mod dataset;
mod model;
mod plans;

pub use arch::{BlockKind, NetworkClass, Nonlin, UNetArchitecture};
pub use dataset::{label_names, label_names_from_json_slice, DatasetJson, LabelValue, Labels};
pub use model::{
    detect, is_alias_key, num_parameters_v2, ModelKind, V2FoldDir, V2ModelFolder, CHECKPOINT_BEST,
    CHECKPOINT_FINAL,
};
pub use plans::{
    Architecture, ResamplingKwargs, V2Configuration, V2IntensityProperties, V2Plans,
    DEFAULT_CONFIGURATION,
};

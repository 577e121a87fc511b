//! The network a configuration's `architecture` describes, typed: `dynamic_network_architectures`'
//! `PlainConvUNet` and `ResidualEncoderUNet` (the ResEnc M/L/XL presets are the latter with other plans).

use serde_json::Value as Json;

use crate::error::{Error, Result};

use super::plans::{bad, field, opt_field, Architecture, J};

/// Which `dynamic_network_architectures` class the plans name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkClass {
    /// `...architectures.unet.PlainConvUNet`: `PlainConvEncoder` + `UNetDecoder`.
    PlainConvUNet,
    /// `...architectures.unet.ResidualEncoderUNet` (also `residual_unet.ResidualEncoderUNet` in older
    /// versions): a stem, `ResidualEncoder` of `BasicBlockD`s, `UNetDecoder`.
    ResidualEncoderUNet,
}

impl NetworkClass {
    /// The class name without its module path.
    pub fn name(self) -> &'static str {
        match self {
            NetworkClass::PlainConvUNet => "PlainConvUNet",
            NetworkClass::ResidualEncoderUNet => "ResidualEncoderUNet",
        }
    }
}

/// The residual block of a `ResidualEncoder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `BasicBlockD` (the default, and what every nnunetv2 ResEnc preset uses).
    BasicBlockD,
}

/// The non-linearity after each normalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlin {
    /// `torch.nn.LeakyReLU` with its `negative_slope` (0.01 unless `nonlin_kwargs` says otherwise).
    LeakyRelu(f32),
    /// `torch.nn.ReLU`
    Relu,
}

/// A U-Net as `PlainConvUNet` / `ResidualEncoderUNet` construct it, from the plans' `arch_kwargs`.
///
/// Only what inference with nnunetv2's default trainers uses is accepted: convolutional downsampling,
/// `InstanceNorm` (affine), LeakyReLU or ReLU, no dropout, `BasicBlockD`, `nonlin_first = False`.
/// Anything else is an error naming the keyword argument.
#[derive(Clone, Debug, PartialEq)]
pub struct UNetArchitecture {
    /// The class.
    pub class: NetworkClass,
    /// Spatial axes of the convolutions (2 or 3, from `conv_op`).
    pub ndim: usize,
    /// `n_stages`
    pub n_stages: usize,
    /// `features_per_stage`
    pub features_per_stage: Vec<usize>,
    /// `kernel_sizes`: one kernel per stage.
    pub kernel_sizes: Vec<Vec<usize>>,
    /// `strides`: one stride per stage (the first is usually all ones).
    pub strides: Vec<Vec<usize>>,
    /// `n_conv_per_stage` (PlainConvUNet) or `n_blocks_per_stage` (ResidualEncoderUNet).
    pub n_conv_per_stage: Vec<usize>,
    /// `n_conv_per_stage_decoder`: `n_stages - 1` entries.
    pub n_conv_per_stage_decoder: Vec<usize>,
    /// `conv_bias`
    pub conv_bias: bool,
    /// `norm_op_kwargs['eps']` (1e-5 unless given).
    pub norm_eps: f32,
    /// `nonlin` with its slope.
    pub nonlin: Nonlin,
    /// The residual block (ResidualEncoderUNet only).
    pub block: BlockKind,
    /// `stem_channels` (ResidualEncoderUNet; `features_per_stage[0]` when absent).
    pub stem_channels: Option<usize>,
}

fn class_tail(s: &str) -> &str {
    s.rsplit('.').next().unwrap_or(s)
}

fn per_stage_usize(j: J<'_>, n: usize) -> Result<Vec<usize>> {
    match j.v {
        Json::Number(_) => Ok(vec![j.usize()?; n]),
        _ => j.vec_usize(),
    }
}

fn per_stage_kernel(j: J<'_>, n: usize, ndim: usize) -> Result<Vec<Vec<usize>>> {
    match j.v {
        Json::Number(_) => Ok(vec![vec![j.usize()?; ndim]; n]),
        _ => j.map_arr(|e| match e.v {
            Json::Number(_) => Ok(vec![e.usize()?; ndim]),
            _ => e.vec_usize(),
        }),
    }
}

impl UNetArchitecture {
    /// Reads the typed network from a configuration's `architecture`. Key paths in errors are relative to
    /// `architecture`.
    pub fn from_architecture(a: &Architecture) -> Result<UNetArchitecture> {
        let class = match class_tail(&a.network_class_name) {
            "PlainConvUNet" => NetworkClass::PlainConvUNet,
            "ResidualEncoderUNet" => NetworkClass::ResidualEncoderUNet,
            other => {
                return Err(Error::BadValue {
                    key: "network_class_name".into(),
                    expected:
                        "PlainConvUNet or ResidualEncoderUNet (dynamic_network_architectures)"
                            .into(),
                    found: other.into(),
                })
            }
        };
        let kw = Json::Object(a.arch_kwargs.clone());
        let j = J {
            v: &kw,
            path: "arch_kwargs",
        };
        let conv_op = field(j, "conv_op", |j| j.string())?;
        let ndim = match class_tail(&conv_op) {
            "Conv2d" => 2,
            "Conv3d" => 3,
            other => {
                return Err(Error::BadValue {
                    key: "arch_kwargs/conv_op".into(),
                    expected: "torch.nn.Conv2d or torch.nn.Conv3d".into(),
                    found: other.into(),
                })
            }
        };
        let n_stages = field(j, "n_stages", |j| j.usize())?;
        if n_stages < 2 {
            return Err(Error::BadValue {
                key: "arch_kwargs/n_stages".into(),
                expected: "at least 2 stages".into(),
                found: n_stages.to_string(),
            });
        }
        let features_per_stage = field(j, "features_per_stage", |j| per_stage_usize(j, n_stages))?;
        let kernel_sizes = field(j, "kernel_sizes", |j| per_stage_kernel(j, n_stages, ndim))?;
        let strides = field(j, "strides", |j| per_stage_kernel(j, n_stages, ndim))?;
        let blocks_key = match class {
            NetworkClass::PlainConvUNet => "n_conv_per_stage",
            NetworkClass::ResidualEncoderUNet => "n_blocks_per_stage",
        };
        let n_conv_per_stage = field(j, blocks_key, |j| per_stage_usize(j, n_stages))?;
        let n_conv_per_stage_decoder = field(j, "n_conv_per_stage_decoder", |j| {
            per_stage_usize(j, n_stages - 1)
        })?;
        let lens = [
            ("features_per_stage", features_per_stage.len(), n_stages),
            ("kernel_sizes", kernel_sizes.len(), n_stages),
            ("strides", strides.len(), n_stages),
            (blocks_key, n_conv_per_stage.len(), n_stages),
            (
                "n_conv_per_stage_decoder",
                n_conv_per_stage_decoder.len(),
                n_stages - 1,
            ),
        ];
        for (k, got, want) in lens {
            if got != want {
                return Err(Error::BadValue {
                    key: format!("arch_kwargs/{k}"),
                    expected: format!("{want} entries (n_stages = {n_stages})"),
                    found: format!("{got} entries"),
                });
            }
        }
        for (k, v) in [("kernel_sizes", &kernel_sizes), ("strides", &strides)] {
            if let Some(bad_entry) = v.iter().find(|e| e.len() != ndim || e.contains(&0)) {
                return Err(Error::BadValue {
                    key: format!("arch_kwargs/{k}"),
                    expected: format!("{ndim} positive sizes per stage"),
                    found: format!("{bad_entry:?}"),
                });
            }
        }
        if features_per_stage.contains(&0) || n_conv_per_stage.contains(&0) {
            return Err(Error::BadValue {
                key: format!("arch_kwargs/{blocks_key}"),
                expected: "positive features and conv/block counts".into(),
                found: format!("{features_per_stage:?} / {n_conv_per_stage:?}"),
            });
        }
        let conv_bias = opt_field(j, "conv_bias", |j| j.bool())?.unwrap_or(false);
        let norm_op = field(j, "norm_op", |j| j.string())?;
        if !class_tail(&norm_op).starts_with("InstanceNorm") {
            return Err(Error::BadValue {
                key: "arch_kwargs/norm_op".into(),
                expected: "torch.nn.InstanceNorm2d/3d (the only norm nnunetv2's planners use)"
                    .into(),
                found: norm_op,
            });
        }
        let (norm_eps, affine) = match j.opt("norm_op_kwargs")? {
            Some((v, p)) => {
                let n = J { v, path: &p };
                (
                    opt_field(n, "eps", |j| j.f64())?.unwrap_or(1e-5) as f32,
                    opt_field(n, "affine", |j| j.bool())?.unwrap_or(false),
                )
            }
            None => (1e-5, false),
        };
        if !affine {
            return Err(Error::BadValue {
                key: "arch_kwargs/norm_op_kwargs/affine".into(),
                expected: "true".into(),
                found: "false or absent".into(),
            });
        }
        if let Some((v, p)) = j.opt("dropout_op")? {
            return Err(bad(&p, "null (dropout is not supported)", v));
        }
        let nonlin_name = field(j, "nonlin", |j| j.string())?;
        let nonlin = match class_tail(&nonlin_name) {
            "LeakyReLU" => {
                let slope = match j.opt("nonlin_kwargs")? {
                    Some((v, p)) => opt_field(J { v, path: &p }, "negative_slope", |j| j.f64())?,
                    None => None,
                };
                Nonlin::LeakyRelu(slope.unwrap_or(0.01) as f32)
            }
            "ReLU" => Nonlin::Relu,
            other => {
                return Err(Error::BadValue {
                    key: "arch_kwargs/nonlin".into(),
                    expected: "torch.nn.LeakyReLU or torch.nn.ReLU".into(),
                    found: other.into(),
                })
            }
        };
        if opt_field(j, "nonlin_first", |j| j.bool())?.unwrap_or(false) {
            return Err(Error::BadValue {
                key: "arch_kwargs/nonlin_first".into(),
                expected: "false".into(),
                found: "true".into(),
            });
        }
        if let Some(b) = opt_field(j, "block", |j| j.string())? {
            if class_tail(&b) != "BasicBlockD" {
                return Err(Error::BadValue {
                    key: "arch_kwargs/block".into(),
                    expected: "BasicBlockD".into(),
                    found: b,
                });
            }
        }
        if let Some((v, p)) = j.opt("bottleneck_channels")? {
            return Err(bad(&p, "null (bottleneck blocks are not supported)", v));
        }
        let stem_channels = opt_field(j, "stem_channels", |j| j.usize())?;
        Ok(UNetArchitecture {
            class,
            ndim,
            n_stages,
            features_per_stage,
            kernel_sizes,
            strides,
            n_conv_per_stage,
            n_conv_per_stage_decoder,
            conv_bias,
            norm_eps,
            nonlin,
            block: BlockKind::BasicBlockD,
            stem_channels,
        })
    }
}

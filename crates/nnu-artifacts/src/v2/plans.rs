//! Typed nnunetv2 plans (`plans.json` of a trained model, `nnUNetPlans.json` in `nnUNet_preprocessed`).
//!
//! The fields are those nnunetv2 2.8.1's `PlansManager` / `ConfigurationManager` expose. Axis order is as
//! stored: spacings, patch sizes and kernel sizes are in the transposed order (`transpose_forward` applied
//! to the image's (z, y, x) numpy axes).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

use super::arch::UNetArchitecture;

/// The configuration `nnUNetv2_predict` uses when none is given.
pub const DEFAULT_CONFIGURATION: &str = "3d_fullres";

/// Foreground intensity statistics of one input channel
/// (`plans['foreground_intensity_properties_per_channel'][c]`), used by `CTNormalization`.
#[derive(Clone, Debug, PartialEq)]
pub struct V2IntensityProperties {
    /// `mean`
    pub mean: f64,
    /// `median`
    pub median: f64,
    /// `std`
    pub std: f64,
    /// `min`
    pub min: f64,
    /// `max`
    pub max: f64,
    /// `percentile_00_5` (lower clip of CT normalisation).
    pub percentile_00_5: f64,
    /// `percentile_99_5` (upper clip of CT normalisation).
    pub percentile_99_5: f64,
}

/// The keyword arguments of a resampling function (`resampling_fn_*_kwargs`), as
/// `resample_data_or_seg_to_shape` takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct ResamplingKwargs {
    /// `is_seg`
    pub is_seg: bool,
    /// `order`: spline order within the plane (or in 3-D when not separate).
    pub order: usize,
    /// `order_z`: order along the out-of-plane axis when resampling separately.
    pub order_z: usize,
    /// `force_separate_z`: `None` lets the anisotropy decide.
    pub force_separate_z: Option<bool>,
    /// `separate_z_anisotropy_threshold` (nnunetv2's default 3 when absent).
    pub separate_z_anisotropy_threshold: f64,
}

/// `configuration['architecture']`: the network class and its constructor arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// `network_class_name`, e.g. `dynamic_network_architectures.architectures.unet.PlainConvUNet`.
    pub network_class_name: String,
    /// `arch_kwargs`, as stored (class references are strings, see `kw_requires_import`).
    pub arch_kwargs: Map<String, Json>,
    /// `_kw_requires_import`: which `arch_kwargs` name a class by its import path.
    pub kw_requires_import: Vec<String>,
}

/// One configuration of the plans, with `inherits_from` resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Configuration {
    /// The configuration's name, e.g. `3d_fullres`.
    pub name: String,
    /// `data_identifier`, if present.
    pub data_identifier: Option<String>,
    /// `preprocessor_name` (`DefaultPreprocessor`).
    pub preprocessor_name: String,
    /// `batch_size`
    pub batch_size: usize,
    /// `patch_size` (2 entries for 2-D configurations).
    pub patch_size: Vec<usize>,
    /// `median_image_size_in_voxels`
    pub median_image_size_in_voxels: Vec<f64>,
    /// `spacing`: the target spacing, in the transposed axis order (one entry per patch axis).
    pub spacing: Vec<f64>,
    /// `normalization_schemes[c]`, e.g. `CTNormalization`, `ZScoreNormalization`.
    pub normalization_schemes: Vec<String>,
    /// `use_mask_for_norm[c]`
    pub use_mask_for_norm: Vec<bool>,
    /// `resampling_fn_data` (`resample_data_or_seg_to_shape`) and its kwargs.
    pub resampling_fn_data: (String, ResamplingKwargs),
    /// `resampling_fn_seg` and its kwargs.
    pub resampling_fn_seg: (String, ResamplingKwargs),
    /// `resampling_fn_probabilities` and its kwargs (used on the logits at export).
    pub resampling_fn_probabilities: (String, ResamplingKwargs),
    /// `architecture`
    pub architecture: Architecture,
    /// `batch_dice`
    pub batch_dice: bool,
    /// `previous_stage` (cascades: the configuration whose prediction is an extra input).
    pub previous_stage: Option<String>,
    /// `next_stage` (one or several names).
    pub next_stage: Vec<String>,
}

impl V2Configuration {
    /// Number of spatial axes (2 or 3).
    pub fn ndim(&self) -> usize {
        self.patch_size.len()
    }

    /// The typed network description of `architecture`.
    pub fn network(&self) -> Result<UNetArchitecture> {
        UNetArchitecture::from_architecture(&self.architecture)
            .map_err(|e| prefix(e, &format!("configurations/{}/architecture", self.name)))
    }
}

/// A parsed nnunetv2 plans file.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Plans {
    /// `dataset_name`
    pub dataset_name: String,
    /// `plans_name` (`nnUNetPlans`, `nnUNetResEncUNetMPlans`, ...).
    pub plans_name: String,
    /// `original_median_spacing_after_transp`
    pub original_median_spacing_after_transp: Vec<f64>,
    /// `image_reader_writer` (`SimpleITKIO`, `NibabelIO`, ...), if present.
    pub image_reader_writer: Option<String>,
    /// `transpose_forward`: numpy axes of the image in the order the network sees them.
    pub transpose_forward: Vec<usize>,
    /// `transpose_backward`: the inverse permutation.
    pub transpose_backward: Vec<usize>,
    /// `experiment_planner_used`, if present.
    pub experiment_planner_used: Option<String>,
    /// `label_manager` (`LabelManager` when absent).
    pub label_manager: String,
    /// `foreground_intensity_properties_per_channel` by channel index (empty when absent).
    pub foreground_intensity_properties_per_channel: BTreeMap<usize, V2IntensityProperties>,
    /// The configuration names, sorted by name.
    pub configuration_names: Vec<String>,
    configurations: Map<String, Json>,
}

fn prefix(e: Error, outer: &str) -> Error {
    match e {
        Error::MissingKey { key } => Error::MissingKey {
            key: format!("{outer}/{key}"),
        },
        Error::BadValue {
            key,
            expected,
            found,
        } => Error::BadValue {
            key: format!("{outer}/{key}"),
            expected,
            found,
        },
        e => e,
    }
}

/// A JSON value with the key path it was found under, for errors that name the key.
#[derive(Clone, Copy)]
pub(crate) struct J<'a> {
    pub v: &'a Json,
    pub path: &'a str,
}

pub(crate) fn short_json(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

pub(crate) fn bad(path: &str, expected: &str, found: &Json) -> Error {
    Error::BadValue {
        key: path.to_owned(),
        expected: expected.to_owned(),
        found: short_json(found),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    }
}

impl<'a> J<'a> {
    pub fn obj(&self) -> Result<&'a Map<String, Json>> {
        self.v
            .as_object()
            .ok_or_else(|| bad(self.path, "an object", self.v))
    }

    pub fn opt(&self, key: &str) -> Result<Option<(&'a Json, String)>> {
        Ok(self
            .obj()?
            .get(key)
            .filter(|v| !v.is_null())
            .map(|v| (v, join(self.path, key))))
    }

    pub fn key(&self, key: &str) -> Result<(&'a Json, String)> {
        self.opt(key)?.ok_or_else(|| Error::MissingKey {
            key: join(self.path, key),
        })
    }

    pub fn usize(&self) -> Result<usize> {
        self.v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| bad(self.path, "a non-negative integer", self.v))
    }

    pub fn f64(&self) -> Result<f64> {
        self.v
            .as_f64()
            .ok_or_else(|| bad(self.path, "a number", self.v))
    }

    pub fn bool(&self) -> Result<bool> {
        self.v
            .as_bool()
            .ok_or_else(|| bad(self.path, "true or false", self.v))
    }

    pub fn string(&self) -> Result<String> {
        self.v
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(self.path, "a string", self.v))
    }

    pub fn arr(&self) -> Result<&'a Vec<Json>> {
        self.v
            .as_array()
            .ok_or_else(|| bad(self.path, "a list", self.v))
    }

    pub fn map_arr<T>(&self, f: impl Fn(J<'_>) -> Result<T>) -> Result<Vec<T>> {
        self.arr()?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let p = join(self.path, &i.to_string());
                f(J { v, path: &p })
            })
            .collect()
    }

    pub fn vec_usize(&self) -> Result<Vec<usize>> {
        self.map_arr(|j| j.usize())
    }

    pub fn vec_f64(&self) -> Result<Vec<f64>> {
        self.map_arr(|j| j.f64())
    }
}

/// Reads key `k` of `j` with `f`, naming the key on error.
pub(crate) fn field<T>(j: J<'_>, k: &str, f: impl Fn(J<'_>) -> Result<T>) -> Result<T> {
    let (v, p) = j.key(k)?;
    f(J { v, path: &p })
}

/// Reads optional key `k` of `j` with `f` (`None` when absent or `null`).
pub(crate) fn opt_field<T>(j: J<'_>, k: &str, f: impl Fn(J<'_>) -> Result<T>) -> Result<Option<T>> {
    match j.opt(k)? {
        Some((v, p)) => f(J { v, path: &p }).map(Some),
        None => Ok(None),
    }
}

fn resampling(j: J<'_>, name: &str) -> Result<(String, ResamplingKwargs)> {
    let f = field(j, name, |j| j.string())?;
    let kw_name = format!("{name}_kwargs");
    let (kv, kp) = j.key(&kw_name)?;
    let k = J { v: kv, path: &kp };
    let kwargs = ResamplingKwargs {
        is_seg: opt_field(k, "is_seg", |j| j.bool())?.unwrap_or(false),
        order: opt_field(k, "order", |j| j.usize())?.unwrap_or(3),
        order_z: opt_field(k, "order_z", |j| j.usize())?.unwrap_or(0),
        force_separate_z: opt_field(k, "force_separate_z", |j| j.bool())?,
        separate_z_anisotropy_threshold: opt_field(k, "separate_z_anisotropy_threshold", |j| {
            j.f64()
        })?
        .unwrap_or(3.0),
    };
    Ok((f, kwargs))
}

impl V2Plans {
    /// Reads `plans.json`. Errors name the file and the key.
    pub fn load(path: impl AsRef<Path>) -> Result<V2Plans> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        V2Plans::from_json_slice(&data).map_err(|e| e.in_file(path))
    }

    /// Parses the bytes of a `plans.json`.
    pub fn from_json_slice(data: &[u8]) -> Result<V2Plans> {
        let v: Json = serde_json::from_slice(data)?;
        V2Plans::from_json(&v)
    }

    /// Reads the typed plans from parsed JSON.
    pub fn from_json(v: &Json) -> Result<V2Plans> {
        let j = J { v, path: "" };
        let configurations = field(j, "configurations", |j| j.obj().cloned())?;
        let mut fg = BTreeMap::new();
        let fg_key = if j
            .opt("foreground_intensity_properties_per_channel")?
            .is_some()
        {
            "foreground_intensity_properties_per_channel"
        } else {
            // Plans written before the rename.
            "foreground_intensity_properties_by_modality"
        };
        if let Some((fv, fp)) = j.opt(fg_key)? {
            for (k, v) in (J { v: fv, path: &fp }).obj()? {
                let p = join(&fp, k);
                let c: usize = k.parse().map_err(|_| Error::BadValue {
                    key: p.clone(),
                    expected: "a channel index as key".into(),
                    found: k.clone(),
                })?;
                let e = J { v, path: &p };
                fg.insert(
                    c,
                    V2IntensityProperties {
                        mean: field(e, "mean", |j| j.f64())?,
                        median: field(e, "median", |j| j.f64())?,
                        std: field(e, "std", |j| j.f64())?,
                        min: field(e, "min", |j| j.f64())?,
                        max: field(e, "max", |j| j.f64())?,
                        percentile_00_5: field(e, "percentile_00_5", |j| j.f64())?,
                        percentile_99_5: field(e, "percentile_99_5", |j| j.f64())?,
                    },
                );
            }
        }
        let plans = V2Plans {
            dataset_name: opt_field(j, "dataset_name", |j| j.string())?.unwrap_or_default(),
            plans_name: opt_field(j, "plans_name", |j| j.string())?.unwrap_or_default(),
            original_median_spacing_after_transp: opt_field(
                j,
                "original_median_spacing_after_transp",
                |j| j.vec_f64(),
            )?
            .unwrap_or_default(),
            image_reader_writer: opt_field(j, "image_reader_writer", |j| j.string())?,
            transpose_forward: field(j, "transpose_forward", |j| j.vec_usize())?,
            transpose_backward: field(j, "transpose_backward", |j| j.vec_usize())?,
            experiment_planner_used: opt_field(j, "experiment_planner_used", |j| j.string())?,
            label_manager: opt_field(j, "label_manager", |j| j.string())?
                .unwrap_or_else(|| "LabelManager".into()),
            foreground_intensity_properties_per_channel: fg,
            configuration_names: configurations.keys().cloned().collect(),
            configurations,
        };
        check_permutation("transpose_forward", &plans.transpose_forward)?;
        check_permutation("transpose_backward", &plans.transpose_backward)?;
        for (a, &f) in plans.transpose_forward.iter().enumerate() {
            if plans.transpose_backward.get(f) != Some(&a) {
                return Err(Error::BadValue {
                    key: "transpose_backward".into(),
                    expected: format!(
                        "the inverse of transpose_forward {:?}",
                        plans.transpose_forward
                    ),
                    found: format!("{:?}", plans.transpose_backward),
                });
            }
        }
        Ok(plans)
    }

    /// The configuration `name` with `inherits_from` resolved as `PlansManager` does (the parent's entries,
    /// overwritten key by key by the child's), typed. Errors name the configuration and the key; an unknown
    /// name lists the available ones.
    pub fn configuration(&self, name: &str) -> Result<V2Configuration> {
        let merged = self.resolve(name, &mut Vec::new())?;
        let merged = Json::Object(merged);
        let path = format!("configurations/{name}");
        let j = J {
            v: &merged,
            path: &path,
        };
        let architecture = match j.opt("architecture")? {
            Some((av, ap)) => {
                let a = J { v: av, path: &ap };
                Architecture {
                    network_class_name: field(a, "network_class_name", |j| j.string())?,
                    arch_kwargs: field(a, "arch_kwargs", |j| j.obj().cloned())?,
                    kw_requires_import: opt_field(a, "_kw_requires_import", |j| {
                        j.map_arr(|j| j.string())
                    })?
                    .unwrap_or_default(),
                }
            }
            None => legacy_architecture(j)?,
        };
        let next_stage = match j.opt("next_stage")? {
            None => Vec::new(),
            Some((Json::String(s), _)) => vec![s.clone()],
            Some((v, p)) => J { v, path: &p }.map_arr(|j| j.string())?,
        };
        let c = V2Configuration {
            name: name.to_owned(),
            data_identifier: opt_field(j, "data_identifier", |j| j.string())?,
            preprocessor_name: opt_field(j, "preprocessor_name", |j| j.string())?
                .unwrap_or_else(|| "DefaultPreprocessor".into()),
            batch_size: opt_field(j, "batch_size", |j| j.usize())?.unwrap_or(1),
            patch_size: field(j, "patch_size", |j| j.vec_usize())?,
            median_image_size_in_voxels: opt_field(j, "median_image_size_in_voxels", |j| {
                j.vec_f64()
            })?
            .unwrap_or_default(),
            spacing: field(j, "spacing", |j| j.vec_f64())?,
            normalization_schemes: field(j, "normalization_schemes", |j| {
                j.map_arr(|j| j.string())
            })?,
            use_mask_for_norm: field(j, "use_mask_for_norm", |j| j.map_arr(|j| j.bool()))?,
            resampling_fn_data: resampling(j, "resampling_fn_data")?,
            resampling_fn_seg: resampling(j, "resampling_fn_seg")?,
            resampling_fn_probabilities: resampling(j, "resampling_fn_probabilities")?,
            architecture,
            batch_dice: opt_field(j, "batch_dice", |j| j.bool())?.unwrap_or(false),
            previous_stage: opt_field(j, "previous_stage", |j| j.string())?,
            next_stage,
        };
        let nd = c.patch_size.len();
        if !(2..=3).contains(&nd) || c.patch_size.contains(&0) {
            return Err(Error::BadValue {
                key: format!("{path}/patch_size"),
                expected: "2 or 3 positive sizes".into(),
                found: format!("{:?}", c.patch_size),
            });
        }
        if c.spacing.len() != nd || c.spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::BadValue {
                key: format!("{path}/spacing"),
                expected: format!("{nd} positive spacings (one per patch axis)"),
                found: format!("{:?}", c.spacing),
            });
        }
        if c.use_mask_for_norm.len() != c.normalization_schemes.len() {
            return Err(Error::BadValue {
                key: format!("{path}/use_mask_for_norm"),
                expected: format!(
                    "one entry per channel ({} normalization_schemes)",
                    c.normalization_schemes.len()
                ),
                found: format!("{:?}", c.use_mask_for_norm),
            });
        }
        Ok(c)
    }

    fn resolve(&self, name: &str, visited: &mut Vec<String>) -> Result<Map<String, Json>> {
        let Some(cfg) = self.configurations.get(name) else {
            return Err(Error::BadValue {
                key: "configurations".into(),
                expected: format!("one of {:?}", self.configuration_names),
                found: format!("`{name}`"),
            });
        };
        let path = format!("configurations/{name}");
        let own = J {
            v: cfg,
            path: &path,
        }
        .obj()?
        .clone();
        match own.get("inherits_from") {
            None | Some(Json::Null) => Ok(own),
            Some(Json::String(parent)) => {
                visited.push(name.to_owned());
                if visited.contains(parent) {
                    return Err(Error::BadValue {
                        key: format!("{path}/inherits_from"),
                        expected: "no circular inheritance".into(),
                        found: format!("{} -> {parent}", visited.join(" -> ")),
                    });
                }
                let mut base = self.resolve(parent, visited)?;
                base.extend(own);
                Ok(base)
            }
            Some(v) => Err(bad(&format!("{path}/inherits_from"), "a string", v)),
        }
    }
}

fn check_permutation(key: &str, p: &[usize]) -> Result<()> {
    let mut seen = p.to_vec();
    seen.sort_unstable();
    if !(2..=3).contains(&p.len()) || seen.iter().enumerate().any(|(i, &a)| i != a) {
        return Err(Error::BadValue {
            key: key.into(),
            expected: "a permutation of 0..3".into(),
            found: format!("{p:?}"),
        });
    }
    Ok(())
}

/// Plans written by nnunetv2 before 2.4 have no `architecture`; `ConfigurationManager` rebuilds it from
/// `UNet_class_name`, `UNet_base_num_features`, `unet_max_num_features`, `n_conv_per_stage_encoder/decoder`,
/// `pool_op_kernel_sizes` and `conv_kernel_sizes`, with InstanceNorm, LeakyReLU and conv bias. Same here.
fn legacy_architecture(j: J<'_>) -> Result<Architecture> {
    let class = field(j, "UNet_class_name", |j| j.string())?;
    let (network_class_name, blocks_key) = match class.as_str() {
        "PlainConvUNet" => (
            "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "n_conv_per_stage",
        ),
        "ResidualEncoderUNet" => (
            "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet",
            "n_blocks_per_stage",
        ),
        _ => {
            return Err(Error::BadValue {
                key: format!("{}/UNet_class_name", j.path),
                expected: "PlainConvUNet or ResidualEncoderUNet".into(),
                found: class,
            })
        }
    };
    let enc = field(j, "n_conv_per_stage_encoder", |j| j.vec_usize())?;
    let n_stages = enc.len();
    let base = field(j, "UNet_base_num_features", |j| j.usize())?;
    let max = field(j, "unet_max_num_features", |j| j.usize())?;
    let dim = field(j, "patch_size", |j| j.vec_usize())?.len();
    let features: Vec<usize> = (0..n_stages)
        .map(|i| base.saturating_mul(1usize << i.min(40)).min(max))
        .collect();
    let mut kw = Map::new();
    kw.insert("n_stages".into(), n_stages.into());
    kw.insert("features_per_stage".into(), features.into());
    kw.insert(
        "conv_op".into(),
        format!("torch.nn.modules.conv.Conv{dim}d").into(),
    );
    kw.insert("kernel_sizes".into(), j.key("conv_kernel_sizes")?.0.clone());
    kw.insert("strides".into(), j.key("pool_op_kernel_sizes")?.0.clone());
    kw.insert(blocks_key.into(), enc.into());
    kw.insert(
        "n_conv_per_stage_decoder".into(),
        j.key("n_conv_per_stage_decoder")?.0.clone(),
    );
    kw.insert("conv_bias".into(), true.into());
    kw.insert(
        "norm_op".into(),
        format!("torch.nn.modules.instancenorm.InstanceNorm{dim}d").into(),
    );
    kw.insert(
        "norm_op_kwargs".into(),
        serde_json::json!({"eps": 1e-5, "affine": true}),
    );
    kw.insert("dropout_op".into(), Json::Null);
    kw.insert("dropout_op_kwargs".into(), Json::Null);
    kw.insert("nonlin".into(), "torch.nn.LeakyReLU".into());
    kw.insert("nonlin_kwargs".into(), serde_json::json!({"inplace": true}));
    Ok(Architecture {
        network_class_name: network_class_name.into(),
        arch_kwargs: kw,
        kw_requires_import: ["conv_op", "norm_op", "dropout_op", "nonlin"]
            .map(String::from)
            .to_vec(),
    })
}

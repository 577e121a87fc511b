//! Typed nnU-Net v1 plans (`plans.pkl`, `nnUNetPlansv2.1_plans_3D.pkl`, or a `.json` copy) and
//! `splits_final.pkl`.
//!
//! The fields are the ones nnU-Net 1.7.1's `ExperimentPlanner3D_v21` writes and `nnUNetTrainer.process_plans`
//! / `GenericPreprocessor` read. Axis order is as stored: nnU-Net keeps spacings and sizes in the transposed
//! (z, y, x) order of the preprocessed data.

use std::path::Path;

use crate::error::{Error, Result};
use crate::pickle::Value;
use crate::typed::{bad_value, from_json, At};

/// Most foreground classes a plans file may declare. nnU-Net v1 exports segmentations as `uint8`, so real
/// plans stay far below; the bound keeps a damaged `num_classes` from sizing the default `all_classes`
/// (`1..=num_classes`) beyond memory.
pub const MAX_CLASSES: usize = u16::MAX as usize;

/// Intensity statistics of one channel over the training foreground
/// (`dataset_properties['intensityproperties'][c]`, from `DatasetAnalyzer.collect_intensity_properties`).
///
/// Values are kept exactly as stored, widened to `f64`. nnU-Net 1.7.1's planner stores numpy `float32`
/// scalars (its statistics come from the float32 cropped data; see `fixtures/artifacts/planner`), other
/// copies may hold `float64` scalars or Python floats. `as f32` recovers a stored `float32` bit for bit;
/// [`IntensityProperties::stored_as_f32`] says which it was, since numpy arithmetic with a float32 statistic
/// stays in float32 (pipeline spec, section 2.5).
#[derive(Clone, Debug, PartialEq)]
pub struct IntensityProperties {
    /// `median`
    pub median: f64,
    /// `mean` (subtracted by CT normalisation).
    pub mean: f64,
    /// `sd` (divides by CT normalisation).
    pub sd: f64,
    /// `mn`
    pub mn: f64,
    /// `mx`
    pub mx: f64,
    /// `percentile_99_5` (upper clip of CT normalisation).
    pub percentile_99_5: f64,
    /// `percentile_00_5` (lower clip of CT normalisation).
    pub percentile_00_5: f64,
    /// `true` when `mean` was a numpy `float32` scalar (then numpy arithmetic with it stays in float32).
    pub stored_as_f32: bool,
}

/// One entry of `plans['plans_per_stage']`.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    /// `batch_size`
    pub batch_size: usize,
    /// `num_pool_per_axis`
    pub num_pool_per_axis: Vec<usize>,
    /// `patch_size` (z, y, x as stored; two entries for 2D plans).
    pub patch_size: Vec<usize>,
    /// `median_patient_size_in_voxels`
    pub median_patient_size_in_voxels: Vec<usize>,
    /// `current_spacing`: the target spacing of this stage (z, y, x as stored).
    pub current_spacing: Vec<f64>,
    /// `original_spacing`: the dataset's median spacing.
    pub original_spacing: Vec<f64>,
    /// `do_dummy_2D_data_aug`
    pub do_dummy_2d_data_aug: bool,
    /// `pool_op_kernel_sizes`: one stride per axis for each pooling.
    pub pool_op_kernel_sizes: Vec<Vec<usize>>,
    /// `conv_kernel_sizes`: one kernel per axis for each resolution (one more than poolings).
    pub conv_kernel_sizes: Vec<Vec<usize>>,
}

/// A parsed nnU-Net v1 plans file.
#[derive(Clone, Debug, PartialEq)]
pub struct Plans {
    /// `num_stages`
    pub num_stages: usize,
    /// `num_modalities` (input channels).
    pub num_modalities: usize,
    /// `modalities[c]`, e.g. `CT`.
    pub modalities: Vec<String>,
    /// `normalization_schemes[c]`: `CT`, `CT2`, `nonCT` or `noNorm`.
    pub normalization_schemes: Vec<String>,
    /// `use_mask_for_norm[c]`
    pub use_mask_for_norm: Vec<bool>,
    /// `dataset_properties['intensityproperties'][c]`; `None` when the planner collected none (no CT channel).
    pub intensity_properties: Option<Vec<IntensityProperties>>,
    /// `num_classes`: foreground classes; the network has `num_classes + 1` outputs.
    pub num_classes: usize,
    /// `all_classes`: the foreground labels.
    pub all_classes: Vec<i64>,
    /// `base_num_features`
    pub base_num_features: usize,
    /// `conv_per_stage` (2 when the file predates the key, as nnU-Net assumes).
    pub conv_per_stage: usize,
    /// `transpose_forward`
    pub transpose_forward: Vec<usize>,
    /// `transpose_backward`
    pub transpose_backward: Vec<usize>,
    /// `data_identifier`, if present.
    pub data_identifier: Option<String>,
    /// `preprocessor_name`, if present.
    pub preprocessor_name: Option<String>,
    /// `plans_per_stage[0..num_stages]`.
    pub stages: Vec<StagePlan>,
}

impl Plans {
    /// Reads `plans.pkl`, or a JSON copy when the name ends in `.json`. Errors name the file and the key.
    pub fn load(path: impl AsRef<Path>) -> Result<Plans> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if is_json {
            Plans::from_json_slice(&data)
        } else {
            Plans::from_pickle_slice(&data)
        };
        parsed.map_err(|e| e.in_file(path))
    }

    /// Parses the bytes of a plans pickle.
    pub fn from_pickle_slice(data: &[u8]) -> Result<Plans> {
        Plans::from_value(&crate::pickle::from_slice(data)?)
    }

    /// Parses a JSON copy of a plans file (int keys as strings, arrays as lists).
    pub fn from_json_slice(data: &[u8]) -> Result<Plans> {
        let j: serde_json::Value = serde_json::from_slice(data)?;
        Plans::from_value(&from_json(&j))
    }

    /// Reads the typed plans from an already decoded value (for example the `plans` entry of a
    /// `model_final_checkpoint.model.pkl`).
    pub fn from_value(v: &Value) -> Result<Plans> {
        let root = At { v, path: "" };
        let get = |k: &str| root.key(k);
        let (v, p) = get("num_stages")?;
        let num_stages = At { v, path: &p }.usize()?;
        if num_stages == 0 {
            return Err(bad_value(&p, "at least one stage", v));
        }
        let (v, p) = get("num_modalities")?;
        let num_modalities = At { v, path: &p }.usize()?;

        let per_channel = |key: &str| -> Result<Vec<(Value, String)>> {
            let (v, p) = get(key)?;
            let d = At { v, path: &p };
            (0..num_modalities as i64)
                .map(|c| d.index_key(c).map(|(v, p)| (v.clone(), p)))
                .collect()
        };
        let modalities = per_channel("modalities")?
            .iter()
            .map(|(v, p)| At { v, path: p }.string())
            .collect::<Result<_>>()?;
        let normalization_schemes = per_channel("normalization_schemes")?
            .iter()
            .map(|(v, p)| At { v, path: p }.string())
            .collect::<Result<_>>()?;
        let use_mask_for_norm = per_channel("use_mask_for_norm")?
            .iter()
            .map(|(v, p)| At { v, path: p }.bool())
            .collect::<Result<_>>()?;

        let (dp, dpp) = get("dataset_properties")?;
        let dp = At { v: dp, path: &dpp };
        let intensity_properties = match dp.opt_key("intensityproperties")? {
            None | Some((Value::None, _)) => None,
            Some((v, p)) => {
                let ip = At { v, path: &p };
                let mut out = Vec::new();
                for c in 0..num_modalities as i64 {
                    let (v, p) = ip.index_key(c)?;
                    out.push(intensity(At { v, path: &p })?);
                }
                Some(out)
            }
        };

        let (v, p) = get("num_classes")?;
        let num_classes = At { v, path: &p }.usize()?;
        if num_classes > MAX_CLASSES {
            return Err(bad_value(&p, "at most 65535 classes", v));
        }
        let all_classes = match root.opt_key("all_classes")? {
            Some((v, p)) => At { v, path: &p }.seq_i64()?,
            None => (1..=num_classes as i64).collect(),
        };
        let (v, p) = get("base_num_features")?;
        let base_num_features = At { v, path: &p }.usize()?;
        let conv_per_stage = match root.opt_key("conv_per_stage")? {
            Some((v, p)) => At { v, path: &p }.usize()?,
            None => 2,
        };
        let (v, p) = get("transpose_forward")?;
        let transpose_forward = At { v, path: &p }.seq_usize()?;
        let (v, p) = get("transpose_backward")?;
        let transpose_backward = At { v, path: &p }.seq_usize()?;
        check_permutation(&transpose_forward, "transpose_forward")?;
        check_permutation(&transpose_backward, "transpose_backward")?;
        let opt_string = |k: &str| -> Result<Option<String>> {
            match root.opt_key(k)? {
                None | Some((Value::None, _)) => Ok(None),
                Some((v, p)) => At { v, path: &p }.string().map(Some),
            }
        };
        let data_identifier = opt_string("data_identifier")?;
        let preprocessor_name = opt_string("preprocessor_name")?;

        let (v, p) = get("plans_per_stage")?;
        let pps = At { v, path: &p };
        let stages = (0..num_stages as i64)
            .map(|s| {
                let (v, p) = pps.index_key(s)?;
                stage(At { v, path: &p })
            })
            .collect::<Result<Vec<_>>>()?;

        Ok(Plans {
            num_stages,
            num_modalities,
            modalities,
            normalization_schemes,
            use_mask_for_norm,
            intensity_properties,
            num_classes,
            all_classes,
            base_num_features,
            conv_per_stage,
            transpose_forward,
            transpose_backward,
            data_identifier,
            preprocessor_name,
            stages,
        })
    }

    /// The stage 3d_fullres uses: the last one (`nnUNetTrainer` picks `plans_per_stage[num_stages - 1]` for
    /// 3d_fullres and stage 0 for 3d_lowres when there are two).
    pub fn fullres_stage(&self) -> &StagePlan {
        // `from_value` guarantees at least one stage.
        &self.stages[self.stages.len() - 1]
    }

    /// Output channels of the network: background plus the foreground classes.
    pub fn num_output_channels(&self) -> usize {
        self.num_classes + 1
    }
}

fn check_permutation(p: &[usize], key: &str) -> Result<()> {
    let mut seen = vec![false; p.len()];
    for &i in p {
        if i >= p.len() || seen[i] {
            return Err(Error::BadValue {
                key: key.to_owned(),
                expected: "a permutation of the axes".into(),
                found: format!("{p:?}"),
            });
        }
        seen[i] = true;
    }
    Ok(())
}

fn intensity(at: At<'_>) -> Result<IntensityProperties> {
    let num = |k: &str| -> Result<f64> {
        let (v, p) = at.key(k)?;
        At { v, path: &p }.f64()
    };
    let (mean_v, _) = at.key("mean")?;
    let stored_as_f32 = matches!(mean_v, Value::Scalar(a) if a.dtype.kind == crate::numpy::DtypeKind::Float && a.dtype.itemsize == 4);
    Ok(IntensityProperties {
        median: num("median")?,
        mean: num("mean")?,
        sd: num("sd")?,
        mn: num("mn")?,
        mx: num("mx")?,
        percentile_99_5: num("percentile_99_5")?,
        percentile_00_5: num("percentile_00_5")?,
        stored_as_f32,
    })
}

fn stage(at: At<'_>) -> Result<StagePlan> {
    let field = |k: &str| at.key(k);
    let (v, p) = field("batch_size")?;
    let batch_size = At { v, path: &p }.usize()?;
    let (v, p) = field("num_pool_per_axis")?;
    let num_pool_per_axis = At { v, path: &p }.seq_usize()?;
    let (v, p) = field("patch_size")?;
    let patch_size = At { v, path: &p }.seq_usize()?;
    let (v, p) = field("median_patient_size_in_voxels")?;
    let median_patient_size_in_voxels = At { v, path: &p }.seq_usize()?;
    let (v, p) = field("current_spacing")?;
    let current_spacing = At { v, path: &p }.seq_f64()?;
    let (v, p) = field("original_spacing")?;
    let original_spacing = At { v, path: &p }.seq_f64()?;
    let do_dummy_2d_data_aug = match at.opt_key("do_dummy_2D_data_aug")? {
        Some((v, p)) => At { v, path: &p }.bool()?,
        None => false,
    };
    let (v, p) = field("pool_op_kernel_sizes")?;
    let pool_op_kernel_sizes = At { v, path: &p }.seq_seq_usize()?;
    let (v, p) = field("conv_kernel_sizes")?;
    let conv_kernel_sizes = At { v, path: &p }.seq_seq_usize()?;
    if patch_size.is_empty() {
        let (v, p) = field("patch_size")?;
        return Err(bad_value(&p, "a non-empty patch size", v));
    }
    Ok(StagePlan {
        batch_size,
        num_pool_per_axis,
        patch_size,
        median_patient_size_in_voxels,
        current_spacing,
        original_spacing,
        do_dummy_2d_data_aug,
        pool_op_kernel_sizes,
        conv_kernel_sizes,
    })
}

/// One fold of `splits_final.pkl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Training case ids.
    pub train: Vec<String>,
    /// Validation case ids.
    pub val: Vec<String>,
}

/// The cross-validation folds of `splits_final.pkl` (a list of `{'train': array, 'val': array}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splits {
    /// One entry per fold, in file order.
    pub folds: Vec<Fold>,
}

impl Splits {
    /// Reads `splits_final.pkl` (or a JSON copy when the name ends in `.json`).
    pub fn load(path: impl AsRef<Path>) -> Result<Splits> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let v = if is_json {
            serde_json::from_slice::<serde_json::Value>(&data)
                .map(|j| from_json(&j))
                .map_err(Error::from)
        } else {
            crate::pickle::from_slice(&data)
        };
        v.and_then(|v| Splits::from_value(&v))
            .map_err(|e| e.in_file(path))
    }

    /// Reads the folds from a decoded value.
    pub fn from_value(v: &Value) -> Result<Splits> {
        let items = v
            .as_seq()
            .ok_or_else(|| bad_value("", "a list of folds", v))?;
        let folds = items
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let path = i.to_string();
                let at = At { v: f, path: &path };
                let (t, tp) = at.key("train")?;
                let (va, vp) = at.key("val")?;
                Ok(Fold {
                    train: At { v: t, path: &tp }.seq_string()?,
                    val: At { v: va, path: &vp }.seq_string()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Splits { folds })
    }
}

//! nnunetv2 models in the pipeline: preprocessing parameters from `plans.json`, and reading a case as
//! nnunetv2's `SimpleITKIO` does (no reorientation; spacing reversed to numpy order).

use std::path::Path;

use ndarray::{Array3, Array4};
use nnu_artifacts::v2::{V2Configuration, V2Plans};
use nnu_preprocessing::v2::{
    preprocess_case_v2, V2CaseProperties, V2Normalization, V2PreprocessParams, V2Resampling,
};
use nnu_volume::Geometry;

use crate::PipelineError;

/// The preprocessing of configuration `cfg` of `plans` (`DefaultPreprocessor` with the configuration's
/// schemes, the plans' foreground intensity properties and `resampling_fn_data`). `plans_path` names the
/// file in errors.
pub fn v2_params(
    plans: &V2Plans,
    cfg: &V2Configuration,
    plans_path: &Path,
) -> Result<V2PreprocessParams, PipelineError> {
    let bad = |msg: String| PipelineError::Input {
        path: plans_path.to_path_buf(),
        msg,
    };
    let transpose_forward: [usize; 3] =
        plans.transpose_forward.as_slice().try_into().map_err(|_| {
            bad(format!(
                "transpose_forward {:?} is not a permutation of 3 axes",
                plans.transpose_forward
            ))
        })?;
    let mut normalization = Vec::with_capacity(cfg.normalization_schemes.len());
    for (c, scheme) in cfg.normalization_schemes.iter().enumerate() {
        let ct = plans
            .foreground_intensity_properties_per_channel
            .get(&c)
            .map(|p| (p.mean, p.std, p.percentile_00_5, p.percentile_99_5));
        let use_mask = cfg.use_mask_for_norm.get(c).copied().unwrap_or(false);
        normalization.push(
            V2Normalization::from_scheme(scheme, use_mask, ct, c)
                .map_err(|e| bad(format!("configuration {}: {e}", cfg.name)))?,
        );
    }
    let (function, kw) = &cfg.resampling_fn_data;
    let resampling = V2Resampling::from_plans(
        function,
        kw.order,
        kw.order_z,
        kw.force_separate_z,
        kw.separate_z_anisotropy_threshold,
    )
    .map_err(|e| {
        bad(format!(
            "configuration {}: resampling_fn_data: {e}",
            cfg.name
        ))
    })?;
    Ok(V2PreprocessParams {
        transpose_forward,
        spacing: cfg.spacing.clone(),
        normalization,
        resampling,
    })
}

/// Reads the channel files of one case (`CASE_0000.nii.gz`, ...) and preprocesses them as nnunetv2 does.
/// Returns the preprocessed (c, z, y, x) array (transposed frame), its properties and the first channel's
/// geometry (which the segmentation is written with).
pub fn v2_preprocess_files(
    files: &[impl AsRef<Path>],
    params: &V2PreprocessParams,
) -> Result<(Array4<f32>, V2CaseProperties, Geometry), PipelineError> {
    let mut channels: Vec<Array3<f32>> = Vec::with_capacity(files.len());
    let mut geometry: Option<Geometry> = None;
    for f in files {
        let v = nnu_volume::read_volume(f.as_ref())?;
        if geometry.is_none() {
            geometry = Some(v.geometry);
        }
        channels.push(v.data);
    }
    let geometry = geometry.ok_or_else(|| PipelineError::Shape("no channel files given".into()))?;
    let s = geometry.spacing;
    let (data, props) = preprocess_case_v2(channels, [s[2], s[1], s[0]], params)?;
    Ok((data, props, geometry))
}

//! Cascades (`3d_cascade_fullres`): the previous stage's segmentation of a case as an extra input of the
//! full-resolution stage, in nnU-Net v1 and nnunetv2.
//!
//! Where the segmentation comes from ([`PrevSource`], resolved from the tools' flags by [`v1_prev_source`]
//! and [`v2_prev_source`] with [`CascadeOptions`]): a folder of `CASE.nii.gz` files written by an
//! earlier run of the previous stage (nnU-Net v1's `--lowres_segmentations`, nnunetv2's
//! `-prev_stage_predictions`), or the previous stage predicted in memory just before, from its own model
//! folder (what nnU-Net v1's `predict_simple` does when no folder is given; nnunetv2 has no such form). How
//! it becomes input channels is each version's own: [`nnu_preprocessing::append_prev_stage_v1`] (v1:
//! resized whole to the preprocessed shape, no crop) and [`nnu_preprocessing::v2::preprocess_case_v2_cascade`]
//! (v2: cropped and resampled with the images).

use std::path::{Path, PathBuf};

use ndarray::Array3;
use nnu_tiling::MirrorSet;
use nnu_volume::{stage_volume, Geometry, WriteOptions};

use crate::cases::Case;
use crate::model::ModelSpec;
use crate::predict::V1PrevSource;
#[cfg(feature = "export")]
use crate::predict::V1Stage;
#[cfg(feature = "export")]
use crate::run::CpuBackendOptions;
use crate::stages::{saturating_bytes, PredictOptions};
#[cfg(feature = "export")]
use crate::v2::V2Stage;
use crate::v2::{V2Model, V2PrevSource};
use crate::PipelineError;

/// The folder, inside the output folder, where the one-command form keeps the previous stage's
/// segmentations when asked (nnU-Net v1's `predict_simple` writes them to `OUT/3d_lowres_predictions`).
pub const LOWRES_PREDICTIONS: &str = "3d_lowres_predictions";

/// `dir/NAME` + `file_ending` of `case`: its previous stage's segmentation in a folder. Missing is an
/// error naming that file and the previous stage.
pub fn prev_stage_file(
    dir: &Path,
    case: &Case,
    file_ending: &str,
    stage: &str,
) -> Result<PathBuf, PipelineError> {
    let path = dir.join(format!("{}{file_ending}", case.name));
    if !path.is_file() {
        return Err(PipelineError::Input {
            path,
            msg: format!(
                "missing: the previous stage's ({stage}) segmentation of case '{}' (the folder of \
                 --prev-stage holds one {}{file_ending} per case)",
                case.name, case.name
            ),
        });
    }
    Ok(path)
}

/// Reads a previous stage's segmentation (label values as f32, numpy order) and checks that it has the
/// shape `image_shape` (z, y, x) of the case's first image `image`; a mismatch names both files.
pub fn read_prev_stage(
    path: &Path,
    image: &Path,
    image_shape: [usize; 3],
) -> Result<Array3<f32>, PipelineError> {
    let vol = nnu_volume::read_volume(path)?;
    if vol.shape_zyx() != image_shape {
        return Err(PipelineError::Input {
            path: path.to_path_buf(),
            msg: format!(
                "shape {:?} (z, y, x) differs from the shape {:?} of the image {}: not the previous \
                 stage's segmentation of this case",
                vol.shape_zyx(),
                image_shape,
                image.display()
            ),
        });
    }
    Ok(vol.data)
}

/// Writes a previous stage's segmentation predicted in memory to `dir/NAME.nii.gz` (atomically, in the
/// image's geometry), as the one-command form keeps it when asked.
pub fn keep_prev_stage(
    dir: &Path,
    name: &str,
    seg: &Array3<u8>,
    geometry: &Geometry,
    compression_level: u32,
) -> Result<(), PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    let mut batch = nnu_fsio::Batch::new();
    stage_volume(
        &mut batch,
        &dir.join(format!("{name}.nii.gz")),
        seg.view(),
        geometry,
        &WriteOptions::default().compression_level(compression_level),
    )?;
    batch.commit()?;
    Ok(())
}

/// Where a cascade stage gets the previous stage's segmentation of each case, for either version (`S`
/// is [`V1Stage`] or [`V2Stage`]; [`crate::predict::V1PrevSource`] and [`crate::v2::V2PrevSource`] name
/// the two).
pub enum PrevSource<S> {
    /// A folder of `CASE` + file ending files (nnU-Net v1's `--lowres_segmentations`, nnunetv2's
    /// `-prev_stage_predictions`).
    Folder(PathBuf),
    /// The previous stage predicted in memory before each case (its own preprocessing, folds, mirrors
    /// and export, as the previous stage's own run would write it; v1 also its `postprocessing.json`
    /// unless `opts.postprocess` is off), kept in `keep` (a folder) when given.
    Predict {
        /// The previous stage's model and networks.
        stage: Box<S>,
        /// Where its segmentations are also written, if anywhere.
        keep: Option<PathBuf>,
    },
}

/// How the previous stage of a cascade is given (`nnu-predict`'s `--prev-stage`, `--lowres-model` and
/// `--keep-lowres`, and what the previous stage is loaded with).
#[derive(Debug, Clone, Default)]
pub struct CascadeOptions {
    /// A folder of the previous stage's segmentations (`--prev-stage`).
    pub prev_stage: Option<PathBuf>,
    /// The previous stage's model folder, predicted first in memory (`--lowres-model`). Without it and
    /// `prev_stage`, the standard folder beside the model when it exists.
    pub lowres_model: Option<PathBuf>,
    /// Also write the previous stage's segmentations predicted in memory to `OUT/`
    /// [`LOWRES_PREDICTIONS`] (`--keep-lowres`; refused together with `prev_stage`).
    pub keep_lowres: bool,
    /// Folds of the previous stage's model (as for the cascade stage's own; empty: every fold).
    pub folds: Vec<usize>,
    /// nnunetv2: the checkpoint file of each fold (`checkpoint_final.pth` or `checkpoint_best.pth`).
    pub checkpoint: String,
    /// nnunetv2: the mirrors the previous stage runs when the user chose them (`--disable-tta`,
    /// `--mirror-axes`); `None`: the previous stage's own default (what its trainer allows).
    pub mirrors: Option<MirrorSet>,
}

/// Where the previous stage comes from, before anything is loaded.
#[cfg(feature = "export")]
enum Resolved {
    Folder(PathBuf),
    Model(PathBuf),
}

/// The one resolution of both versions: `None` when the model is not a cascade stage (`not_cascade`,
/// the message refusing the flags); else `--prev-stage` (checked to be a folder), else the previous
/// stage's model folder (`--lowres-model`, else `standard` when it exists; `needs(standard)` is the
/// message naming both flags when neither is there).
#[cfg(feature = "export")]
fn resolve(
    opts: &CascadeOptions,
    model_dir: &Path,
    cascade: Result<Option<PathBuf>, String>,
    needs: impl FnOnce(Option<PathBuf>) -> String,
) -> Result<Option<Resolved>, PipelineError> {
    let refuse = |msg: String| PipelineError::Input {
        path: model_dir.to_path_buf(),
        msg,
    };
    let standard = match cascade {
        Err(not_cascade) if opts.prev_stage.is_some() || opts.lowres_model.is_some() => {
            return Err(refuse(not_cascade))
        }
        Err(_) => return Ok(None),
        Ok(standard) => standard,
    };
    if let Some(dir) = &opts.prev_stage {
        if opts.keep_lowres {
            return Err(refuse(
                "--keep-lowres keeps a previous stage predicted in memory; with --prev-stage it is \
                 read from that folder: give one of the two"
                    .into(),
            ));
        }
        if !dir.is_dir() {
            return Err(PipelineError::Input {
                path: dir.clone(),
                msg: "--prev-stage: not a folder".into(),
            });
        }
        return Ok(Some(Resolved::Folder(dir.clone())));
    }
    match (&opts.lowres_model, standard) {
        (Some(d), _) => Ok(Some(Resolved::Model(d.clone()))),
        (None, Some(d)) if d.is_dir() => Ok(Some(Resolved::Model(d))),
        (None, other) => Err(refuse(needs(other))),
    }
}

/// [`resolve`], then the previous stage's model loaded by `load` and kept in `OUT/`
/// [`LOWRES_PREDICTIONS`] when asked.
#[cfg(feature = "export")]
fn prev_source<S>(
    opts: &CascadeOptions,
    out_dir: &Path,
    resolved: Option<Resolved>,
    load: impl FnOnce(PathBuf) -> Result<S, PipelineError>,
) -> Result<Option<PrevSource<S>>, PipelineError> {
    Ok(match resolved {
        None => None,
        Some(Resolved::Folder(dir)) => Some(PrevSource::Folder(dir)),
        Some(Resolved::Model(dir)) => Some(PrevSource::Predict {
            stage: Box::new(load(dir)?),
            keep: opts.keep_lowres.then(|| out_dir.join(LOWRES_PREDICTIONS)),
        }),
    })
}

/// The previous stage of an nnU-Net v1 cascade trainer's model: `opts.prev_stage`, else the 3d_lowres
/// model folder (`opts.lowres_model`, else where `predict_simple.py` looks:
/// [`crate::model::v1_lowres_folder`]) loaded with `backend` to be predicted in memory. `None` for other
/// models (where `prev_stage` and `lowres_model` are refused). (Cargo feature `tract` or `native`.)
#[cfg(feature = "export")]
pub fn v1_prev_source(
    model: &ModelSpec,
    opts: &CascadeOptions,
    out_dir: &Path,
    backend: &CpuBackendOptions,
) -> Result<Option<V1PrevSource>, PipelineError> {
    let cascade = match model.cascade_classes {
        None => Err(
            "not a cascade trainer's model folder: --prev-stage and --lowres-model are for \
                      3d_cascade_fullres models"
                .to_string(),
        ),
        Some(_) => Ok(crate::model::v1_lowres_folder(model)),
    };
    let resolved = resolve(opts, &model.folder.dir, cascade, |standard| {
        format!(
            "a cascade trainer's model (3d_cascade_fullres): it needs the 3d_lowres segmentation \
             of each case: --prev-stage DIR (a folder of CASE.nii.gz), or --lowres-model DIR (the \
             3d_lowres model folder{}, predicted first)",
            standard.map_or(String::new(), |d| format!(", not found at {}", d.display()))
        )
    })?;
    prev_source(opts, out_dir, resolved, |dir| {
        let lowres = ModelSpec::open(&dir)?;
        if lowres.cascade_classes.is_some() {
            return Err(PipelineError::Input {
                path: dir,
                msg: "--lowres-model: a cascade stage itself, not the 3d_lowres model".into(),
            });
        }
        let backends = crate::run::load_cpu_backends(&lowres, &opts.folds, None, backend)?;
        Ok(V1Stage {
            model: lowres,
            backends,
        })
    })
}

/// The previous stage of an nnunetv2 cascade stage: `opts.prev_stage`, else the previous
/// configuration's model folder (`opts.lowres_model`, else `TRAINER__PLANS__PREVIOUS` beside the model:
/// [`crate::v2::sibling_configuration_folder`]) loaded with `backend` to be predicted in memory. `None`
/// for other configurations (where `prev_stage` and `lowres_model` are refused). (Cargo feature `tract`
/// or `native`.)
#[cfg(feature = "export")]
pub fn v2_prev_source(
    model: &V2Model,
    opts: &CascadeOptions,
    out_dir: &Path,
    backend: &CpuBackendOptions,
) -> Result<Option<V2PrevSource>, PipelineError> {
    let model_dir = &model.folder.dir;
    let cascade = match &model.cascade {
        None => Err(format!(
            "configuration {} is not a cascade stage: --prev-stage and --lowres-model are for \
             3d_cascade_fullres",
            model.configuration
        )),
        Some(c) => Ok(crate::v2::sibling_configuration_folder(
            model_dir,
            &c.previous_stage,
        )),
    };
    let previous = model
        .cascade
        .as_ref()
        .map_or("", |c| c.previous_stage.as_str());
    let resolved = resolve(opts, model_dir, cascade, |_| {
        format!(
            "configuration {} is a cascade stage: it needs the {previous} segmentation of each case: \
             --prev-stage DIR (a folder of CASE.nii.gz), or --lowres-model DIR (the {previous} model \
             folder, predicted first)",
            model.configuration
        )
    })?;
    prev_source(opts, out_dir, resolved, |dir| {
        let lowres = V2Model::open(&dir, Some(previous), &opts.checkpoint)?;
        let loaded = crate::v2::load_v2_backends(&lowres, &opts.folds, backend)?;
        let mirrors = match opts.mirrors {
            Some(m) => m,
            None => loaded.default_mirrors()?,
        };
        Ok(V2Stage {
            model: lowres,
            backends: loaded.backends,
            mirrors,
        })
    })
}

/// A one-line description of a previous-stage source, for the line a tool prints before the cases
/// (empty for `None`): `; previous stage from DIR` or `; previous stage ... predicted first with DIR`.
pub fn describe_v1(prev: Option<&V1PrevSource>) -> String {
    match prev {
        Some(PrevSource::Folder(d)) => format!("; previous stage from {}", d.display()),
        Some(PrevSource::Predict { stage, .. }) => format!(
            "; previous stage predicted first with {}",
            stage.model.folder.dir.display()
        ),
        None => String::new(),
    }
}

/// [`describe_v1`] for an nnunetv2 source, naming the previous configuration.
pub fn describe_v2(prev: Option<&V2PrevSource>) -> String {
    match prev {
        Some(PrevSource::Folder(d)) => format!("; previous stage from {}", d.display()),
        Some(PrevSource::Predict { stage, .. }) => format!(
            "; previous stage {} predicted first with {}",
            stage.model.configuration,
            stage.model.folder.dir.display()
        ),
        None => String::new(),
    }
}

/// The options the previous stage predicted in memory is estimated with: no preview, no probabilities
/// (it writes neither).
fn previous_stage_options(opts: &PredictOptions) -> PredictOptions {
    PredictOptions {
        preview: false,
        save_probabilities: false,
        ..opts.clone()
    }
}

/// [`crate::stages::estimate_peak_memory`] of an nnU-Net v1 case, for a cascade stage with its extra
/// input and with the previous stage when `prev` predicts it in memory:
/// - a cascade stage's sliding window holds its images with one extra channel per foreground class, and
///   stacking them ([`nnu_preprocessing::append_prev_stage_v1`]) holds the images, the stacked copy, the
///   resized segmentation and the segmentation as read at once;
/// - the previous stage predicted in memory runs inside the case, after the cascade stage's own
///   preprocessing and before its sliding window, so its whole peak comes on top of what is held then:
///   the cascade stage's preprocessed images and the preview's copy of the image.
///
/// The peak is the largest of these and the stage's own phases.
pub fn estimate_peak_memory_v1(
    case: &Case,
    model: &ModelSpec,
    prev: Option<&V1PrevSource>,
    opts: &PredictOptions,
) -> Result<u64, PipelineError> {
    let mut own = crate::stages::estimate_peak_memory(case, model, opts)?;
    let Some(classes) = &model.cascade_classes else {
        return Ok(own);
    };
    let (n0, n1) = crate::stages::header_voxels(case, model)?;
    let (m, k) = (model.num_modalities as u64, classes.len() as u64);
    let c = model.num_classes as u64;
    let preview = if opts.preview { n0 } else { 0 };
    let stack = saturating_bytes(&[
        (4 * m, n1),
        (4 * (m + k), n1),
        (4, n1),
        (4, n0),
        (4, preview),
    ]);
    let window = saturating_bytes(&[(4 * (m + k), n1), (4 * (c + 1), n1), (4, preview)]);
    own = own.max(stack).max(window);
    let Some(PrevSource::Predict { stage, .. }) = prev else {
        return Ok(own);
    };
    let held = saturating_bytes(&[(4 * m, n1), (4, preview)]);
    let previous =
        crate::stages::estimate_peak_memory(case, &stage.model, &previous_stage_options(opts))?;
    Ok(own.max(held.saturating_add(previous)))
}

/// [`crate::v2::estimate_peak_memory_v2`] of a case, with the previous stage when `prev` predicts it in
/// memory. That stage runs inside the case on a copy of the images as read, so its whole peak comes on
/// top of the channels as read and the preview's copy of the image; the peak is the larger of that sum
/// and the cascade stage's own peak.
pub fn estimate_peak_memory_v2(
    case: &Case,
    model: &V2Model,
    prev: Option<&V2PrevSource>,
    opts: &PredictOptions,
) -> Result<u64, PipelineError> {
    let own = crate::v2::estimate_peak_memory_v2(case, model, opts)?;
    let Some(PrevSource::Predict { stage, .. }) = prev else {
        return Ok(own);
    };
    let (shape_zyx, _) = crate::cases::case_header(case)?;
    let n0 = shape_zyx
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let preview = if opts.preview { n0 } else { 0 };
    let held = saturating_bytes(&[(4 * model.num_channels as u64, n0), (4, preview)]);
    let previous =
        crate::v2::estimate_peak_memory_v2(case, &stage.model, &previous_stage_options(opts))?;
    Ok(own.max(held.saturating_add(previous)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::V1Stage;
    use crate::v2::V2Stage;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cascade")
    }

    fn v1_models() -> (ModelSpec, ModelSpec) {
        let m = fixtures().join("v1/models");
        let open = |p: &str| ModelSpec::open(&m.join(p)).unwrap_or_else(|e| panic!("{e}"));
        (
            open(
                "3d_cascade_fullres/Task905_Cascade/nnUNetTrainerV2CascadeFullRes__nnUNetPlansv2.1",
            ),
            open("3d_lowres/Task905_Cascade/nnUNetTrainerV2__nnUNetPlansv2.1"),
        )
    }

    /// A case whose header is an image finer than both stages' spacings (0.4 x 0.4 x 0.6 mm, 48 x 96 x
    /// 96 voxels): the previous stage's peak in the image's frame is larger than the cascade stage's
    /// own, as for a CT of real size. The estimates read only the header.
    fn fine_case(dir: &Path, name: &str) -> Case {
        let file = dir.join(format!("{name}_0000.nii"));
        let geometry = Geometry {
            spacing: [0.4, 0.4, 0.6],
            ..Geometry::default()
        };
        let data = Array3::<i16>::zeros((48, 96, 96));
        nnu_volume::write_volume(&file, data.view(), &geometry, &WriteOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        Case::nifti(name, vec![file])
    }

    #[test]
    fn the_v1_estimate_counts_the_previous_stage_predicted_in_memory() {
        let (model, lowres) = v1_models();
        // The sliding window of the fixture's small case (the patch is larger than the image) holds
        // the cascade stage's extra input channels: more than the plain estimate counts.
        let small = Case::nifti(
            "cascv1_a",
            vec![fixtures().join("v1/cases/cascv1_a_0000.nii.gz")],
        );
        let opts = PredictOptions::default();
        assert!(
            estimate_peak_memory_v1(&small, &model, None, &opts).unwrap()
                > crate::stages::estimate_peak_memory(&small, &model, &opts).unwrap()
        );
        let tmp = tempfile::tempdir().unwrap();
        let case = fine_case(tmp.path(), "cascv1_a");
        for preview in [false, true] {
            let opts = PredictOptions {
                preview,
                ..PredictOptions::default()
            };
            let from_folder = PrevSource::Folder(PathBuf::from("prev"));
            let own = estimate_peak_memory_v1(&case, &model, Some(&from_folder), &opts).unwrap();
            assert_eq!(
                estimate_peak_memory_v1(&case, &model, None, &opts).unwrap(),
                own
            );
            assert!(own >= crate::stages::estimate_peak_memory(&case, &model, &opts).unwrap());

            // The fixture's 3d_lowres model, and the same with a larger patch: a previous stage whose
            // sliding window needs more than the cascade stage's own peak less what it holds then.
            let mut wide = lowres.clone();
            wide.patch = [64, 160, 160];
            for (previous_model, raises) in [(&lowres, false), (&wide, true)] {
                let previous = crate::stages::estimate_peak_memory(
                    &case,
                    previous_model,
                    &previous_stage_options(&opts),
                )
                .unwrap();
                let in_memory = PrevSource::Predict {
                    stage: Box::new(V1Stage {
                        model: previous_model.clone(),
                        backends: Vec::new(),
                    }),
                    keep: None,
                };
                let with = estimate_peak_memory_v1(&case, &model, Some(&in_memory), &opts).unwrap();
                // Held while the previous stage runs: the preprocessed image channel and the preview.
                let (n0, n1) = crate::stages::header_voxels(&case, &model).unwrap();
                let held = 4 * n1 + if preview { 4 * n0 } else { 0 };
                assert_eq!(with, own.max(held + previous), "preview {preview}");
                if raises {
                    assert!(with > own, "preview {preview}: {with} <= {own}");
                }
            }
        }
    }

    #[test]
    fn the_v2_estimate_counts_the_previous_stage_predicted_in_memory() {
        let m = fixtures().join("v2/models/Dataset904_Cascade");
        let open = |name: &str, c: &str| {
            V2Model::open(&m.join(name), Some(c), "checkpoint_final.pth")
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let model = open(
            "nnUNetTrainer__nnUNetPlans__3d_cascade_fullres",
            "3d_cascade_fullres",
        );
        let lowres = open("nnUNetTrainer__nnUNetPlans__3d_lowres", "3d_lowres");
        let tmp = tempfile::tempdir().unwrap();
        let case = fine_case(tmp.path(), "casc_a");
        let (shape, _) = crate::cases::case_header(&case).unwrap();
        let n0 = shape.iter().product::<usize>() as u64;
        for preview in [false, true] {
            let opts = PredictOptions {
                preview,
                ..PredictOptions::default()
            };
            let own = crate::v2::estimate_peak_memory_v2(&case, &model, &opts).unwrap();
            let from_folder = PrevSource::Folder(PathBuf::from("prev"));
            assert_eq!(
                estimate_peak_memory_v2(&case, &model, Some(&from_folder), &opts).unwrap(),
                own
            );
            let previous =
                crate::v2::estimate_peak_memory_v2(&case, &lowres, &previous_stage_options(&opts))
                    .unwrap();
            let in_memory = PrevSource::Predict {
                stage: Box::new(V2Stage {
                    model: lowres.clone(),
                    backends: Vec::new(),
                    mirrors: MirrorSet::all(),
                }),
                keep: None,
            };
            let with = estimate_peak_memory_v2(&case, &model, Some(&in_memory), &opts).unwrap();
            // Held while the previous stage runs: the channels as read and the preview.
            let held = 4 * n0 + if preview { 4 * n0 } else { 0 };
            assert_eq!(with, own.max(held + previous), "preview {preview}");
            assert!(with > own, "preview {preview}: {with} <= {own}");
        }
    }

    #[cfg(feature = "export")]
    #[test]
    fn keep_lowres_with_a_prev_stage_folder_is_refused() {
        let (model, _) = v1_models();
        let tmp = std::env::temp_dir();
        let opts = CascadeOptions {
            prev_stage: Some(tmp.clone()),
            keep_lowres: true,
            ..CascadeOptions::default()
        };
        let cpu = CpuBackendOptions::new(crate::run::BackendKind::Native, 1);
        let Err(e) = v1_prev_source(&model, &opts, &tmp, &cpu) else {
            panic!("accepted");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("--keep-lowres") && msg.contains("--prev-stage"),
            "{msg}"
        );
    }
}

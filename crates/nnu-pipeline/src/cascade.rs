//! Cascades (`3d_cascade_fullres`): the previous stage's segmentation of a case as an extra input of the
//! full-resolution stage, in nnU-Net v1 and nnunetv2.
//!
//! Where the segmentation comes from (`crate::v2::V2PrevSource`, `crate::predict::V1PrevSource`): a folder of `CASE.nii.gz` files written by an
//! earlier run of the previous stage (nnU-Net v1's `--lowres_segmentations`, nnunetv2's
//! `-prev_stage_predictions`), or the previous stage predicted in memory just before, from its own model
//! folder (what nnU-Net v1's `predict_simple` does when no folder is given; nnunetv2 has no such form). How
//! it becomes input channels is each version's own: [`nnu_preprocessing::append_prev_stage_v1`] (v1:
//! resized whole to the preprocessed shape, no crop) and [`nnu_preprocessing::v2::preprocess_case_v2_cascade`]
//! (v2: cropped and resampled with the images).

use std::path::{Path, PathBuf};

use ndarray::Array3;
use nnu_volume::{stage_volume, Geometry, WriteOptions};

use crate::cases::Case;
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

//! PNG previews of a predicted case: `nnu-render`'s axial, coronal and sagittal views through the
//! segmented region with the CT window and a legend (see [`nnu_render::render_preview`]).

use std::path::Path;

use ndarray::ArrayView3;
use nnu_volume::Geometry;

pub use nnu_render::{PreviewOptions, Window};

use crate::PipelineError;

fn render(
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    geometry: &Geometry,
    title: &str,
    opts: &PreviewOptions,
) -> Result<nnu_render::RgbImage, PipelineError> {
    let mut opts = opts.clone();
    if opts.title.is_empty() {
        opts.title = title.to_string();
    }
    nnu_render::render_preview(image, labels, geometry, &opts).map_err(|e| match e {
        nnu_render::RenderError::Io { path, source } => PipelineError::io(&path, source),
        other => PipelineError::Shape(other.to_string()),
    })
}

/// Writes the preview of `image` with `labels` (both (z, y, x) in `geometry`) to `path` (PNG, written
/// atomically), titled `title` unless `opts` has a title.
pub fn write_preview(
    path: &Path,
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    geometry: &Geometry,
    title: &str,
    opts: &PreviewOptions,
) -> Result<(), PipelineError> {
    let mut batch = nnu_fsio::Batch::new();
    stage_preview(&mut batch, path, image, labels, geometry, title, opts)?;
    Ok(batch.commit()?)
}

/// Like [`write_preview`], but staged in `batch` (the file appears when the batch is committed).
pub fn stage_preview(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    geometry: &Geometry,
    title: &str,
    opts: &PreviewOptions,
) -> Result<(), PipelineError> {
    let png = render(image, labels, geometry, title, opts)?;
    Ok(batch.stage_with(path, |f| png.write_png(f))?)
}

/// True when `path` looks like a whole PNG: the signature at the start and the `IEND` chunk at the end.
pub fn is_complete_png(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 8];
    let mut tail = [0u8; 12];
    f.read_exact(&mut head).is_ok()
        && head == *b"\x89PNG\r\n\x1a\n"
        && f.seek(SeekFrom::End(-12)).is_ok()
        && f.read_exact(&mut tail).is_ok()
        && tail == *b"\0\0\0\0IEND\xaeB`\x82"
}

//! PNG previews: a montage of axial slices through the labelled region with a coloured overlay.

use std::path::Path;

use ndarray::ArrayView3;

use crate::PipelineError;

/// How a preview is drawn.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// Intensity window (low, high) mapped to black..white; default the abdominal CT window (-160, 240) HU.
    pub window: (f32, f32),
    /// Number of slices in the montage (laid out in rows of `columns`); default 9.
    pub slices: usize,
    /// Montage columns; default 3.
    pub columns: usize,
    /// Overlay opacity in 0..1; default 0.45.
    pub alpha: f32,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions {
            window: (-160.0, 240.0),
            slices: 9,
            columns: 3,
            alpha: 0.45,
        }
    }
}

/// Label colours: 1 red (liver), 2 yellow-green (tumour), then a fixed palette.
const PALETTE: [[u8; 3]; 8] = [
    [230, 60, 50],
    [250, 220, 40],
    [60, 140, 240],
    [60, 200, 90],
    [200, 80, 220],
    [40, 210, 210],
    [250, 140, 40],
    [160, 160, 160],
];

/// Picks `n` axial slice indices spread over the z-extent of the non-zero labels (the whole volume when no
/// label is set).
pub fn pick_slices(labels: ArrayView3<u8>, n: usize) -> Vec<usize> {
    let nz = labels.shape()[0];
    if nz == 0 || n == 0 {
        return Vec::new();
    }
    let occupied: Vec<usize> = (0..nz)
        .filter(|&z| {
            labels
                .index_axis(ndarray::Axis(0), z)
                .iter()
                .any(|&l| l != 0)
        })
        .collect();
    let (lo, hi) = match (occupied.first(), occupied.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => (0, nz - 1),
    };
    let n = n.min(hi - lo + 1);
    (0..n)
        .map(|i| {
            if n == 1 {
                (lo + hi) / 2
            } else {
                lo + ((hi - lo) as f64 * (i as f64 + 0.5) / n as f64) as usize
            }
        })
        .collect()
}

/// Renders the montage as RGB8 rows. `image` and `labels` are (z, y, x); `direction` is the ITK direction
/// (row-major 3x3, LPS), used to show slices in the radiological convention (patient's right on the image's
/// left, anterior at the top) whatever the storage order.
pub fn render_montage(
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    direction: &[f64; 9],
    opts: &PreviewOptions,
) -> Result<(u32, u32, Vec<u8>), PipelineError> {
    if image.shape() != labels.shape() {
        return Err(PipelineError::Shape(format!(
            "preview: image {:?} and labels {:?} differ",
            image.shape(),
            labels.shape()
        )));
    }
    let (_, ny, nx) = image.dim();
    let slices = pick_slices(labels, opts.slices.max(1));
    let cols = opts.columns.max(1).min(slices.len().max(1));
    let rows = slices.len().div_ceil(cols).max(1);
    let (w, h) = (cols * nx, rows * ny);
    let mut rgb = vec![0u8; w * h * 3];
    // Column j of the display shows x index j, unless x runs towards patient right (flip).
    let flip_x = direction[0] < 0.0;
    // Row i shows y index i when y runs towards posterior (LPS +y), so anterior is at the top.
    let flip_y = direction[4] < 0.0;
    let (lo, hi) = opts.window;
    let span = (hi - lo).max(f32::EPSILON);
    for (k, &z) in slices.iter().enumerate() {
        let (r0, c0) = ((k / cols) * ny, (k % cols) * nx);
        for i in 0..ny {
            let y = if flip_y { ny - 1 - i } else { i };
            for j in 0..nx {
                let x = if flip_x { nx - 1 - j } else { j };
                let v = image[[z, y, x]];
                let g = if v.is_finite() {
                    ((v - lo) / span).clamp(0.0, 1.0) * 255.0
                } else {
                    0.0
                };
                let mut px = [g, g, g];
                let l = labels[[z, y, x]];
                if l != 0 {
                    let c = PALETTE[(l as usize - 1) % PALETTE.len()];
                    for ch in 0..3 {
                        px[ch] = (1.0 - opts.alpha) * px[ch] + opts.alpha * c[ch] as f32;
                    }
                }
                let o = ((r0 + i) * w + c0 + j) * 3;
                for ch in 0..3 {
                    rgb[o + ch] = px[ch].round() as u8;
                }
            }
        }
    }
    Ok((w as u32, h as u32, rgb))
}

/// Writes the preview montage of `image` with `labels` to `path` (PNG, written atomically).
pub fn write_preview(
    path: &Path,
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    direction: &[f64; 9],
    opts: &PreviewOptions,
) -> Result<(), PipelineError> {
    let mut batch = nnu_fsio::Batch::new();
    stage_preview(&mut batch, path, image, labels, direction, opts)?;
    Ok(batch.commit()?)
}

/// Like [`write_preview`], but staged in `batch` (the file appears when the batch is committed).
pub fn stage_preview(
    batch: &mut nnu_fsio::Batch,
    path: &Path,
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    direction: &[f64; 9],
    opts: &PreviewOptions,
) -> Result<(), PipelineError> {
    let (w, h, rgb) = render_montage(image, labels, direction, opts)?;
    Ok(batch.stage_with(path, |f| {
        let mut enc = png::Encoder::new(f, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(std::io::Error::other)?;
        wr.write_image_data(&rgb).map_err(std::io::Error::other)?;
        wr.finish().map_err(std::io::Error::other)?;
        Ok(())
    })?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn slices_follow_labels_and_overlay_colours() {
        let mut labels = Array3::<u8>::zeros((20, 4, 5));
        for z in 10..15 {
            labels[[z, 1, 1]] = 1;
        }
        let s = pick_slices(labels.view(), 3);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|&z| (10..15).contains(&z)), "{s:?}");

        let image = Array3::<f32>::from_elem((20, 4, 5), 40.0);
        let ident = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let opts = PreviewOptions {
            slices: 1,
            ..Default::default()
        };
        let (w, h, rgb) = render_montage(image.view(), labels.view(), &ident, &opts).unwrap();
        assert_eq!((w, h), (5, 4));
        // grey 40 HU in window (-160, 240) is exactly half: 127.5 -> 128
        assert_eq!(&rgb[0..3], &[128, 128, 128]);
        let o = (5 + 1) * 3;
        assert!(
            rgb[o] > rgb[o + 2],
            "label 1 is tinted red: {:?}",
            &rgb[o..o + 3]
        );
        // flipped x direction mirrors the columns
        let flipx = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let (_, _, rgb2) = render_montage(image.view(), labels.view(), &flipx, &opts).unwrap();
        let o2 = (5 + 3) * 3;
        assert_eq!(&rgb2[o2..o2 + 3], &rgb[o..o + 3]);
    }
}

//! PNG previews of a CT (or any 3-D image) with a segmentation: axial, coronal and sagittal views through
//! the segmented region, in the radiological convention, with a legend.
//!
//! What [`render_preview`] draws:
//! - three views crossing at one voxel ([`Focus`]; by default the voxel of the rarest label nearest to
//!   that label's centre of mass, so a small tumour is in all three views), each resampled to square
//!   display pixels from the voxel spacing (bilinear for the image, nearest for the labels);
//! - orientation as radiologists read it whatever the storage order: axial and coronal with the patient's
//!   right on the image's left, axial with anterior at the top, coronal and sagittal with superior at the
//!   top, sagittal with anterior on the left; the edges are marked R/L, A/P, S/I, and ticks on the edges
//!   mark where the other two views cut;
//! - the intensity [`Window`] (level/width; CT images get the abdominal soft-tissue window 40/400 HU by
//!   default), one colour per label with a translucent fill and an outline;
//! - captions with each view's position (the LPS world coordinate in mm of the crossing voxel along the
//!   view's normal, and the slice index), and a legend with each label's name and volume in mL.
//!
//! Text uses a built-in 5x7 bitmap font (upper case). [`difference_labels`] turns a prediction and a
//! reference into agree / false positive / false negative / other class labels for a difference view.
//!
//! ```
//! use ndarray::Array3;
//! use nnu_render::{render_preview, PreviewOptions};
//! use nnu_volume::Geometry;
//!
//! let image = Array3::<f32>::from_shape_fn((20, 40, 40), |(_, y, x)| if (y as i32 - 20).pow(2) + (x as i32 - 20).pow(2) < 225 { 50.0 } else { -1000.0 });
//! let mut labels = Array3::<u8>::zeros((20, 40, 40));
//! labels.slice_mut(ndarray::s![8..12, 15..25, 15..25]).fill(1);
//! let geometry = Geometry { spacing: [0.8, 0.8, 2.5], ..Geometry::default() };
//! let opts = PreviewOptions { label_names: vec!["liver".into()], title: "case 1".into(), ..PreviewOptions::default() };
//! let png = render_preview(image.view(), labels.view(), &geometry, &opts)?;
//! assert!(png.width > 3 * 100 && png.height > 100);
//! let mut bytes = Vec::new();
//! png.write_png(&mut bytes).unwrap();
//! # Ok::<(), nnu_render::RenderError>(())
//! ```
//!
//! Not here: reading volumes (see `nnu-volume`), volume rendering or 3-D surfaces, DICOM output.

#![warn(missing_docs)]

mod font;

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{ArrayView3, Axis};
use nnu_volume::Geometry;

/// Errors of rendering and saving a preview.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Image and labels of different shapes, or an empty volume.
    #[error("preview: {0}")]
    Shape(String),
    /// A window that is not `LEVEL,WIDTH` with a positive width.
    #[error("window {0:?}: expected LEVEL,WIDTH with a positive width, e.g. 40,400")]
    Window(String),
    /// Writing the PNG failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS or encoder error.
        source: std::io::Error,
    },
}

/// How intensities map to grey levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// Values in `level - width/2 ..= level + width/2` map to black..white.
    LevelWidth {
        /// Centre of the window (HU for CT).
        level: f32,
        /// Width of the window.
        width: f32,
    },
    /// [`Window::CT_ABDOMEN`] when the image looks like CT (its 0.5th percentile is below -500, i.e. it has
    /// air in HU), otherwise the 0.5th..99.5th percentiles of the image.
    Auto,
}

impl Window {
    /// The abdominal soft-tissue CT window: level 40 HU, width 400 HU.
    pub const CT_ABDOMEN: Window = Window::LevelWidth {
        level: 40.0,
        width: 400.0,
    };

    /// Parses `LEVEL,WIDTH` (e.g. `40,400`) or `auto`.
    pub fn parse(s: &str) -> Result<Window, RenderError> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Window::Auto);
        }
        let bad = || RenderError::Window(s.to_string());
        let (l, w) = s.split_once(',').ok_or_else(bad)?;
        let level: f32 = l.trim().parse().map_err(|_| bad())?;
        let width: f32 = w.trim().parse().map_err(|_| bad())?;
        if !(width > 0.0 && width.is_finite() && level.is_finite()) {
            return Err(bad());
        }
        Ok(Window::LevelWidth { level, width })
    }

    /// The (low, high) intensities this window maps to black and white for `image`.
    pub fn bounds(&self, image: ArrayView3<f32>) -> (f32, f32) {
        match *self {
            Window::LevelWidth { level, width } => (level - width / 2.0, level + width / 2.0),
            Window::Auto => {
                let n = image.len();
                let stride = (n / 1_000_000).max(1);
                let mut sample: Vec<f32> = image
                    .iter()
                    .step_by(stride)
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect();
                if sample.is_empty() {
                    return (0.0, 1.0);
                }
                sample.sort_by(f32::total_cmp);
                let q = |p: f64| sample[((sample.len() - 1) as f64 * p).round() as usize];
                let (lo, hi) = (q(0.005), q(0.995));
                if lo < -500.0 {
                    Window::CT_ABDOMEN.bounds(image)
                } else if hi > lo {
                    (lo, hi)
                } else {
                    (lo, lo + 1.0)
                }
            }
        }
    }
}

/// Where the three views cross.
#[derive(Debug, Clone, PartialEq)]
pub enum Focus {
    /// The voxel of the label with the fewest voxels nearest (in mm) to that label's centre of mass; the
    /// volume's centre when no voxel is labelled.
    RarestLabel,
    /// The voxel of any of these labels nearest to their joint centre of mass; [`Focus::RarestLabel`]
    /// when none of them is present.
    Labels(Vec<u8>),
    /// This voxel, (z, y, x) array indices.
    Voxel([usize; 3]),
}

/// Label colours by default: 1 red, 2 yellow, 3 blue, 4 green, 5 magenta, 6 cyan, 7 orange, 8 grey, then
/// repeating.
pub const PALETTE: [[u8; 3]; 8] = [
    [235, 64, 52],
    [250, 215, 40],
    [64, 140, 245],
    [70, 205, 95],
    [205, 85, 225],
    [40, 210, 210],
    [250, 145, 40],
    [170, 170, 170],
];

/// How a preview is drawn; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// Intensity window; default [`Window::Auto`] (the abdominal CT window for CT).
    pub window: Window,
    /// Names of labels 1, 2, ... for the legend; labels beyond the list are called `label K`. Default empty.
    pub label_names: Vec<String>,
    /// Colours of labels 1, 2, ...; default [`PALETTE`] (repeating).
    pub colours: Vec<[u8; 3]>,
    /// Opacity of the label fill in 0..=1; default 0.3.
    pub fill_alpha: f32,
    /// Draw each label's outline in full colour; default true.
    pub outline: bool,
    /// Longest edge of each view in pixels (the three views share one scale in mm per pixel); default 320.
    pub panel_size: usize,
    /// Text at the top (e.g. the case name); default empty.
    pub title: String,
    /// Where the views cross; default [`Focus::RarestLabel`].
    pub focus: Focus,
    /// Text scale of the 5x7 font (2 = 10x14 pixel letters); default 2.
    pub text_scale: usize,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions {
            window: Window::Auto,
            label_names: Vec::new(),
            colours: PALETTE.to_vec(),
            fill_alpha: 0.3,
            outline: true,
            panel_size: 320,
            title: String::new(),
            focus: Focus::RarestLabel,
            text_scale: 2,
        }
    }
}

impl PreviewOptions {
    fn colour(&self, label: u8) -> [u8; 3] {
        let c = if self.colours.is_empty() {
            &PALETTE[..]
        } else {
            &self.colours[..]
        };
        c[(label as usize - 1) % c.len()]
    }

    fn name(&self, label: u8) -> String {
        self.label_names
            .get(label as usize - 1)
            .cloned()
            .unwrap_or_else(|| format!("label {label}"))
    }
}

/// An 8-bit RGB picture, rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes, row-major RGB.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    fn new(width: usize, height: usize, fill: [u8; 3]) -> RgbImage {
        RgbImage {
            width,
            height,
            pixels: fill.repeat(width * height),
        }
    }

    /// The pixel at column `x`, row `y`.
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let o = (y * self.width + x) * 3;
        [self.pixels[o], self.pixels[o + 1], self.pixels[o + 2]]
    }

    fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let o = (y * self.width + x) * 3;
            self.pixels[o..o + 3].copy_from_slice(&c);
        }
    }

    fn fill_rect(&mut self, x0: usize, y0: usize, w: usize, h: usize, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.put(x, y, c);
            }
        }
    }

    fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, c: [u8; 3]) {
        font::for_each_pixel(text, x, y, scale, |px, py| self.put(px, py, c));
    }

    fn blit(&mut self, src: &RgbImage, x0: usize, y0: usize) {
        for y in 0..src.height {
            for x in 0..src.width {
                self.put(x0 + x, y0 + y, src.get(x, y));
            }
        }
    }

    /// Encodes the picture as an 8-bit RGB PNG into `w`.
    pub fn write_png<W: Write>(&self, w: W) -> std::io::Result<()> {
        let mut enc = png::Encoder::new(w, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(std::io::Error::other)?;
        wr.write_image_data(&self.pixels)
            .map_err(std::io::Error::other)?;
        wr.finish().map_err(std::io::Error::other)
    }

    /// Writes the PNG to `path` atomically and durably through [`nnu_fsio::write_atomic_with`] (a
    /// temporary sibling, `fsync`, rename, folder `fsync`); on error nothing is left behind.
    pub fn save_png(&self, path: &Path) -> Result<(), RenderError> {
        nnu_fsio::write_atomic_with(path, |w| self.write_png(w)).map_err(|e| {
            let (path, source) = e.into_parts();
            RenderError::Io { path, source }
        })
    }
}

const BACKGROUND: [u8; 3] = [20, 20, 24];
const TEXT: [u8; 3] = [235, 235, 235];
const DIM_TEXT: [u8; 3] = [170, 170, 180];
const TICK: [u8; 3] = [80, 220, 255];

/// The image and labels seen along LPS axes: `view[[l, p, s]]` with each index increasing towards patient
/// left, posterior and superior, whatever the storage order and flips.
struct Lps<'a> {
    image: ArrayView3<'a, f32>,
    labels: ArrayView3<'a, u8>,
    /// Spacing along L, P, S in mm.
    spacing: [f64; 3],
    /// For each LPS axis: the array axis (0 = z, 1 = y, 2 = x) and whether it runs the other way.
    axes: [(usize, bool); 3],
}

impl<'a> Lps<'a> {
    fn new(image: ArrayView3<'a, f32>, labels: ArrayView3<'a, u8>, g: &Geometry) -> Lps<'a> {
        // Image axis c (ITK x, y, z) is array axis 2 - c; it runs mostly along the LPS axis r with the
        // largest |direction[3r + c]|. Oblique images are shown in the nearest orientation.
        let mut axes = [(usize::MAX, false); 3];
        let mut spacing = [1.0; 3];
        for c in 0..3 {
            let r = (0..3)
                .max_by(|&a, &b| {
                    g.direction[3 * a + c]
                        .abs()
                        .total_cmp(&g.direction[3 * b + c].abs())
                })
                .unwrap_or(c);
            if axes[r].0 == usize::MAX {
                axes[r] = (2 - c, g.direction[3 * r + c] < 0.0);
                spacing[r] = g.spacing[c];
            }
        }
        if axes.iter().any(|a| a.0 == usize::MAX) {
            // Degenerate direction: show the arrays as stored.
            axes = [(2, false), (1, false), (0, false)];
            spacing = g.spacing;
        }
        let orient = |v: ArrayView3<'a, f32>| {
            let mut v = v.permuted_axes([axes[0].0, axes[1].0, axes[2].0]);
            for (k, &(_, flip)) in axes.iter().enumerate() {
                if flip {
                    v.invert_axis(Axis(k));
                }
            }
            v
        };
        let orient_u8 = |v: ArrayView3<'a, u8>| {
            let mut v = v.permuted_axes([axes[0].0, axes[1].0, axes[2].0]);
            for (k, &(_, flip)) in axes.iter().enumerate() {
                if flip {
                    v.invert_axis(Axis(k));
                }
            }
            v
        };
        Lps {
            image: orient(image),
            labels: orient_u8(labels),
            spacing,
            axes,
        }
    }

    /// LPS indices of the array voxel (z, y, x).
    fn lps_index(&self, zyx: [usize; 3]) -> [usize; 3] {
        let dims = self.image.shape();
        let mut out = [0; 3];
        for k in 0..3 {
            let (a, flip) = self.axes[k];
            out[k] = if flip { dims[k] - 1 - zyx[a] } else { zyx[a] };
        }
        out
    }
}

/// One of the three views: which LPS axis is the normal, which run along the columns and the rows, and
/// whether the rows run against their axis (superior at the top).
#[derive(Clone, Copy)]
struct View {
    name: &'static str,
    normal: usize,
    col: usize,
    row: usize,
    row_flip: bool,
    /// Letters at the left, right, top and bottom edges.
    edges: [&'static str; 4],
}

const VIEWS: [View; 3] = [
    View {
        name: "axial",
        normal: 2,
        col: 0,
        row: 1,
        row_flip: false,
        edges: ["R", "L", "A", "P"],
    },
    View {
        name: "coronal",
        normal: 1,
        col: 0,
        row: 2,
        row_flip: true,
        edges: ["R", "L", "S", "I"],
    },
    View {
        name: "sagittal",
        normal: 0,
        col: 1,
        row: 2,
        row_flip: true,
        edges: ["A", "P", "S", "I"],
    },
];

/// The voxel (z, y, x) where the views cross, see [`Focus`].
pub fn focus_voxel(labels: ArrayView3<u8>, spacing_zyx: [f64; 3], focus: &Focus) -> [usize; 3] {
    let dims = labels.shape();
    let centre = [dims[0] / 2, dims[1] / 2, dims[2] / 2];
    let wanted: Vec<u8> = match focus {
        Focus::Voxel(v) => {
            return [
                v[0].min(dims[0].saturating_sub(1)),
                v[1].min(dims[1].saturating_sub(1)),
                v[2].min(dims[2].saturating_sub(1)),
            ]
        }
        Focus::Labels(l) => l.clone(),
        Focus::RarestLabel => Vec::new(),
    };
    let mut counts = [0u64; 256];
    for &l in labels.iter() {
        counts[l as usize] += 1;
    }
    let mut set = [false; 256];
    for &l in &wanted {
        if l != 0 && counts[l as usize] > 0 {
            set[l as usize] = true;
        }
    }
    if !set.iter().any(|&s| s) {
        match (1..256)
            .filter(|&l| counts[l] > 0)
            .min_by_key(|&l| counts[l])
        {
            Some(l) => set[l] = true,
            None => return centre,
        }
    }
    let (mut sum, mut n) = ([0f64; 3], 0f64);
    for ((z, y, x), &l) in labels.indexed_iter() {
        if set[l as usize] {
            sum[0] += z as f64;
            sum[1] += y as f64;
            sum[2] += x as f64;
            n += 1.0;
        }
    }
    let com = [sum[0] / n, sum[1] / n, sum[2] / n];
    let mut best = (f64::INFINITY, centre);
    for ((z, y, x), &l) in labels.indexed_iter() {
        if set[l as usize] {
            let d: f64 = [z, y, x]
                .iter()
                .zip(com)
                .zip(spacing_zyx)
                .map(|((&i, c), s)| ((i as f64 - c) * s).powi(2))
                .sum();
            if d < best.0 {
                best = (d, [z, y, x]);
            }
        }
    }
    best.1
}

/// LPS world position (mm) of the array voxel (z, y, x).
fn world(g: &Geometry, zyx: [usize; 3]) -> [f64; 3] {
    let idx = [zyx[2] as f64, zyx[1] as f64, zyx[0] as f64];
    let mut p = g.origin;
    for (r, pr) in p.iter_mut().enumerate() {
        for (c, (i, s)) in idx.iter().zip(g.spacing).enumerate() {
            *pr += g.direction[3 * r + c] * i * s;
        }
    }
    p
}

/// Renders the three views, captions and legend of `image` with `labels` (both (z, y, x), same shape) in
/// the geometry `geometry`.
pub fn render_preview(
    image: ArrayView3<f32>,
    labels: ArrayView3<u8>,
    geometry: &Geometry,
    opts: &PreviewOptions,
) -> Result<RgbImage, RenderError> {
    if image.shape() != labels.shape() {
        return Err(RenderError::Shape(format!(
            "image {:?} and labels {:?} differ in shape",
            image.shape(),
            labels.shape()
        )));
    }
    if image.is_empty() {
        return Err(RenderError::Shape(format!(
            "empty image {:?}",
            image.shape()
        )));
    }
    let (lo, hi) = opts.window.bounds(image);
    let lps = Lps::new(image, labels, geometry);
    let focus_zyx = focus_voxel(labels, geometry.spacing_zyx(), &opts.focus);
    let focus = lps.lps_index(focus_zyx);
    let pos = world(geometry, focus_zyx);
    let dims = lps.image.shape().to_vec();
    let extent: Vec<f64> = (0..3).map(|k| dims[k] as f64 * lps.spacing[k]).collect();
    let mm_per_px = extent.iter().cloned().fold(0.0, f64::max) / opts.panel_size.max(16) as f64;
    let scale = opts.text_scale.max(1);
    let line = (font::HEIGHT + 3) * scale;
    let gap = 6 * scale;

    let panels: Vec<RgbImage> = VIEWS
        .iter()
        .map(|v| render_view(&lps, v, focus, mm_per_px, (lo, hi), opts))
        .collect();
    let axis_name = ["x", "y", "z"];
    let captions: Vec<(String, String)> = VIEWS
        .iter()
        .map(|v| {
            // LPS axis `normal` is world coordinate `normal`; the array axis gives the slice index.
            let (a, _) = lps.axes[v.normal];
            (
                format!("{} {} {:.1} mm", v.name, axis_name[v.normal], pos[v.normal]),
                format!("slice {}/{}", focus_zyx[a] + 1, image.shape()[a]),
            )
        })
        .collect();
    let col_w: Vec<usize> = panels
        .iter()
        .zip(&captions)
        .map(|(p, (a, b))| {
            p.width
                .max(font::text_width(a, scale))
                .max(font::text_width(b, scale))
        })
        .collect();
    let panel_h = panels.iter().map(|p| p.height).max().unwrap_or(0);
    let width = gap + col_w.iter().map(|w| w + gap).sum::<usize>();

    // Legend entries: every label present, and every named label.
    let mut counts = [0u64; 256];
    for &l in labels.iter() {
        counts[l as usize] += 1;
    }
    let voxel_ml = geometry.spacing.iter().product::<f64>() / 1000.0;
    let max_label = (1..256usize)
        .filter(|&l| counts[l] > 0)
        .max()
        .unwrap_or(0)
        .max(opts.label_names.len().min(255));
    let entries: Vec<(u8, String)> = (1..=max_label as u8)
        .map(|l| {
            (
                l,
                format!(
                    "{l} {} {:.1} ml",
                    opts.name(l),
                    counts[l as usize] as f64 * voxel_ml
                ),
            )
        })
        .collect();
    let swatch = font::HEIGHT * scale;
    let mut legend_rows: Vec<Vec<(u8, String, usize)>> = vec![Vec::new()];
    let mut x = gap;
    for (l, text) in entries {
        let w = swatch + scale * 3 + font::text_width(&text, scale) + 4 * gap;
        if x + w > width && !legend_rows.last().is_some_and(|r| r.is_empty()) {
            legend_rows.push(Vec::new());
            x = gap;
        }
        legend_rows.last_mut().expect("one row").push((l, text, x));
        x += w;
    }
    let has_title = !opts.title.is_empty();
    let title_h = line + gap / 2;
    let height =
        gap + title_h + panel_h + gap / 2 + 2 * line + gap / 2 + legend_rows.len() * line + gap / 2;
    let mut out = RgbImage::new(width, height, BACKGROUND);

    // Title line: the title on the left, the window on the right.
    let window_text = format!(
        "window l {} w {}",
        fmt_num((lo + hi) / 2.0),
        fmt_num(hi - lo)
    );
    if has_title {
        out.text(gap, gap, &opts.title, scale, TEXT);
    }
    let wx = width.saturating_sub(gap + font::text_width(&window_text, scale));
    out.text(wx, gap, &window_text, scale, DIM_TEXT);

    let y0 = gap + title_h;
    let mut x = gap;
    for ((p, (a, b)), w) in panels.iter().zip(&captions).zip(&col_w) {
        out.blit(p, x + (w - p.width) / 2, y0 + (panel_h - p.height) / 2);
        let cy = y0 + panel_h + gap / 2;
        out.text(x, cy, a, scale, TEXT);
        out.text(x, cy + line, b, scale, DIM_TEXT);
        x += w + gap;
    }
    let mut ly = y0 + panel_h + gap / 2 + 2 * line + gap / 2;
    for row in &legend_rows {
        for (l, text, x) in row {
            let c = opts.colour(*l);
            out.fill_rect(*x, ly, swatch, swatch, c);
            out.text(x + swatch + 3 * scale, ly, text, scale, TEXT);
        }
        ly += line;
    }
    Ok(out)
}

/// A window value without needless decimals.
fn fmt_num(v: f32) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn render_view(
    lps: &Lps,
    v: &View,
    focus: [usize; 3],
    mm_per_px: f64,
    (lo, hi): (f32, f32),
    opts: &PreviewOptions,
) -> RgbImage {
    let dims = lps.image.shape();
    let (nc, nr) = (dims[v.col], dims[v.row]);
    let (sc, sr) = (lps.spacing[v.col], lps.spacing[v.row]);
    let w = ((nc as f64 * sc / mm_per_px).round() as usize).max(1);
    let h = ((nr as f64 * sr / mm_per_px).round() as usize).max(1);
    let slice_n = focus[v.normal];
    let img = lps.image.index_axis(Axis(v.normal), slice_n);
    let lab = lps.labels.index_axis(Axis(v.normal), slice_n);
    // After removing the normal axis, the remaining two keep their order: is `col` the first?
    let col_first = v.col < v.row;
    let at = |c: usize, r: usize| if col_first { [c, r] } else { [r, c] };
    // Continuous voxel coordinate of display pixel k (centre) along an axis of n voxels of size s.
    let coord = |k: usize, n: usize, s: f64, flip: bool| {
        let u = (k as f64 + 0.5) * mm_per_px / s - 0.5;
        let u = if flip { n as f64 - 1.0 - u } else { u };
        u.clamp(0.0, n as f64 - 1.0)
    };
    let span = (hi - lo).max(f32::EPSILON);
    let mut grey = vec![0f32; w * h];
    let mut lbl = vec![0u8; w * h];
    for j in 0..h {
        let ur = coord(j, nr, sr, v.row_flip);
        let (r0, fr) = (ur.floor() as usize, (ur - ur.floor()) as f32);
        let r1 = (r0 + 1).min(nr - 1);
        for i in 0..w {
            let uc = coord(i, nc, sc, false);
            let (c0, fc) = (uc.floor() as usize, (uc - uc.floor()) as f32);
            let c1 = (c0 + 1).min(nc - 1);
            let val = |c: usize, r: usize| {
                let x = img[at(c, r)];
                if x.is_finite() {
                    x
                } else {
                    lo
                }
            };
            let top = val(c0, r0) * (1.0 - fc) + val(c1, r0) * fc;
            let bottom = val(c0, r1) * (1.0 - fc) + val(c1, r1) * fc;
            let x = top * (1.0 - fr) + bottom * fr;
            grey[j * w + i] = ((x - lo) / span).clamp(0.0, 1.0) * 255.0;
            lbl[j * w + i] = lab[at(uc.round() as usize, ur.round() as usize)];
        }
    }
    let mut out = RgbImage::new(w, h, [0, 0, 0]);
    let a = opts.fill_alpha.clamp(0.0, 1.0);
    for j in 0..h {
        for i in 0..w {
            let g = grey[j * w + i];
            let l = lbl[j * w + i];
            let px = if l == 0 {
                let g = g.round() as u8;
                [g, g, g]
            } else {
                let c = opts.colour(l);
                let edge = opts.outline
                    && (i == 0
                        || j == 0
                        || i + 1 == w
                        || j + 1 == h
                        || lbl[j * w + i - 1] != l
                        || lbl[j * w + i + 1] != l
                        || lbl[(j - 1) * w + i] != l
                        || lbl[(j + 1) * w + i] != l);
                if edge {
                    c
                } else {
                    c.map(|ch| ((1.0 - a) * g + a * ch as f32).round() as u8)
                }
            };
            out.put(i, j, px);
        }
    }
    // Ticks on the edges where the other two views cut this one.
    let tick = (w.min(h) / 24).max(4);
    let px_of = |k: usize, n: usize, s: f64, flip: bool, len: usize| {
        let k = if flip { n - 1 - k } else { k };
        (((k as f64 + 0.5) * s / mm_per_px) as usize).min(len - 1)
    };
    let tc = px_of(focus[v.col], nc, sc, false, w);
    let tr = px_of(focus[v.row], nr, sr, v.row_flip, h);
    for t in 0..tick {
        for d in 0..2 {
            out.put((tc + d).min(w - 1), t, TICK);
            out.put((tc + d).min(w - 1), h - 1 - t.min(h - 1), TICK);
            out.put(t, (tr + d).min(h - 1), TICK);
            out.put(w - 1 - t.min(w - 1), (tr + d).min(h - 1), TICK);
        }
    }
    // Orientation letters at the middle of each edge, on a dark backing.
    let s = opts.text_scale.max(1);
    let (gw, gh) = (font::text_width("M", s), font::HEIGHT * s);
    let pad = s;
    if w > 3 * (gw + 2 * pad) && h > 3 * (gh + 2 * pad) {
        let spots = [
            (pad, (h - gh) / 2),
            (w - gw - pad, (h - gh) / 2),
            ((w - gw) / 2, pad),
            ((w - gw) / 2, h - gh - pad),
        ];
        for (letter, (x, y)) in v.edges.iter().zip(spots) {
            out.text(x, y, letter, s, [255, 255, 160]);
        }
    }
    out
}

/// Labels of a difference view, from [`difference_labels`].
pub const DIFFERENCE_NAMES: [&str; 4] =
    ["agree", "false positive", "false negative", "other class"];

/// Colours of the difference labels: agree green, false positive red, false negative blue, other class
/// magenta.
pub const DIFFERENCE_COLOURS: [[u8; 3]; 4] =
    [[70, 205, 95], [235, 64, 52], [64, 140, 245], [215, 90, 235]];

/// Compares a prediction with a reference voxel by voxel: 0 both background, 1 the same foreground label,
/// 2 false positive (foreground predicted, background in the reference), 3 false negative (the reverse),
/// 4 both foreground with different labels. Use with [`PreviewOptions::for_difference`].
pub fn difference_labels(
    prediction: ArrayView3<u8>,
    reference: ArrayView3<u8>,
) -> Result<ndarray::Array3<u8>, RenderError> {
    if prediction.shape() != reference.shape() {
        return Err(RenderError::Shape(format!(
            "prediction {:?} and reference {:?} differ in shape",
            prediction.shape(),
            reference.shape()
        )));
    }
    Ok(ndarray::Zip::from(prediction)
        .and(reference)
        .map_collect(|&p, &r| match (p, r) {
            (0, 0) => 0,
            (p, r) if p == r => 1,
            (_, 0) => 2,
            (0, _) => 3,
            _ => 4,
        }))
}

impl PreviewOptions {
    /// Options for a difference view of [`difference_labels`]: its names and colours, and the views
    /// crossing in the disagreement.
    pub fn for_difference(self) -> PreviewOptions {
        PreviewOptions {
            label_names: DIFFERENCE_NAMES.iter().map(|s| s.to_string()).collect(),
            colours: DIFFERENCE_COLOURS.to_vec(),
            focus: Focus::Labels(vec![2, 3, 4]),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3};

    fn ident(spacing: [f64; 3]) -> Geometry {
        Geometry {
            spacing,
            ..Geometry::default()
        }
    }

    #[test]
    fn window_parse_and_bounds() {
        assert_eq!(
            Window::parse("40,400").unwrap(),
            Window::LevelWidth {
                level: 40.0,
                width: 400.0
            }
        );
        assert_eq!(Window::parse(" auto ").unwrap(), Window::Auto);
        for bad in ["40", "40,-1", "a,b", "40,0"] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        let ct = Array3::<f32>::from_shape_fn(
            (4, 4, 4),
            |(z, _, _)| if z == 0 { -1000.0 } else { 50.0 },
        );
        assert_eq!(Window::Auto.bounds(ct.view()), (-160.0, 240.0));
        let mr = Array3::<f32>::from_shape_fn((4, 4, 4), |(z, y, x)| (z * 16 + y * 4 + x) as f32);
        let (lo, hi) = Window::Auto.bounds(mr.view());
        assert!(lo <= 1.0 && hi >= 62.0, "{lo} {hi}");
    }

    #[test]
    fn focus_is_in_the_rarest_label() {
        let mut l = Array3::<u8>::zeros((10, 20, 20));
        l.slice_mut(s![1..9, 2..18, 2..18]).fill(1);
        l.slice_mut(s![6..8, 12..14, 3..5]).fill(2);
        let f = focus_voxel(l.view(), [1.0; 3], &Focus::RarestLabel);
        assert_eq!(l[f], 2, "{f:?}");
        let f = focus_voxel(l.view(), [1.0; 3], &Focus::Labels(vec![1]));
        assert_eq!(l[f], 1);
        let f = focus_voxel(
            Array3::<u8>::zeros((4, 6, 8)).view(),
            [1.0; 3],
            &Focus::RarestLabel,
        );
        assert_eq!(f, [2, 3, 4]);
    }

    #[test]
    fn aspect_follows_spacing_and_orientation_follows_direction() {
        // 10 slices of 4 mm, 20 x 40 voxels of 1 mm: axial 40 x 20 mm, coronal 40 x 40 mm, sagittal 20 x 40.
        let image = Array3::<f32>::zeros((10, 20, 40));
        let mut labels = Array3::<u8>::zeros((10, 20, 40));
        // A label at low x (patient right in LPS), high z (superior).
        labels.slice_mut(s![7..9, 8..12, 2..6]).fill(1);
        let opts = PreviewOptions {
            panel_size: 40,
            outline: false,
            fill_alpha: 1.0,
            ..PreviewOptions::default()
        };
        let lps = Lps::new(image.view(), labels.view(), &ident([1.0, 1.0, 4.0]));
        let focus = lps.lps_index(focus_voxel(labels.view(), [4.0, 1.0, 1.0], &opts.focus));
        let ax = render_view(&lps, &VIEWS[0], focus, 1.0, (0.0, 1.0), &opts);
        let co = render_view(&lps, &VIEWS[1], focus, 1.0, (0.0, 1.0), &opts);
        let sa = render_view(&lps, &VIEWS[2], focus, 1.0, (0.0, 1.0), &opts);
        assert_eq!((ax.width, ax.height), (40, 20));
        assert_eq!((co.width, co.height), (40, 40));
        assert_eq!((sa.width, sa.height), (20, 40));
        let red = PALETTE[0];
        // Patient right (x index 2..6) is on the image's left; superior (z 7..9 = 28..36 mm) near the top.
        // (Column 4: the edge ticks cover columns 0..4.)
        assert_eq!(ax.get(4, 10), red);
        assert_ne!(ax.get(35, 10), red);
        assert_eq!(co.get(4, 40 - 1 - 30), red);
        assert_ne!(co.get(4, 30), red);
        // Flipping x in the direction moves the label to the other side of the axial view.
        let mut g = ident([1.0, 1.0, 4.0]);
        g.direction[0] = -1.0;
        let lps = Lps::new(image.view(), labels.view(), &g);
        let focus = lps.lps_index(focus_voxel(labels.view(), [4.0, 1.0, 1.0], &opts.focus));
        let ax = render_view(&lps, &VIEWS[0], focus, 1.0, (0.0, 1.0), &opts);
        assert_eq!(ax.get(35, 10), red);
        assert_ne!(ax.get(4, 10), red);
    }

    #[test]
    fn difference_labels_classify_each_voxel() {
        let p = Array3::from_shape_vec((1, 1, 6), vec![0, 1, 1, 0, 2, 1]).unwrap();
        let r = Array3::from_shape_vec((1, 1, 6), vec![0, 1, 0, 2, 1, 1]).unwrap();
        let d = difference_labels(p.view(), r.view()).unwrap();
        assert_eq!(d.as_slice().unwrap(), &[0, 1, 2, 3, 4, 1]);
        let bad = Array3::<u8>::zeros((1, 1, 5));
        assert!(difference_labels(p.view(), bad.view()).is_err());
    }

    #[test]
    fn whole_preview_has_legend_colours_and_rejects_bad_shapes() {
        let image = Array3::<f32>::from_elem((12, 30, 30), 40.0);
        let mut labels = Array3::<u8>::zeros((12, 30, 30));
        labels.slice_mut(s![2..10, 5..25, 5..25]).fill(1);
        labels.slice_mut(s![5..7, 10..13, 10..13]).fill(2);
        let opts = PreviewOptions {
            label_names: vec!["liver".into(), "tumour".into()],
            title: "phantom_000".into(),
            ..PreviewOptions::default()
        };
        let out =
            render_preview(image.view(), labels.view(), &ident([1.0, 1.0, 2.5]), &opts).unwrap();
        assert_eq!(out.pixels.len(), out.width * out.height * 3);
        let has = |c: [u8; 3]| out.pixels.chunks(3).any(|p| p == c);
        assert!(has(PALETTE[0]) && has(PALETTE[1]) && has(TEXT));
        let short = Array3::<u8>::zeros((12, 30, 29));
        assert!(render_preview(image.view(), short.view(), &Geometry::default(), &opts).is_err());
    }

    #[test]
    fn save_png_is_atomic_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::new(3, 2, TICK);
        let path = dir.path().join("case.png");
        img.save_png(&path).unwrap();
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(dir.path()), ["case.png"]);
        let mut expected = Vec::new();
        img.write_png(&mut expected).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);

        // The rename fails (the destination is a non-empty folder): an error naming it, no temporary left.
        let blocked = dir.path().join("blocked.png");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("keep"), b"x").unwrap();
        match img.save_png(&blocked) {
            Err(RenderError::Io { path, .. }) => assert_eq!(path, blocked),
            other => panic!("expected an IO error, got {other:?}"),
        }
        assert_eq!(names(dir.path()), ["blocked.png", "case.png"]);
    }
}

//! The stages that the streaming path ([`crate::predict`]) and the file path to accelerators
//! ([`crate::bins`]) compose, each once:
//!
//! 1. read and preprocess a case: [`read_case_images`], [`prepare_case`] (nnU-Net's crop, resample,
//!    normalise) giving a [`PreparedCase`], after [`check_memory`] against [`estimate_peak_memory`];
//! 2. predict a preprocessed case: [`predict_preprocessed`] (every tile x mirror through one backend, merged
//!    with the Gaussian weights) and [`predict_folds`] (the fold ensemble);
//! 3. export and write: [`write_outputs`] (resampling back, argmax, `postprocessing.json`, the NIfTI, the
//!    optional probabilities and preview) at [`output_paths`].
//!
//! [`PredictOptions`] carries the options of all three (nnU-Net's defaults).

use std::path::{Path, PathBuf};

use ndarray::{Array4, Array5, ArrayView3, Axis};
use nnu_engine::Backend;
use nnu_preprocessing::{
    export::remove_all_but_largest_component, export_probabilities_per_class, export_segmentation,
    preprocess_case, CaseProperties, ExportOptions, ItkGeometry,
};
use nnu_tiling::{extract_tile, Aggregator, AggregatorOptions, Mirror, MirrorSet, Tile, TileGrid};
use nnu_volume::{stage_volume, Geometry, Volume, WriteOptions};

use crate::cases::Case;
use crate::model::ModelSpec;
use crate::{npy, preview, PipelineError};

/// Options of a prediction run. Defaults are nnU-Net's: step 0.5, all eight mirrors, Gaussian weighting.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Sliding-window step as a fraction of the patch (default 0.5).
    pub step_size: f64,
    /// Mirrors for test-time augmentation (default all eight; `MirrorSet::identity_only()` disables TTA).
    pub mirrors: MirrorSet,
    /// Gaussian importance weighting of tiles (default true).
    pub use_gaussian: bool,
    /// Also write `CASE_probabilities.npy` (f32, classes x Z x Y x X in the original frame).
    pub save_probabilities: bool,
    /// Also write `CASE.png`, a montage of axial slices with the segmentation overlaid.
    pub preview: bool,
    /// How previews are drawn (label names, window...; default `PreviewOptions::default()`, titled with
    /// the case name).
    pub preview_options: preview::PreviewOptions,
    /// Recompute cases whose segmentation exists (default: skip them, so interrupted runs resume).
    pub overwrite: bool,
    /// gzip level of the written segmentation (default 6... 1 is faster, 9 smaller).
    pub compression_level: u32,
    /// Apply the model folder's `postprocessing.json` when present (default true, as nnU-Net).
    pub postprocess: bool,
    /// Refuse a case whose estimated peak memory ([`estimate_peak_memory`]) exceeds this many bytes,
    /// before reading it (default `None`: no check; the tools pass [`available_memory`]).
    pub max_memory: Option<u64>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            step_size: 0.5,
            mirrors: MirrorSet::all(),
            use_gaussian: true,
            save_probabilities: false,
            preview: false,
            preview_options: preview::PreviewOptions::default(),
            overwrite: false,
            compression_level: 6,
            postprocess: true,
            max_memory: None,
        }
    }
}

/// The output paths of a case in `out_dir`.
pub fn output_paths(out_dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        out_dir.join(format!("{name}.nii.gz")),
        out_dir.join(format!("{name}_probabilities.npy")),
        out_dir.join(format!("{name}.png")),
    )
}

/// True when the case's outputs exist and are whole: the segmentation reads (header and all voxels), the
/// probabilities (when `opts.save_probabilities`) have the bytes their header needs, the preview (when
/// `opts.preview`) ends with its `IEND` chunk. A 0-byte or cut file (a copy gone wrong, a full disk in
/// another tool) therefore does not count as finished.
pub fn outputs_complete(seg: &Path, prob: &Path, png: &Path, opts: &PredictOptions) -> bool {
    seg.is_file()
        && (!opts.save_probabilities || npy::is_complete_npy(prob))
        && (!opts.preview || preview::is_complete_png(png))
        && nnu_volume::read_labels(seg).is_ok()
}

/// True when `file_name` is one of the outputs of case `name` ([`output_paths`]).
pub fn is_case_output(file_name: &str, name: &str) -> bool {
    file_name
        .strip_prefix(name)
        .is_some_and(|rest| matches!(rest, ".nii.gz" | "_probabilities.npy" | ".png"))
}

/// Whether `file_name` is one of the files a run writes for case `name`: its outputs
/// ([`is_case_output`]) or its lock file (`nnu_fsio::CaseLock`). A killed run's temporaries of these are
/// what the next run clears.
pub fn is_case_file(file_name: &str, name: &str) -> bool {
    is_case_output(file_name, name) || is_case_lock(file_name, name)
}

/// True when `file_name` is the lock file of case `name` (`.NAME.lock`, `nnu_fsio::CaseLock`).
pub fn is_case_lock(file_name: &str, name: &str) -> bool {
    nnu_fsio::CaseLock::path_for(std::path::Path::new(""), name)
        .file_name()
        .is_some_and(|lock| lock == file_name)
}

/// Reads all modalities of a case and checks that they share one grid. Returns the (z, y, x) channels and
/// the first image's geometry (nnU-Net takes the first file's).
pub fn read_case_images(
    case: &Case,
    expected_modalities: usize,
) -> Result<(Vec<Volume<f32>>, Geometry), PipelineError> {
    let first = case.first_file()?;
    let vols = crate::cases::read_case_channels(case)?;
    if vols.len() != expected_modalities || vols.is_empty() {
        return Err(PipelineError::Input {
            path: first.to_path_buf(),
            msg: format!(
                "case '{}' has {} modalities, the model expects {}",
                case.name,
                vols.len(),
                expected_modalities
            ),
        });
    }
    let g0 = vols[0].geometry;
    let s0 = vols[0].shape_zyx();
    for (i, v) in vols.iter().enumerate().skip(1) {
        let path = case
            .files
            .get(i)
            .map_or(first, |p| p.as_path())
            .to_path_buf();
        if v.shape_zyx() != s0 {
            return Err(PipelineError::Input {
                path,
                msg: format!(
                    "modality {i} has shape {:?}, modality 0 has {:?}",
                    v.shape_zyx(),
                    s0
                ),
            });
        }
        let off = (0..3).any(|a| {
            (v.geometry.spacing[a] - g0.spacing[a]).abs() > 1e-3 * g0.spacing[a].abs().max(1e-6)
        });
        if off {
            return Err(PipelineError::Input {
                path,
                msg: format!(
                    "modality {i} has spacing {:?}, modality 0 has {:?}",
                    v.geometry.spacing, g0.spacing
                ),
            });
        }
    }
    Ok((vols, g0))
}

/// Converts the volume crate's geometry to the preprocessing crate's.
pub fn itk_geometry(g: &Geometry) -> ItkGeometry {
    ItkGeometry {
        spacing: g.spacing,
        origin: g.origin,
        direction: g.direction,
    }
}

/// A case read and preprocessed: the (c, z, y, x) network input, nnU-Net's properties, the first image's
/// geometry and, when asked for, a copy of modality 0 for the preview.
pub struct PreparedCase {
    /// Preprocessed volume (c, z, y, x), transposed frame.
    pub data: Array4<f32>,
    /// nnU-Net's case properties, for the export.
    pub props: CaseProperties,
    /// Geometry of the first image.
    pub geometry: Geometry,
    /// Modality 0 as read, kept only for previews.
    pub preview_image: Option<ndarray::Array3<f32>>,
}

/// Reads all modalities of `case` ([`read_case_images`]) and preprocesses them with the model's parameters.
pub fn prepare_case(
    case: &Case,
    model: &ModelSpec,
    keep_preview: bool,
) -> Result<PreparedCase, PipelineError> {
    let first = case.first_file()?;
    // The reader first: a header that promises more data than its file holds is refused there
    // ("truncated: the header needs N bytes ..., the file holds M"), the true problem, and the reader
    // allocates no more than the file can fill.
    let (vols, geometry) = read_case_images(case, model.num_modalities)?;
    // The preprocessed volume is sized by the header's shape and spacing (1 km voxels resampled to
    // 2 mm): make sure it can exist at all before preprocessing, so that an absurd spacing is this
    // case's error and not an abort of the batch.
    if let Ok((_, n1)) = header_voxels(case, model) {
        reserve_case_memory(
            first,
            (4 * model.num_modalities as u64).saturating_mul(n1),
            "its preprocessed volume",
        )?;
    }
    let preview_image = match vols.first() {
        Some(v) if keep_preview => Some(preview_copy(v.data.view(), first)?),
        _ => None,
    };
    let channels: Vec<_> = vols.into_iter().map(|v| v.data).collect();
    let (data, props) = preprocess_case(channels, &itk_geometry(&geometry), &model.params)
        .map_err(|e| {
            // Name the file the problem is in: the channel's own file for a bad voxel, else the first.
            let file = match &e {
                nnu_preprocessing::PreprocessError::NonFinite { channel, .. } => {
                    case.files.get(*channel)
                }
                _ => None,
            };
            PipelineError::Input {
                path: file.map_or(first, |p| p.as_path()).to_path_buf(),
                msg: e.to_string(),
            }
        })?;
    Ok(PreparedCase {
        data,
        props,
        geometry,
        preview_image,
    })
}

/// A copy of a case's first channel (`image`, read from `file`) kept for its preview while the case is
/// predicted, in standard layout. Allocated fallibly: a copy that cannot be had is the case's error naming
/// `file`, the buffer and its bytes, not an abort of the process.
pub(crate) fn preview_copy(
    image: ArrayView3<f32>,
    file: &Path,
) -> Result<ndarray::Array3<f32>, PipelineError> {
    let bytes = (image.len() as u64).saturating_mul(4);
    let mut v = Vec::new();
    v.try_reserve_exact(image.len())
        .map_err(|_| PipelineError::Input {
            path: file.to_path_buf(),
            msg: format!(
                "out of memory: cannot allocate {} ({bytes} bytes) for the preview's copy of the image",
                crate::bins::human_bytes(bytes)
            ),
        })?;
    v.extend(image.iter().copied());
    ndarray::Array3::from_shape_vec(image.raw_dim(), v)
        .map_err(|e| PipelineError::Shape(e.to_string()))
}

/// Runs every tile of `data` (c, z, y, x, preprocessed) through `backend` with the mirrors of `opts` and
/// merges the softmax outputs: nnU-Net's `_internal_predict_3D_3Dconv_tiled`. `progress(done, total)` is
/// called after each tile. Returns the class probabilities (classes, z, y, x) in the preprocessed frame.
pub fn predict_preprocessed(
    data: &Array4<f32>,
    backend: &mut dyn Backend,
    patch: [usize; 3],
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Array4<f32>, usize), PipelineError> {
    let (c, z, y, x) = data.dim();
    check_backend_input(backend, c, patch)?;
    let grid = TileGrid::new([z, y, x], patch, opts.step_size)?;
    let agg_opts = AggregatorOptions {
        mirrors: opts.mirrors,
        use_gaussian: opts.use_gaussian,
    };
    let mut agg = Aggregator::new(backend.num_classes(), grid.clone(), agg_opts)?;
    let mirrors: Vec<_> = opts.mirrors.iter().collect();
    let mut input = Array5::<f32>::zeros((mirrors.len(), c, patch[0], patch[1], patch[2]));
    let total = grid.len();
    for (done, tile) in grid.tiles().enumerate() {
        let logits = run_tile_mirrors(backend, data, &grid, &tile, &mirrors, &mut input)?;
        for (k, &m) in mirrors.iter().enumerate() {
            agg.add(tile.index, m, logits.index_axis(Axis(0), k))?;
        }
        progress(done + 1, total);
    }
    Ok((agg.finish()?, total))
}

/// Checks that `backend` takes `channels` channels of `patch` (what the plans say), naming both.
pub(crate) fn check_backend_input(
    backend: &dyn Backend,
    channels: usize,
    patch: [usize; 3],
) -> Result<(), PipelineError> {
    if backend.patch_size() != patch || backend.input_channels() != channels {
        return Err(PipelineError::Shape(format!(
            "the model takes {} channel(s) of {:?}, the plans say {} of {:?}",
            backend.input_channels(),
            backend.patch_size(),
            channels,
            patch
        )));
    }
    Ok(())
}

/// One tile through `backend` with every mirror of `mirrors` as one batch: `input` (mirrors, c, patch)
/// is filled with the mirrored tiles of `data` and run; returns the logits (mirrors, classes, patch),
/// sample `k` for `mirrors[k]`.
pub(crate) fn run_tile_mirrors(
    backend: &mut dyn Backend,
    data: &Array4<f32>,
    grid: &TileGrid,
    tile: &Tile,
    mirrors: &[Mirror],
    input: &mut Array5<f32>,
) -> Result<Array5<f32>, PipelineError> {
    let tile_len = input.len() / mirrors.len().max(1);
    {
        let buf = input
            .as_slice_mut()
            .ok_or_else(|| PipelineError::Shape("input buffer".into()))?;
        for (k, &m) in mirrors.iter().enumerate() {
            extract_tile(
                data.view(),
                grid,
                tile,
                m,
                &mut buf[k * tile_len..(k + 1) * tile_len],
            )?;
        }
    }
    Ok(backend.run_all(input.view())?)
}

/// Predicts a preprocessed case (c, z, y, x) with one backend per fold and averages the folds'
/// probabilities, as nnU-Net ensembles folds. `progress(done, total)` counts the tiles of all folds.
/// Returns the probabilities (classes, z, y, x) in the preprocessed frame and the tiles of one fold.
pub fn predict_folds(
    data: &Array4<f32>,
    backends: &mut [Box<dyn Backend>],
    patch: [usize; 3],
    opts: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Array4<f32>, usize), PipelineError> {
    let nfolds = backends.len();
    let mut probs: Option<Array4<f32>> = None;
    let mut tiles = 0;
    for (f, backend) in backends.iter_mut().enumerate() {
        let mut fold_progress = |d: usize, t: usize| progress(f * t + d, nfolds * t);
        let (p, n) = predict_preprocessed(data, backend.as_mut(), patch, opts, &mut fold_progress)?;
        tiles = n;
        match probs.as_mut() {
            None => probs = Some(p),
            Some(acc) => *acc += &p,
        }
    }
    let mut probs = probs.ok_or_else(|| PipelineError::Shape("no probabilities".into()))?;
    if nfolds > 1 {
        probs.mapv_inplace(|v| v / nfolds as f32);
    }
    Ok((probs, tiles))
}

/// An upper bound of the memory one case needs at its peak, in bytes, from its headers alone: the largest
/// of the three phases (reading and resampling; the sliding window with its class sums; the export to
/// the original frame, with the probabilities there when `opts.save_probabilities`), each counting the
/// arrays alive then, without the crop (an upper bound). The network itself is not counted.
pub fn estimate_peak_memory(
    case: &Case,
    model: &ModelSpec,
    opts: &PredictOptions,
) -> Result<u64, PipelineError> {
    let (n0, n1) = header_voxels(case, model)?;
    let (m, c) = (model.num_modalities as u64, model.num_classes as u64);
    let sum = saturating_bytes;
    let preview = if opts.preview { n0 } else { 0 };
    let read = sum(&[(4 * m, n0), (4 * m, n1), (4, preview)]);
    let window = sum(&[(4 * m, n1), (4 * (c + 1), n1), (4, preview)]);
    // The probabilities in the original frame are written one class at a time: one f32 channel.
    let probs = if opts.save_probabilities { n0 } else { 0 };
    let export = sum(&[(4 * c, n1), (4, preview), (5, n0), (4, probs)]);
    Ok(read.max(window).max(export))
}

/// The voxel counts a case's buffers are sized by, from the header of its first image: as read (`n0`),
/// and resampled to the model's spacing and padded to the patch (`n1`, without the crop: an upper
/// bound). Saturating instead of overflowing on an absurd header.
pub(crate) fn header_voxels(case: &Case, model: &ModelSpec) -> Result<(u64, u64), PipelineError> {
    let (shape_zyx, geometry) = crate::cases::case_header(case)?;
    let planned =
        nnu_preprocessing::case::planned_shape(shape_zyx, geometry.spacing_zyx(), &model.params)?;
    Ok(voxels_as_read_and_planned(shape_zyx, planned, model.patch))
}

/// `(n0, n1)` of a case: the voxels as read (`shape`), and of the planned shape padded to the patch;
/// saturating at `u64::MAX` (a crafted header must give a huge estimate, not an overflow).
pub(crate) fn voxels_as_read_and_planned(
    shape: [usize; 3],
    planned: [usize; 3],
    patch: [usize; 3],
) -> (u64, u64) {
    let n0 = shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let n1 = planned
        .iter()
        .zip(patch)
        .fold(1u64, |n, (&d, p)| n.saturating_mul(d.max(p) as u64));
    (n0, n1)
}

/// `sum of k * n` over `terms` (bytes per voxel times voxels), saturating at `u64::MAX`.
pub(crate) fn saturating_bytes(terms: &[(u64, u64)]) -> u64 {
    terms
        .iter()
        .fold(0u64, |acc, &(k, n)| acc.saturating_add(k.saturating_mul(n)))
}

/// Checks with a fallible allocation (`try_reserve_exact`, released at once) that a buffer of `bytes`
/// can be allocated, so that a case whose header asks for more than the process can map (a huge or
/// crafted header, an absurd spacing) fails with an error naming `file` instead of aborting the
/// process in the middle of a batch. `what` names the buffer in the message.
pub fn reserve_case_memory(file: &Path, bytes: u64, what: &str) -> Result<(), PipelineError> {
    let fail = || PipelineError::Input {
        path: file.to_path_buf(),
        msg: format!(
            "the header asks for {:.1} GiB for {what}, which cannot be allocated; not started",
            bytes as f64 / (1u64 << 30) as f64
        ),
    };
    let n = usize::try_from(bytes).map_err(|_| fail())?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| fail())?;
    Ok(())
}

/// A buffer of a case that could not be allocated (`OutOfMemory` of `nnu-preprocessing` or
/// `nnu-tiling`, which name the buffer and its bytes) as that case's error naming `file`, its image, as
/// every other error of a case names its file. Other errors pass unchanged.
pub(crate) fn naming_image(file: &Path) -> impl Fn(PipelineError) -> PipelineError + '_ {
    move |e| match e {
        PipelineError::Tiling(t @ nnu_tiling::TilingError::OutOfMemory { .. }) => {
            PipelineError::Input {
                path: file.to_path_buf(),
                msg: t.to_string(),
            }
        }
        PipelineError::Preprocess(p @ nnu_preprocessing::PreprocessError::OutOfMemory { .. }) => {
            PipelineError::Input {
                path: file.to_path_buf(),
                msg: p.to_string(),
            }
        }
        e => e,
    }
}

/// Whether an uncompressed image's header promises more voxel data than the file holds. Such a file is
/// refused by the reader ("truncated: the header needs ... bytes"), the true problem, rather than for the
/// memory its lying header would need.
fn header_claims_more_than_file(path: &std::path::Path) -> bool {
    let (Ok(h), Ok(meta)) = (nnu_volume::read_header(path), std::fs::metadata(path)) else {
        return false;
    };
    let data = (h.voxels() as u64)
        .saturating_mul(h.channels as u64)
        .saturating_mul(h.datatype.size() as u64);
    !h.gzipped && data > meta.len()
}

/// Refuses `case` when its estimated peak memory exceeds `opts.max_memory`, naming the file.
pub fn check_memory(
    case: &Case,
    model: &ModelSpec,
    opts: &PredictOptions,
) -> Result<(), PipelineError> {
    refuse_over_memory(case, opts, || estimate_peak_memory(case, model, opts))
}

/// Refuses `case` when `estimate()` exceeds `opts.max_memory` (shared by the v1 and v2 paths). A header
/// that cannot be read is not refused here: it fails later with the reader's own error.
pub(crate) fn refuse_over_memory(
    case: &Case,
    opts: &PredictOptions,
    estimate: impl FnOnce() -> Result<u64, PipelineError>,
) -> Result<(), PipelineError> {
    let Some(max) = opts.max_memory else {
        return Ok(());
    };
    let Ok(need) = estimate() else {
        return Ok(());
    };
    if need > max && !header_claims_more_than_file(case.first_file()?) {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(PipelineError::Input {
            path: case.first_file()?.to_path_buf(),
            msg: format!(
                "this case needs up to {:.2} GiB of memory{}, {:.2} GiB are available (--max-memory); \
                 not started",
                gib(need),
                if opts.save_probabilities {
                    " (with its probabilities in the original frame)"
                } else {
                    ""
                },
                gib(max)
            ),
        });
    }
    Ok(())
}

/// The memory this process can still use, in bytes: the smaller of the system's available memory
/// (`MemAvailable` of `/proc/meminfo`) and what the address-space limit (`RLIMIT_AS`) leaves above the
/// process's current size. `None` when neither is known (not Linux).
pub fn available_memory() -> Option<u64> {
    let kib = |text: &str, key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| kib(&t, "MemAvailable:"));
    let mut lim = std::mem::MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit fills the properly sized out-parameter when it returns 0; it is read only then.
    let limit = (unsafe { libc::getrlimit(libc::RLIMIT_AS, lim.as_mut_ptr()) } == 0)
        .then(|| unsafe { lim.assume_init() }.rlim_cur)
        .filter(|&l| l != libc::RLIM_INFINITY)
        .map(|l| {
            let used = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|t| kib(&t, "VmSize:"))
                .unwrap_or(0);
            // `rlim_t` is not `u64` on every platform.
            #[allow(clippy::unnecessary_cast)]
            let l = l as u64;
            l.saturating_sub(used)
        });
    match (system, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Exports merged probabilities (preprocessed frame) to the case's outputs: the segmentation NIfTI, and
/// when asked the probabilities `.npy` and the preview PNG. Shared by the streaming and the bins paths.
#[allow(clippy::too_many_arguments)]
pub fn write_outputs(
    probs: &Array4<f32>,
    props: &CaseProperties,
    model: &ModelSpec,
    geometry: &Geometry,
    preview_image: Option<ArrayView3<f32>>,
    out_dir: &Path,
    name: &str,
    opts: &PredictOptions,
) -> Result<(), PipelineError> {
    let (seg_path, prob_path, png_path) = output_paths(out_dir, name);
    std::fs::create_dir_all(out_dir).map_err(|e| PipelineError::io(out_dir, e))?;
    // The case's files are staged and renamed together at the end: a failure anywhere (a full disk at
    // the segmentation) leaves none of them.
    let mut batch = nnu_fsio::Batch::new();
    let export = ExportOptions::default();
    let mut seg = export_segmentation(probs.view(), props, &model.params, &export)?;
    if opts.postprocess {
        if let Some(pp) = &model.postprocessing {
            let vpv: f64 = geometry.spacing.iter().product();
            remove_all_but_largest_component(&mut seg, pp, vpv)?;
        }
    }
    if opts.save_probabilities {
        // Streamed: one class in the original frame at a time, written as it is made (the file is the
        // .npy of the whole array, byte for byte).
        let [z, y, x] = props.original_size_of_raw_data;
        let shape = [probs.shape()[0], z, y, x];
        npy::stage_npy_f32_pieces(&mut batch, &prob_path, &shape, |write| {
            export_probabilities_per_class(probs.view(), props, &model.params, &export, |_, ch| {
                write(ch.into_dyn())
            })
        })?;
    }
    if let Some(img) = preview_image {
        preview::stage_preview(
            &mut batch,
            &png_path,
            img,
            seg.view(),
            geometry,
            name,
            &opts.preview_options,
        )?;
    }
    // The segmentation is renamed last: its presence marks the case as done.
    stage_volume(
        &mut batch,
        &seg_path,
        seg.view(),
        geometry,
        &WriteOptions::default().compression_level(opts.compression_level),
    )?;
    batch.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A preview copy that cannot be allocated (2^46 voxels seen through a broadcast view: 256 TiB of
    /// f32) is the case's error naming the file and the bytes.
    #[test]
    fn a_preview_copy_that_cannot_be_allocated_is_an_error() {
        let one = ndarray::arr0(1.0f32);
        let image = one.broadcast((1 << 16, 1 << 15, 1 << 15)).unwrap();
        let e = preview_copy(image, Path::new("CASE_0000.nii.gz"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "CASE_0000.nii.gz: out of memory: cannot allocate 256.0 TiB (281474976710656 bytes) for \
             the preview's copy of the image"
        );
        let small =
            ndarray::Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 12 + y * 4 + x) as f32);
        let t = small.view().permuted_axes([2, 1, 0]);
        let c = preview_copy(t, Path::new("x")).unwrap();
        assert!(c.is_standard_layout());
        assert_eq!(c, t);
    }
}

//! The file path to accelerators: a case preprocessed into tile bins (`nnu-preprocess`) and output dumps
//! merged back into a segmentation (`nnu-postprocess`), in the recipe's formats (`nnu-bins`).

use std::path::{Path, PathBuf};

use ndarray::Axis;
use nnu_bins::{DumpIndex, Mirror as BinMirror, ShapeRecord, TileBounds, TileName};
use nnu_tiling::{extract_tile, Aggregator, AggregatorOptions, Mirror, MirrorSet, TileGrid};

use crate::cases::Case;
use crate::model::ModelSpec;
use crate::predict::{prepare_case, write_outputs, PredictOptions, PreparedCase};
use crate::PipelineError;

fn bins_err(e: nnu_bins::BinsError) -> PipelineError {
    PipelineError::Bins(e)
}

/// The bin-file mirror with the same recipe index as a tiling mirror.
fn bin_mirror(m: Mirror) -> Result<BinMirror, PipelineError> {
    BinMirror::new(m.index() as u32).map_err(bins_err)
}

/// True when `file_name` is a tile bin of case `name` (`NAME_lbx_ubx_lby_uby_lbz_ubz_m.bin`).
pub fn is_case_tile(file_name: &str, name: &str) -> bool {
    file_name.ends_with(".bin") && TileName::parse(file_name).is_ok_and(|t| t.case == name)
}

/// Bytes the tiles of a case will take: tiles x mirrors x channels x patch x 4.
pub fn bins_bytes(record: &ShapeRecord, channels: usize, patch: [usize; 3], mirrors: usize) -> u64 {
    (record.num_tiles() * mirrors * channels * patch.iter().product::<usize>() * 4) as u64
}

/// What `preprocess_to_bins` did for a case.
#[derive(Debug, Clone)]
pub struct BinsReport {
    /// The `all_shape.txt` record of the case.
    pub record: ShapeRecord,
    /// Tile files written (0 when skipped).
    pub written: usize,
    /// True when every tile existed and the case was skipped.
    pub skipped: bool,
}

/// Preprocesses one case and writes its tiles x mirrors as raw f32 bins into `bin_dir`
/// (`CASE_lbx_ubx_lby_uby_lbz_ubz_m.bin`, the recipe's patched `_internal_predict_3D_3Dconv_tiled`), and
/// its line into `shape_file` (`all_shape.txt`). Existing complete tiles are kept unless `overwrite`, so an
/// interrupted run resumes; `all_shape.txt` is updated last and atomically.
#[allow(clippy::too_many_arguments)]
pub fn preprocess_to_bins(
    case: &Case,
    model: &ModelSpec,
    bin_dir: &Path,
    shape_file: &Path,
    step_size: f64,
    mirrors: MirrorSet,
    overwrite: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BinsReport, PipelineError> {
    let data = prepare_case(case, model, false)?.data;
    let (c, z, y, x) = data.dim();
    let grid = TileGrid::new([z, y, x], model.patch, step_size)?;
    let record = ShapeRecord::new(case.name.clone(), grid.padded_shape(), grid.steps().clone())
        .map_err(bins_err)?;
    std::fs::create_dir_all(bin_dir).map_err(|e| PipelineError::io(bin_dir, e))?;
    let p = model.patch;
    let tile_bytes = (c * p[0] * p[1] * p[2] * 4) as u64;
    let mut buf = vec![0f32; c * p[0] * p[1] * p[2]];
    let ms: Vec<Mirror> = mirrors.iter().collect();
    let total = grid.len() * ms.len();
    let (mut written, mut done) = (0, 0);
    for tile in grid.tiles() {
        let bounds = TileBounds::from_start(tile.lb, p).map_err(bins_err)?;
        for &m in &ms {
            let name =
                TileName::new(case.name.clone(), bounds, bin_mirror(m)?).map_err(bins_err)?;
            let path = bin_dir.join(name.file_name());
            let complete = std::fs::metadata(&path)
                .map(|md| md.len() == tile_bytes)
                .unwrap_or(false);
            if overwrite || !complete {
                extract_tile(data.view(), &grid, &tile, m, &mut buf)?;
                nnu_bins::write_f32_file(&path, &buf).map_err(bins_err)?;
                written += 1;
            }
            done += 1;
            progress(done, total);
        }
    }
    nnu_bins::upsert_all_shape(shape_file, &record).map_err(bins_err)?;
    Ok(BinsReport {
        record,
        skipped: written == 0,
        written,
    })
}

/// Merges the output dumps of one case (final head of each tile x mirror, found in `dumps`) into the
/// segmentation, as the recipe's postprocess does: softmax per pass, flip back, mirror mean, Gaussian
/// weighting, then the export. The case's images are read again for the crop box and geometry. A case with
/// missing or short dumps is refused, with the list of what is missing; nothing is written for it.
pub fn postprocess_from_dumps(
    case: &Case,
    model: &ModelSpec,
    record: &ShapeRecord,
    dumps: &DumpIndex,
    out_dir: &Path,
    opts: &PredictOptions,
) -> Result<(), PipelineError> {
    crate::predict::check_memory(case, model, opts)?;
    let PreparedCase {
        data,
        props,
        geometry,
        preview_image,
    } = prepare_case(case, model, opts.preview)?;
    let (_, z, y, x) = data.dim();
    drop(data);
    let p = model.patch;
    let grid = TileGrid::with_steps([z, y, x], p, record.steps.clone())?;
    if grid.padded_shape() != record.padded_shape {
        return Err(PipelineError::Shape(format!(
            "{}: all_shape.txt says padded shape {:?}, the preprocessed case pads to {:?} (other model or spacing?)",
            case.name,
            record.padded_shape,
            grid.padded_shape()
        )));
    }
    let bin_mirrors: Vec<BinMirror> = opts
        .mirrors
        .iter()
        .map(bin_mirror)
        .collect::<Result<_, _>>()?;
    let report = dumps
        .check_case(record, p, &bin_mirrors, model.num_classes)
        .map_err(bins_err)?;
    if !report.is_complete() {
        // One line: the counts and the first offending dump (the report's own Display lists them all).
        let mut msg = format!("{} dumps expected", report.expected);
        let mut path = out_dir.join(format!("{}.nii.gz", case.name));
        if let Some(first) = report.missing.first() {
            msg += &format!(
                ", {} missing (the first: the output of {first})",
                report.missing.len()
            );
        }
        if let Some((dump, found, expected)) = report.wrong_size.first() {
            msg += &format!(
                ", {} with a wrong size (this one: {found} bytes, expected {expected})",
                report.wrong_size.len()
            );
            path = dump.clone();
        }
        return Err(PipelineError::Input {
            path,
            msg: format!("{msg}; {}.nii.gz not written", case.name),
        });
    }
    let agg_opts = AggregatorOptions {
        mirrors: opts.mirrors,
        use_gaussian: opts.use_gaussian,
    };
    // Non-finite logits (what an fp16 overflow on the accelerator gives) would turn the Gaussian mean
    // into NaN over whole regions: refuse the case and name the dumps.
    let mut nonfinite: Vec<PathBuf> = Vec::new();
    for tile in grid.tiles() {
        let bounds = TileBounds::from_start(tile.lb, p).map_err(bins_err)?;
        for m in opts.mirrors.iter() {
            let name =
                TileName::new(case.name.clone(), bounds, bin_mirror(m)?).map_err(bins_err)?;
            let bin = dumps.open(&name, model.num_classes).map_err(bins_err)?;
            if bin.as_slice().iter().any(|v| !v.is_finite()) {
                nonfinite.push(bin.path().to_path_buf());
            }
        }
    }
    if let Some(first) = nonfinite.first() {
        return Err(PipelineError::Input {
            path: first.clone(),
            msg: format!(
                "NaN or infinite logits (fp16 overflow on the device?): {} of {} dumps of the case hold \
                 non-finite values ({}); {}.nii.gz not written",
                nonfinite.len(),
                report.expected,
                nonfinite
                    .iter()
                    .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", "),
                case.name
            ),
        });
    }
    let mut agg = Aggregator::new(model.num_classes, grid.clone(), agg_opts)?;
    for tile in grid.tiles() {
        let bounds = TileBounds::from_start(tile.lb, p).map_err(bins_err)?;
        for m in opts.mirrors.iter() {
            let name =
                TileName::new(case.name.clone(), bounds, bin_mirror(m)?).map_err(bins_err)?;
            let bin = dumps.open(&name, model.num_classes).map_err(bins_err)?;
            let view = bin
                .view5([1, model.num_classes, p[0], p[1], p[2]])
                .map_err(bins_err)?;
            agg.add(tile.index, m, view.index_axis(Axis(0), 0))?;
        }
    }
    let probs = agg.finish()?;
    write_outputs(
        &probs,
        &props,
        model,
        &geometry,
        preview_image.as_ref().map(|a| a.view()),
        out_dir,
        &case.name,
        opts,
    )
}

/// An upper bound of the bytes the tiles of `case` will take, from its header alone (no crop assumed):
/// the planned resampled shape, padded and tiled with `step_size`, x mirrors x channels x patch x 4 bytes.
pub fn estimate_case_bytes(
    case: &Case,
    model: &ModelSpec,
    step_size: f64,
    mirrors: usize,
) -> Result<u64, PipelineError> {
    let h = nnu_volume::read_header(&case.files[0])?;
    let shape = nnu_preprocessing::case::planned_shape(
        h.shape_zyx,
        h.geometry.spacing_zyx(),
        &model.params,
    )?;
    let grid = TileGrid::new(shape, model.patch, step_size)?;
    let per_tile = model.num_modalities * model.patch.iter().product::<usize>() * 4;
    Ok((grid.len() * mirrors * per_tile) as u64)
}

/// Free bytes on the file system holding `dir` (the nearest existing ancestor), from `statvfs`.
pub fn free_disk_bytes(dir: &Path) -> Option<u64> {
    let mut d = dir;
    while !d.exists() {
        d = d.parent()?;
    }
    let c = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is a properly sized out-parameter that statvfs
    // fills on success (return 0); it is only read in that case.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail * st.f_frsize)
}

//! The file path to accelerators: a case preprocessed into tile bins (`nnu-preprocess`) and output dumps
//! merged back into a segmentation (`nnu-postprocess`), in the recipe's formats (`nnu-bins`).

use std::path::{Path, PathBuf};

use ndarray::Axis;
use nnu_bins::{DumpIndex, Mirror as BinMirror, ShapeRecord, TileBounds, TileName};
use nnu_preprocessing::CaseProperties;
use nnu_tiling::{extract_tile, Aggregator, AggregatorOptions, Mirror, MirrorSet, TileGrid};

use crate::cases::Case;
use crate::model::ModelSpec;
use crate::stages::{
    check_memory, prepare_case, read_case_images, write_outputs, PredictOptions, PreparedCase,
};
use crate::PipelineError;

pub(crate) fn bins_err(e: nnu_bins::BinsError) -> PipelineError {
    PipelineError::Bins(e)
}

/// The bin-file mirror with the same recipe index as a tiling mirror.
pub(crate) fn bin_mirror(m: Mirror) -> Result<BinMirror, PipelineError> {
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

/// How long [`preprocess_to_bins`] waits by default for another run's lock on `all_shape.txt` (held only
/// while that run rewrites the file's few lines): 60 s.
pub const SHAPE_FILE_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Options of [`preprocess_to_bins`]. Defaults are nnU-Net's (step 0.5, all eight mirrors), existing
/// complete tiles kept, and [`SHAPE_FILE_LOCK_TIMEOUT`].
#[derive(Debug, Clone, Copy)]
pub struct BinsOptions {
    /// Sliding-window step as a fraction of the patch (default 0.5).
    pub step_size: f64,
    /// The mirrors written per tile (default all eight).
    pub mirrors: MirrorSet,
    /// Rewrite tiles that exist (default false: complete tiles are kept, so a run resumes).
    pub overwrite: bool,
    /// How long to wait for another run's lock on `all_shape.txt` before the case fails (default
    /// [`SHAPE_FILE_LOCK_TIMEOUT`]).
    pub shape_lock_timeout: std::time::Duration,
}

impl Default for BinsOptions {
    fn default() -> Self {
        BinsOptions {
            step_size: 0.5,
            mirrors: MirrorSet::all(),
            overwrite: false,
            shape_lock_timeout: SHAPE_FILE_LOCK_TIMEOUT,
        }
    }
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

/// nnU-Net's properties of a case as `nnu-preprocess` saved them beside `all_shape.txt`, read back by
/// `nnu-postprocess` instead of preprocessing the case again.
#[derive(Debug, Clone)]
pub struct SavedProperties {
    /// The file they were read from.
    pub path: PathBuf,
    /// Shapes, crop box, spacings and geometry of the case.
    pub props: CaseProperties,
}

/// The properties file of case `name` beside `shape_file`: `CASE.json` in the same folder, the same format
/// as the `CASE.json` of `nnu-preprocess --npy` (nnU-Net's `properties`, JSON).
pub fn properties_path(shape_file: &Path, name: &str) -> PathBuf {
    shape_file
        .parent()
        .unwrap_or(Path::new(""))
        .join(format!("{name}.json"))
}

/// Writes `props` (a v1 [`CaseProperties`], or an nnunetv2 [`nnu_preprocessing::v2::V2CaseProperties`])
/// to `path` as pretty JSON, atomically.
pub fn write_properties<P: serde::Serialize>(path: &Path, props: &P) -> Result<(), PipelineError> {
    let text =
        serde_json::to_string_pretty(props).map_err(|e| PipelineError::Shape(e.to_string()))?;
    crate::atomic_write(path, |w| std::io::Write::write_all(w, text.as_bytes()))
}

/// Reads the properties at `path`; `None` when there is no such file (tiles made by an older
/// `nnu-preprocess` or by the recipe's scripts), an error naming the file when it cannot be parsed.
pub fn read_properties(path: &Path) -> Result<Option<SavedProperties>, PipelineError> {
    Ok(
        read_json(path, "the properties nnu-preprocess writes")?.map(|props| SavedProperties {
            path: path.to_path_buf(),
            props,
        }),
    )
}

/// The JSON file at `path` as a `T`; `None` when there is no such file, an error naming the file and
/// saying it is not `what` when it cannot be parsed as one.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<T>, PipelineError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PipelineError::io(path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PipelineError::Input {
            path: path.to_path_buf(),
            msg: format!("not {what}: {e}"),
        })
}

/// Preprocesses one case and writes its tiles x mirrors as raw f32 bins into `bin_dir`
/// (`CASE_lbx_ubx_lby_uby_lbz_ubz_m.bin`, the recipe's patched `_internal_predict_3D_3Dconv_tiled`), and
/// its line into `shape_file` (`all_shape.txt`), with the case's properties beside it ([`properties_path`]).
/// Existing complete tiles are kept unless `overwrite`, so an interrupted run resumes; the properties and
/// then `all_shape.txt` are written last, each atomically, `all_shape.txt` under its lock (`.all_shape.txt.lock`
/// beside it) so that runs on other cases can share it. Runs that may overlap on one case take its lock
/// first ([`crate::run::with_case_lock`], as `nnu-preprocess` does). When another run holds the lock of
/// `all_shape.txt` for longer than `opts.shape_lock_timeout`, the case fails with an error naming the file,
/// its tiles kept.
pub fn preprocess_to_bins(
    case: &Case,
    model: &ModelSpec,
    bin_dir: &Path,
    shape_file: &Path,
    opts: &BinsOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BinsReport, PipelineError> {
    refuse_cascade(model)?;
    let PreparedCase { data, props, .. } = prepare_case(case, model, false)?;
    let (_, z, y, x) = data.dim();
    let grid = TileGrid::new([z, y, x], model.patch, opts.step_size)?;
    write_case_tiles(
        &case.name,
        data.view(),
        &grid,
        bin_dir,
        shape_file,
        &props,
        opts,
        progress,
    )
}

/// Writes the tiles x `opts.mirrors` of `data` (c, z, y, x, preprocessed) over `grid` as raw f32 bins
/// into `bin_dir` (complete ones kept unless `opts.overwrite`), then `props` as the case's
/// `CASE.json` beside `shape_file` ([`write_properties`]) and the case's line in `shape_file` under its lock: the part of
/// [`preprocess_to_bins`] shared with [`crate::bins_v2::preprocess_to_bins_v2`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_case_tiles(
    name: &str,
    data: ndarray::ArrayView4<f32>,
    grid: &TileGrid,
    bin_dir: &Path,
    shape_file: &Path,
    props: &impl serde::Serialize,
    opts: &BinsOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BinsReport, PipelineError> {
    let c = data.dim().0;
    let record = ShapeRecord::new(name.to_owned(), grid.padded_shape(), grid.steps().clone())
        .map_err(bins_err)?;
    std::fs::create_dir_all(bin_dir).map_err(|e| PipelineError::io(bin_dir, e))?;
    let p = grid.patch();
    let tile_bytes = (c * p[0] * p[1] * p[2] * 4) as u64;
    let mut buf = vec![0f32; c * p[0] * p[1] * p[2]];
    let ms: Vec<Mirror> = opts.mirrors.iter().collect();
    let total = grid.len() * ms.len();
    let (mut written, mut done) = (0, 0);
    for tile in grid.tiles() {
        let bounds = TileBounds::from_start(tile.lb, p).map_err(bins_err)?;
        for &m in &ms {
            let tile_name =
                TileName::new(name.to_owned(), bounds, bin_mirror(m)?).map_err(bins_err)?;
            let path = bin_dir.join(tile_name.file_name());
            let complete = std::fs::metadata(&path)
                .map(|md| md.len() == tile_bytes)
                .unwrap_or(false);
            if opts.overwrite || !complete {
                extract_tile(data, grid, &tile, m, &mut buf)?;
                nnu_bins::write_f32_file(&path, &buf).map_err(bins_err)?;
                written += 1;
            }
            done += 1;
            progress(done, total);
        }
    }
    write_properties(&properties_path(shape_file, name), props)?;
    // Runs on other cases (shards, a second process) update the same all_shape.txt: one at a time.
    let _shape_lock = crate::run::wait_for_file_lock(shape_file, opts.shape_lock_timeout)?;
    nnu_bins::upsert_all_shape(shape_file, &record).map_err(bins_err)?;
    Ok(BinsReport {
        record,
        skipped: written == 0,
        written,
    })
}

/// Merges the output dumps of one case (final head of each tile x mirror, found in `dumps`) into the
/// segmentation, as the recipe's postprocess does: softmax per pass, flip back, mirror mean, Gaussian
/// weighting, then the export. The shapes, crop box and geometry come from `saved` (the properties
/// `nnu-preprocess` wrote, [`read_properties`]); the case's images are still read and must match them
/// (shape and geometry of the first image, the model's target spacing). Without saved properties the case
/// is preprocessed again to learn them. A case with missing or short dumps is refused, with the list of
/// what is missing; nothing is written for it.
pub fn postprocess_from_dumps(
    case: &Case,
    model: &ModelSpec,
    record: &ShapeRecord,
    saved: Option<&SavedProperties>,
    dumps: &DumpIndex,
    out_dir: &Path,
    opts: &PredictOptions,
) -> Result<(), PipelineError> {
    check_memory(case, model, opts)?;
    let ([z, y, x], props, geometry, preview_image) = match saved {
        Some(saved) => {
            let (vols, geometry) = read_case_images(case, model.num_modalities)?;
            check_saved_properties(case, saved, model, &vols, &geometry)?;
            let preview_image = if opts.preview {
                vols.into_iter().next().map(|v| v.data)
            } else {
                None
            };
            let props = saved.props.clone();
            (props.size_after_resampling, props, geometry, preview_image)
        }
        None => {
            let PreparedCase {
                data,
                props,
                geometry,
                preview_image,
            } = prepare_case(case, model, opts.preview)?;
            let (_, z, y, x) = data.dim();
            ([z, y, x], props, geometry, preview_image)
        }
    };
    let p = model.patch;
    let grid = checked_grid(
        case,
        record,
        [z, y, x],
        p,
        opts.mirrors,
        model.num_classes,
        dumps,
        out_dir,
    )?;
    let agg_opts = AggregatorOptions {
        mirrors: opts.mirrors,
        use_gaussian: opts.use_gaussian,
    };
    // A buffer that cannot be allocated is this case's error naming its image (not an abort).
    let oom = crate::stages::naming_image(case.first_file()?);
    let mut agg = Aggregator::new(model.num_classes, grid.clone(), agg_opts)
        .map_err(PipelineError::from)
        .map_err(&oom)?;
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
    let probs = agg.finish().map_err(PipelineError::from).map_err(&oom)?;
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
    .map_err(&oom)
}

/// The tile grid of a case's preprocessed `shape` with `record`'s window starts, refused when it does not
/// pad to `record`'s padded shape (another model or spacing), then [`check_dumps`]: what both
/// postprocesses (v1 and nnunetv2) check before merging.
#[allow(clippy::too_many_arguments)]
pub(crate) fn checked_grid(
    case: &Case,
    record: &ShapeRecord,
    shape: [usize; 3],
    p: [usize; 3],
    mirrors: MirrorSet,
    heads: usize,
    dumps: &DumpIndex,
    out_dir: &Path,
) -> Result<TileGrid, PipelineError> {
    let grid = TileGrid::with_steps(shape, p, record.steps.clone())?;
    if grid.padded_shape() != record.padded_shape {
        return Err(PipelineError::Shape(format!(
            "{}: all_shape.txt says padded shape {:?}, the preprocessed case pads to {:?} (other model or spacing?)",
            case.name,
            record.padded_shape,
            grid.padded_shape()
        )));
    }
    check_dumps(case, record, &grid, p, mirrors, heads, dumps, out_dir)?;
    Ok(grid)
}

/// Refuses a case whose dumps are not all there and whole (every tile of `grid` x `mirrors`, `heads`
/// channels of `patch`), or hold NaN or infinite logits: one error naming the first offending file and
/// the counts; `NAME.nii.gz` in `out_dir` is named when a dump is missing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_dumps(
    case: &Case,
    record: &ShapeRecord,
    grid: &TileGrid,
    p: [usize; 3],
    mirrors: MirrorSet,
    heads: usize,
    dumps: &DumpIndex,
    out_dir: &Path,
) -> Result<(), PipelineError> {
    let bin_mirrors: Vec<BinMirror> = mirrors.iter().map(bin_mirror).collect::<Result<_, _>>()?;
    let report = dumps
        .check_case(record, p, &bin_mirrors, heads)
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
    // Non-finite logits (what an fp16 overflow on the accelerator gives) would turn the Gaussian mean
    // into NaN over whole regions: refuse the case and name the dumps.
    let mut nonfinite: Vec<PathBuf> = Vec::new();
    for tile in grid.tiles() {
        let bounds = TileBounds::from_start(tile.lb, p).map_err(bins_err)?;
        for m in mirrors.iter() {
            let name =
                TileName::new(case.name.clone(), bounds, bin_mirror(m)?).map_err(bins_err)?;
            let bin = dumps.open(&name, heads).map_err(bins_err)?;
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
    Ok(())
}

/// Refuses saved properties that do not belong to the case's image as it is now, or to this model.
fn check_saved_properties(
    case: &Case,
    saved: &SavedProperties,
    model: &ModelSpec,
    vols: &[nnu_volume::Volume<f32>],
    geometry: &nnu_volume::Geometry,
) -> Result<(), PipelineError> {
    let p = &saved.props;
    let first = case.first_file()?;
    let shape = vols.first().map(|v| v.shape_zyx());
    let mismatch = if shape != Some(p.original_size_of_raw_data) {
        Some(format!(
            "shape {:?}, {} says {:?}",
            shape,
            saved.path.display(),
            p.original_size_of_raw_data
        ))
    } else if geometry.spacing != p.itk_spacing
        || geometry.origin != p.itk_origin
        || geometry.direction != p.itk_direction
    {
        Some(format!(
            "spacing {:?}, origin {:?}, direction {:?}; {} says {:?}, {:?}, {:?}",
            geometry.spacing,
            geometry.origin,
            geometry.direction,
            saved.path.display(),
            p.itk_spacing,
            p.itk_origin,
            p.itk_direction
        ))
    } else {
        None
    };
    if let Some(m) = mismatch {
        return Err(PipelineError::Input {
            path: first.to_path_buf(),
            msg: format!("the image changed since nnu-preprocess: {m}"),
        });
    }
    if p.spacing_after_resampling != model.params.target_spacing {
        return Err(PipelineError::Input {
            path: saved.path.clone(),
            msg: format!(
                "preprocessed to spacing {:?}, the model's target spacing is {:?} (other model?)",
                p.spacing_after_resampling, model.params.target_spacing
            ),
        });
    }
    Ok(())
}

/// An upper bound of the bytes the tiles of `case` will take, from its header alone (no crop assumed):
/// the planned resampled shape, padded and tiled with `step_size`, x mirrors x channels x patch x 4 bytes.
pub fn estimate_case_bytes(
    case: &Case,
    model: &ModelSpec,
    step_size: f64,
    mirrors: usize,
) -> Result<u64, PipelineError> {
    let (shape_zyx, geometry) = crate::cases::case_header(case)?;
    let shape =
        nnu_preprocessing::case::planned_shape(shape_zyx, geometry.spacing_zyx(), &model.params)?;
    let grid = TileGrid::new(shape, model.patch, step_size)?;
    let per_tile = model.num_modalities * model.patch.iter().product::<usize>() * 4;
    Ok((grid.len() * mirrors * per_tile) as u64)
}

/// The disk budget of a bins run: the free space of the output folder and the tiles' estimated bytes
/// ([`estimate_case_bytes`]) of the cases admitted so far.
#[derive(Debug, Clone)]
pub struct DiskBudget {
    /// Free bytes where the tiles go (`None`: unknown, nothing is refused).
    pub free: Option<u64>,
    /// Estimated bytes of the admitted cases.
    pub need: u64,
    /// Tiles are rewritten in place (`--overwrite`): nothing is refused.
    pub overwrite: bool,
}

/// A size in the unit that shows it (a small case is "2.3 MiB of tiles", never "0.0 GiB").
pub fn human_bytes(b: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

impl DiskBudget {
    /// The budget of a run writing into `dir` ([`free_disk_bytes`]).
    pub fn new(dir: &Path, overwrite: bool) -> Self {
        DiskBudget {
            free: free_disk_bytes(dir),
            need: 0,
            overwrite,
        }
    }

    /// Adds the estimate of `case`. A case whose header alone means more tiles than there is free disk (a
    /// huge or lying header) is refused, naming its first file; a case whose header cannot be read is
    /// admitted with nothing added (it fails in its own run, with its own error).
    pub fn admit(
        &mut self,
        case: &Case,
        model: &ModelSpec,
        step_size: f64,
        mirrors: usize,
    ) -> Result<(), PipelineError> {
        self.admit_estimate(case, estimate_case_bytes(case, model, step_size, mirrors))
    }

    /// [`DiskBudget::admit`] with the case's estimate already made (for any model kind, e.g.
    /// [`crate::bins_v2::BinsModel::estimate_case_bytes`]).
    pub fn admit_estimate(
        &mut self,
        case: &Case,
        estimate: Result<u64, PipelineError>,
    ) -> Result<(), PipelineError> {
        match estimate {
            Ok(bytes) if self.free.is_some_and(|f| bytes > f) && !self.overwrite => {
                Err(PipelineError::Input {
                    path: case.first_file()?.to_path_buf(),
                    msg: format!(
                        "its header means up to {} of tiles, {} free",
                        human_bytes(bytes),
                        human_bytes(self.free.unwrap_or(0))
                    ),
                })
            }
            Ok(bytes) => {
                self.need += bytes;
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    /// Refuses the run, naming `dir`, when the admitted cases together need more than is free.
    pub fn check_total(&self, dir: &Path) -> Result<(), PipelineError> {
        match self.free {
            Some(free) if self.need > free && !self.overwrite => Err(PipelineError::Input {
                path: dir.to_path_buf(),
                msg: format!(
                    "not enough disk: the tiles need up to {}, {} free (try --disable-tta, or nnu-predict which needs no scratch files)",
                    human_bytes(self.need),
                    human_bytes(free)
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// Preprocesses one case and writes the volume as `CASE.npy` (f32, channels x Z x Y x X) and nnU-Net's
/// properties as `CASE.json` into `out_dir` (`nnu-preprocess --npy`). No `.npy` is left without its
/// `.json`: when the properties cannot be written, the volume is removed again.
pub fn preprocess_to_npy(
    case: &Case,
    model: &ModelSpec,
    out_dir: &Path,
) -> Result<(), PipelineError> {
    refuse_cascade(model)?;
    let npy_path = out_dir.join(format!("{}.npy", case.name));
    let r = (|| -> Result<(), PipelineError> {
        let PreparedCase { data, props, .. } = prepare_case(case, model, false)?;
        crate::npy::write_npy_f32(&npy_path, data.view().into_dyn())?;
        let json = out_dir.join(format!("{}.json", case.name));
        let text = serde_json::to_string_pretty(&props)
            .map_err(|e| PipelineError::Shape(e.to_string()))?;
        crate::atomic_write(&json, |w| std::io::Write::write_all(w, text.as_bytes()))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&npy_path);
    }
    r
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

/// The file path to accelerators does not take cascade stages yet (the previous stage's channels are
/// stacked by `nnu-predict` only): an error naming the model folder.
fn refuse_cascade(model: &ModelSpec) -> Result<(), PipelineError> {
    if model.cascade_classes.is_some() {
        return Err(PipelineError::Input {
            path: model.folder.dir.clone(),
            msg: "a cascade trainer's model (3d_cascade_fullres): the bins path does not take the previous \
                  stage's segmentation; predict it with nnu-predict --prev-stage DIR"
                .into(),
        });
    }
    Ok(())
}

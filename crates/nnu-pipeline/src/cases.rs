//! Finding cases: nnU-Net raw naming, MSD naming, DICOM series, lists, fold filters and deterministic
//! sharding; reading a case's images whichever form they come in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nnu_dicom::{DicomError, DicomSeries};
use nnu_volume::{Geometry, Volume};

use crate::PipelineError;

/// One case to predict: its name and one image file per modality, in modality order, or one DICOM
/// series.
///
/// A 4-D MSD file (modalities on the 4th axis) is a single entry in `files`; the reader splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Case identifier (`liver_3` for `liver_3_0000.nii.gz` or `liver_3.nii.gz`; for a DICOM series
    /// [`DicomSeries::case_name`], e.g. `PATIENT_s3_1.2.840...`).
    pub name: String,
    /// Image files, modality 0 first; for a DICOM series the folder it was found in (one entry: the series
    /// is one modality, and errors about the case name that folder).
    pub files: Vec<PathBuf>,
    /// The DICOM series this case is, `None` for NIfTI files.
    pub dicom: Option<DicomSeries>,
}

impl Case {
    /// A case of NIfTI files (modality 0 first).
    pub fn nifti(name: impl Into<String>, files: Vec<PathBuf>) -> Self {
        Case {
            name: name.into(),
            files,
            dicom: None,
        }
    }

    /// The case of a DICOM series: named by [`DicomSeries::case_name`], `files` holding its folder.
    pub fn dicom(series: DicomSeries) -> Self {
        Case {
            name: series.case_name(),
            files: vec![series.folder.clone()],
            dicom: Some(series),
        }
    }

    /// The first image file (modality 0), whose geometry nnU-Net takes for the case (for a DICOM series
    /// its folder: read it with [`read_case_channels`]); an error naming the case when `files` is empty.
    pub fn first_file(&self) -> Result<&Path, PipelineError> {
        self.files
            .first()
            .map(PathBuf::as_path)
            .ok_or_else(|| PipelineError::Input {
                path: PathBuf::from(&self.name),
                msg: format!("case '{}' has no image file", self.name),
            })
    }
}

/// Shape (z, y, x) and geometry of a case's first image from its header(s) alone (no voxels read): the
/// NIfTI header of modality 0, or every slice header of a DICOM series ([`nnu_dicom::read_series_header`],
/// which also refuses what [`read_case_channels`] would refuse).
pub fn case_header(case: &Case) -> Result<([usize; 3], Geometry), PipelineError> {
    if let Some(series) = &case.dicom {
        let h = nnu_dicom::read_series_header(series)?;
        return Ok((h.shape_zyx, h.geometry));
    }
    let h = nnu_volume::read_header(case.first_file()?)?;
    Ok((h.shape_zyx, h.geometry))
}

/// Every image channel of a case as float volumes, modality 0 first: each NIfTI file's channels
/// ([`nnu_volume::read_volume_channels`]), or the DICOM series read as SimpleITK reads it
/// ([`nnu_dicom::read_series`]: one channel).
pub fn read_case_channels(case: &Case) -> Result<Vec<Volume<f32>>, PipelineError> {
    if let Some(series) = &case.dicom {
        return Ok(vec![nnu_dicom::read_series(series)?]);
    }
    let mut vols = Vec::new();
    for f in &case.files {
        vols.extend(nnu_volume::read_volume_channels(f)?);
    }
    Ok(vols)
}

/// The first image of a case (modality 0 of a NIfTI case, the series of a DICOM case), e.g. for a preview.
pub fn read_first_image(case: &Case) -> Result<Volume<f32>, PipelineError> {
    match &case.dicom {
        Some(series) => Ok(nnu_dicom::read_series(series)?),
        None => Ok(nnu_volume::read_volume(case.first_file()?)?),
    }
}

fn strip_nifti_ext(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".nii.gz")
        .or_else(|| file_name.strip_suffix(".nii"))
}

/// Splits `NAME_0000` into (`NAME`, 0) when it ends in an underscore and four digits.
fn split_modality(stem: &str) -> Option<(&str, usize)> {
    let (name, idx) = stem.rsplit_once('_')?;
    if idx.len() == 4 && idx.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() {
        Some((name, idx.parse().ok()?))
    } else {
        None
    }
}

/// Lists the cases under `input`.
///
/// - a NIfTI file: that case (and, for `NAME_0000.nii.gz`, its sibling modalities `NAME_0001...`);
/// - a folder: nnU-Net raw naming (`NAME_XXXX.nii.gz`, one file per modality) when every NIfTI file in it
///   follows it, MSD naming (`NAME.nii.gz`, one file per case, 3-D or 4-D) when none does; a folder that
///   mixes both is an error listing the files that do not fit (never a guess);
/// - a folder without NIfTI files: the DICOM series in it and in its subfolders, one case per series
///   ([`nnu_dicom::find_series`]: files with the `DICM` preamble, any extension, grouped by
///   SeriesInstanceUID; a series' geometry is checked when it is read, so a refused series fails as its
///   own case);
/// - a `.txt` file: one image path per line (blank lines and `#` comments skipped), each resolved as above.
///
/// Cases come back sorted by name; a name given twice is an error.
pub fn discover_cases(input: &Path) -> Result<Vec<Case>, PipelineError> {
    let meta = std::fs::metadata(input).map_err(|e| PipelineError::io(input, e))?;
    let mut cases = if meta.is_dir() {
        cases_in_dir(input)?
    } else if input.extension().is_some_and(|e| e == "txt") {
        let text = std::fs::read_to_string(input).map_err(|e| PipelineError::io(input, e))?;
        let base = input.parent().unwrap_or(Path::new("."));
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let p = base.join(line);
            // A listed image that is absent fails as its own case (one error, the others still run).
            let case = if p.is_file() {
                case_for_file(&p)?
            } else {
                missing_case(&p)?
            };
            out.push(case);
        }
        out
    } else {
        vec![case_for_file(input)?]
    };
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    for w in cases.windows(2) {
        if w[0].name == w[1].name {
            return Err(PipelineError::Input {
                path: input.to_path_buf(),
                msg: format!("case '{}' is listed twice", w[0].name),
            });
        }
    }
    Ok(cases)
}

fn case_for_file(file: &Path) -> Result<Case, PipelineError> {
    let fname = file
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| PipelineError::Input {
            path: file.to_path_buf(),
            msg: "not a file name".into(),
        })?;
    if strip_nifti_ext(fname).is_none() && nnu_dicom::is_dicom_file(file) {
        return Err(PipelineError::Input {
            path: file.to_path_buf(),
            msg: "a DICOM file: give the folder of its series instead (-i FOLDER; one case per series)"
                .into(),
        });
    }
    let stem = strip_nifti_ext(fname).ok_or_else(|| PipelineError::Input {
        path: file.to_path_buf(),
        msg: "not a NIfTI file (.nii or .nii.gz)".into(),
    })?;
    if !file.is_file() {
        return Err(PipelineError::Input {
            path: file.to_path_buf(),
            msg: "no such file".into(),
        });
    }
    if let Some((name, 0)) = split_modality(stem) {
        let dir = file.parent().unwrap_or(Path::new("."));
        let ext = &fname[stem.len()..];
        let mut files = vec![file.to_path_buf()];
        for m in 1.. {
            let sib = dir.join(format!("{name}_{m:04}{ext}"));
            if !sib.is_file() {
                break;
            }
            files.push(sib);
        }
        return Ok(Case::nifti(name, files));
    }
    Ok(Case::nifti(stem, vec![file.to_path_buf()]))
}

/// The case a listed but absent image would be (`NAME` of `NAME_0000.nii.gz` or `NAME.nii.gz`); reading
/// it fails later with the file named.
fn missing_case(file: &Path) -> Result<Case, PipelineError> {
    let stem = file
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(strip_nifti_ext)
        .ok_or_else(|| PipelineError::Input {
            path: file.to_path_buf(),
            msg: "not a NIfTI file (.nii or .nii.gz)".into(),
        })?;
    let name = match split_modality(stem) {
        Some((n, 0)) => n,
        _ => stem,
    };
    Ok(Case::nifti(name, vec![file.to_path_buf()]))
}

fn cases_in_dir(dir: &Path) -> Result<Vec<Case>, PipelineError> {
    let mut niftis = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))? {
        let entry = entry.map_err(|e| PipelineError::io(dir, e))?;
        let path = entry.path();
        if let Some(stem) = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(strip_nifti_ext)
        {
            if path.is_file() {
                niftis.push((stem.to_string(), path));
            }
        }
    }
    if niftis.is_empty() {
        return match nnu_dicom::find_series(dir) {
            Ok(series) => Ok(series.into_iter().map(Case::dicom).collect()),
            Err(DicomError::NoSeries { .. }) => Err(PipelineError::Input {
                path: dir.to_path_buf(),
                msg: "no .nii or .nii.gz files, and no DICOM files in it or its subfolders".into(),
            }),
            Err(e) => Err(e.into()),
        };
    }
    let (raw, other): (Vec<_>, Vec<_>) = niftis
        .iter()
        .partition(|(stem, _)| split_modality(stem).is_some());
    if !raw.is_empty() && !other.is_empty() {
        // Guessing either way reads a file wrongly (a label copied beside raw-named images would be
        // predicted as a CT, and its outputs would get the images' names).
        let mut names: Vec<String> = other
            .iter()
            .map(|(_, p)| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        return Err(PipelineError::Input {
            path: dir.to_path_buf(),
            msg: format!(
                "mixes nnU-Net raw naming (CASE_0000.nii.gz: {} file(s)) with {} file(s) that do not follow \
                 it ({}{}); move those out, or list the images in a .txt file",
                raw.len(),
                names.len(),
                shown,
                if names.len() > 5 { ", ..." } else { "" }
            ),
        });
    }
    if raw.is_empty() {
        return Ok(niftis
            .into_iter()
            .map(|(name, path)| Case::nifti(name, vec![path]))
            .collect());
    }
    let mut by_case: BTreeMap<String, BTreeMap<usize, PathBuf>> = BTreeMap::new();
    for (stem, path) in niftis {
        if let Some((name, m)) = split_modality(&stem) {
            by_case.entry(name.to_string()).or_default().insert(m, path);
        }
    }
    let mut cases = Vec::with_capacity(by_case.len());
    for (name, mods) in by_case {
        let n = mods.len();
        if mods.keys().copied().ne(0..n) {
            return Err(PipelineError::Input {
                path: dir.to_path_buf(),
                msg: format!(
                    "case '{name}' has modalities {:?}; expected _0000 .. _{:04} without gaps",
                    mods.keys().collect::<Vec<_>>(),
                    n.saturating_sub(1)
                ),
            });
        }
        cases.push(Case::nifti(name, mods.into_values().collect()));
    }
    Ok(cases)
}

/// A deterministic share of a dataset: shard `index` of `count` (0-based), so that N machines split a dataset
/// with no coordination (a Slurm array's `SLURM_ARRAY_TASK_ID`, a Kubernetes indexed Job's
/// `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0 <= index < count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// Parses `K/N`, with `0 <= K < N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/N, got '{s}'"))?;
        let index: usize = k
            .trim()
            .parse()
            .map_err(|_| format!("bad shard index '{k}'"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("bad shard count '{n}'"))?;
        if count == 0 || index >= count {
            return Err(format!("shard K/N needs 0 <= K < N, got {index}/{count}"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Keeps the cases of this shard: the sorted case list taken round-robin, so every shard gets a
    /// near-equal share and the union of all shards is the whole list.
    pub fn select<T>(&self, sorted: Vec<T>) -> Vec<T> {
        sorted
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, c)| c)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn raw_naming_groups_modalities() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "a_0000.nii.gz",
            "a_0001.nii.gz",
            "b_x_0000.nii.gz",
            "b_x_0001.nii.gz",
        ] {
            touch(&d.path().join(f));
        }
        let cases = discover_cases(d.path()).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].name, "a");
        assert_eq!(cases[1].name, "b_x");
        assert_eq!(cases[1].files.len(), 2);
        assert!(cases[1].files[1].ends_with("b_x_0001.nii.gz"));
        let single = discover_cases(&d.path().join("a_0000.nii.gz")).unwrap();
        assert_eq!(single[0].files.len(), 2);
    }

    #[test]
    fn msd_naming_and_gaps() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("liver_3.nii.gz"));
        touch(&d.path().join("liver_10.nii"));
        let cases = discover_cases(d.path()).unwrap();
        assert_eq!(
            cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["liver_10", "liver_3"]
        );
        let g = tempfile::tempdir().unwrap();
        touch(&g.path().join("a_0000.nii.gz"));
        touch(&g.path().join("a_0002.nii.gz"));
        let err = discover_cases(g.path()).unwrap_err().to_string();
        assert!(err.contains("without gaps"), "{err}");
    }

    #[test]
    fn a_folder_of_dicom_series_is_one_case_per_series() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dicom");
        let cases = discover_cases(&fixtures.join("flipped")).unwrap();
        assert_eq!(cases.len(), 1);
        let c = &cases[0];
        assert_eq!(c.name, "PHANTOM-B_s4_1.2.826.0.1.3680043.8.498.4242.4");
        assert_eq!(c.files, [fixtures.join("flipped")]);
        assert_eq!(c.dicom.as_ref().map(|s| s.files.len()), Some(8));
        let (shape, geometry) = case_header(c).unwrap();
        assert_eq!(shape, [8, 20, 24]);
        assert_eq!(geometry.spacing, [0.7, 0.9, 3.0]);
        let vols = read_case_channels(c).unwrap();
        assert_eq!(vols.len(), 1);
        assert_eq!(vols[0].geometry, geometry);
        // The whole fixture tree: four phantoms, pydicom's CT and its RLE MR, sorted by name.
        let all = discover_cases(&fixtures).unwrap();
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        // NIfTI files win over DICOM in the same folder; an empty folder names both.
        let d = tempfile::tempdir().unwrap();
        let err = discover_cases(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("no .nii or .nii.gz files, and no DICOM files"),
            "{err}"
        );
        touch(&d.path().join("a.nii.gz"));
        std::fs::copy(
            fixtures.join("CT_small/CT_small.dcm"),
            d.path().join("CT_small.dcm"),
        )
        .unwrap();
        let cases = discover_cases(d.path()).unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].dicom, None);
        let err = discover_cases(&d.path().join("CT_small.dcm"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give the folder of its series"), "{err}");
    }

    #[test]
    fn shards_partition_the_list() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s.select((0..8).collect()), vec![1, 4, 7]);
        let all: Vec<usize> = (0..3)
            .flat_map(|k| Shard { index: k, count: 3 }.select((0..8).collect::<Vec<_>>()))
            .collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>());
        assert!("3/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}

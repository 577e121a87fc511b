//! Output dumps of `benchmark` / `ais_bench` (or `nnu-infer`), read straight from their folders.
//!
//! For an input tile `STEM.bin` a tool writes one file per model output, `STEM_H.bin`: the old `benchmark`
//! numbers them `_1 .. _5` (`_1` is the final head), `ais_bench` `_0 .. _4` (`_0` is the final head); an
//! export without deep supervision has only the final one. Each is `(1, classes, P, P, P)` f32 logits.
//! `benchmark` writes into `result/dumpOutput_deviceD/`, one folder per device.
//!
//! The recipe's `clear2345.sh` deletes the other heads and moves every device folder into one before its
//! postprocess can run. [`DumpIndex`] makes that unnecessary: it scans several folders at once, keeps only
//! the final head of each tile, detects the numbering per folder, and reports what is missing, short or
//! unexpected.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{BinsError, Result};
use crate::name::{DumpName, Mirror, TileName};
use crate::shape::ShapeRecord;
use crate::tile::{file_len, MappedBin};

/// How a tool numbers the outputs of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DumpNaming {
    /// Huawei's old `benchmark`: outputs `_1 .. _N`, `_1` is the final head.
    Benchmark,
    /// `ais_bench` / `ais_infer`: outputs `_0 .. _N-1`, `_0` is the final head.
    AisBench,
}

impl DumpNaming {
    /// The number of the first (final-head) output.
    pub fn first_index(self) -> u32 {
        match self {
            DumpNaming::Benchmark => 1,
            DumpNaming::AisBench => 0,
        }
    }

    /// The dump file name of model output `output` (0-based) for the input tile named `input_stem`.
    pub fn file_name(self, input_stem: &str, output: u32) -> String {
        format!("{input_stem}_{}.bin", output + self.first_index())
    }
}

impl fmt::Display for DumpNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DumpNaming::Benchmark => "benchmark (_1 is the final head)",
            DumpNaming::AisBench => "ais_bench (_0 is the final head)",
        })
    }
}

/// The final-head dump of one tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

/// One scanned folder and the numbering found (or imposed) there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpFolder {
    /// The folder.
    pub path: PathBuf,
    /// Its numbering.
    pub naming: DumpNaming,
    /// Final-head dumps indexed from it.
    pub dumps: usize,
}

/// Index of the final-head dumps found in one or more folders: tile name -> file.
///
/// A folder given to [`DumpIndex::scan`] that holds no `.bin` file itself but has sub-folders is scanned one
/// level down instead (so `result/` covers `result/dumpOutput_device0..3/`).
#[derive(Clone, Debug, Default)]
pub struct DumpIndex {
    dumps: HashMap<TileName, DumpFile>,
    folders: Vec<DumpFolder>,
    unparsed: Vec<PathBuf>,
    duplicates: Vec<(PathBuf, PathBuf)>,
}

impl DumpIndex {
    /// Scans `folders`. With `naming = None` each folder's numbering is detected: `ais_bench` if any dump
    /// there ends in `_0`, else `benchmark` (this also reads the recipe's `ais_bench` flow, which renames `_0`
    /// to `_1` after deleting the other heads).
    pub fn scan<P: AsRef<Path>>(folders: &[P], naming: Option<DumpNaming>) -> Result<Self> {
        let mut index = DumpIndex::default();
        for folder in folders {
            let folder = folder.as_ref();
            let (bins, subdirs) = list_folder(folder)?;
            if bins.is_empty() && !subdirs.is_empty() {
                for sub in subdirs {
                    let (bins, _) = list_folder(&sub)?;
                    index.add_folder(&sub, bins, naming);
                }
            } else {
                index.add_folder(folder, bins, naming);
            }
        }
        Ok(index)
    }

    fn add_folder(&mut self, folder: &Path, bins: Vec<(String, u64)>, naming: Option<DumpNaming>) {
        let mut parsed = Vec::with_capacity(bins.len());
        for (name, len) in bins {
            match DumpName::parse(&name) {
                Ok(d) => parsed.push((d, name, len)),
                Err(_) => self.unparsed.push(folder.join(&name)),
            }
        }
        let naming = naming.unwrap_or_else(|| {
            if parsed.iter().any(|(d, _, _)| d.head == 0) {
                DumpNaming::AisBench
            } else {
                DumpNaming::Benchmark
            }
        });
        let first = naming.first_index();
        let mut count = 0;
        for (d, name, len) in parsed {
            if d.head != first {
                continue;
            }
            let path = folder.join(name);
            match self.dumps.get(&d.tile) {
                Some(prev) => self.duplicates.push((prev.path.clone(), path)),
                None => {
                    self.dumps.insert(d.tile, DumpFile { path, len });
                    count += 1;
                }
            }
        }
        self.folders.push(DumpFolder {
            path: folder.to_path_buf(),
            naming,
            dumps: count,
        });
    }

    /// The final-head dump of `tile`, if found.
    pub fn get(&self, tile: &TileName) -> Option<&DumpFile> {
        self.dumps.get(tile)
    }

    /// Opens the dump of `tile` and checks it holds `(1, classes, P0, P1, P2)` for the tile's size.
    pub fn open(&self, tile: &TileName, classes: usize) -> Result<MappedBin> {
        let s = tile.bounds.size();
        let shape = [1, classes, s[0], s[1], s[2]];
        match self.get(tile) {
            Some(d) => MappedBin::open_shape(&d.path, &shape),
            None => Err(BinsError::io(
                tile.file_name(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no dump for this tile in the scanned folders",
                ),
            )),
        }
    }

    /// Number of final-head dumps indexed.
    pub fn len(&self) -> usize {
        self.dumps.len()
    }

    /// Whether no dump was found.
    pub fn is_empty(&self) -> bool {
        self.dumps.is_empty()
    }

    /// The folders scanned, with their numbering.
    pub fn folders(&self) -> &[DumpFolder] {
        &self.folders
    }

    /// `.bin` files whose names are not dump names.
    pub fn unparsed(&self) -> &[PathBuf] {
        &self.unparsed
    }

    /// Final-head dumps of the same tile found twice (first kept, second ignored).
    pub fn duplicates(&self) -> &[(PathBuf, PathBuf)] {
        &self.duplicates
    }

    /// Checks the dumps of one case: every tile of `record` with size `patch` for each of `mirrors` must
    /// have a dump of `(1, classes, patch)` f32. Dumps of this case for other tiles or mirrors are reported
    /// as extra.
    pub fn check_case(
        &self,
        record: &ShapeRecord,
        patch: [usize; 3],
        mirrors: &[Mirror],
        classes: usize,
    ) -> Result<DumpReport> {
        let expected = record.tile_names(patch, mirrors)?;
        let bytes = file_len(&[1, classes, patch[0], patch[1], patch[2]]);
        let mut report = DumpReport {
            case: record.case.clone(),
            expected: expected.len(),
            ..DumpReport::default()
        };
        let mut wanted = std::collections::HashSet::with_capacity(expected.len());
        for t in expected {
            match self.dumps.get(&t) {
                None => report.missing.push(t.file_name()),
                Some(d) if d.len != bytes => report.wrong_size.push((d.path.clone(), d.len, bytes)),
                Some(_) => {}
            }
            wanted.insert(t);
        }
        let mut extra: Vec<PathBuf> = self
            .dumps
            .iter()
            .filter(|(t, _)| t.case == record.case && !wanted.contains(*t))
            .map(|(_, d)| d.path.clone())
            .collect();
        extra.sort();
        report.extra = extra;
        Ok(report)
    }
}

/// `.bin` files (name, size) and sub-folders of one folder.
type Listing = (Vec<(String, u64)>, Vec<PathBuf>);

/// Lists the `.bin` files (name, size) and the sub-folders of `folder`.
fn list_folder(folder: &Path) -> Result<Listing> {
    let mut bins = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(|e| BinsError::io(folder, e))? {
        let entry = entry.map_err(|e| BinsError::io(folder, e))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| BinsError::io(&path, e))?;
        if meta.is_dir() {
            dirs.push(path);
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if meta.is_file() && name.ends_with(".bin") && !name.starts_with('.') {
            bins.push((name.to_string(), meta.len()));
        }
    }
    bins.sort();
    dirs.sort();
    Ok((bins, dirs))
}

/// What [`DumpIndex::check_case`] found for one case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpReport {
    /// The case checked.
    pub case: String,
    /// Number of dumps expected.
    pub expected: usize,
    /// Input tile file names whose final-head dump was not found.
    pub missing: Vec<String>,
    /// Dumps with the wrong size: (path, bytes found, bytes expected).
    pub wrong_size: Vec<(PathBuf, u64, u64)>,
    /// Dumps of this case that match no expected tile (other bounds or mirrors).
    pub extra: Vec<PathBuf>,
}

impl DumpReport {
    /// Whether every expected dump is present with the right size.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.wrong_size.is_empty()
    }
}

impl fmt::Display for DumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "case {}: {} dumps expected, {} missing, {} with a wrong size, {} extra",
            self.case,
            self.expected,
            self.missing.len(),
            self.wrong_size.len(),
            self.extra.len()
        )?;
        const SHOW: usize = 5;
        for m in self.missing.iter().take(SHOW) {
            write!(f, "\n  missing: output of {m}")?;
        }
        if self.missing.len() > SHOW {
            write!(f, "\n  ... and {} more missing", self.missing.len() - SHOW)?;
        }
        for (p, found, exp) in self.wrong_size.iter().take(SHOW) {
            write!(
                f,
                "\n  wrong size: {}: {found} bytes, expected {exp}",
                p.display()
            )?;
        }
        if self.wrong_size.len() > SHOW {
            write!(
                f,
                "\n  ... and {} more with a wrong size",
                self.wrong_size.len() - SHOW
            )?;
        }
        for p in self.extra.iter().take(SHOW) {
            write!(f, "\n  extra: {}", p.display())?;
        }
        if self.extra.len() > SHOW {
            write!(f, "\n  ... and {} more extra", self.extra.len() - SHOW)?;
        }
        Ok(())
    }
}

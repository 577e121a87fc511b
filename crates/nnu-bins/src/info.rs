//! `.info` lists for `benchmark`: lines `INDEX PATH WIDTH HEIGHT`, and their N-way shards.
//!
//! This reproduces the recipe's `gen_dataset_info.py bin BIN_DIR OUT.info 128 128`: one line per `*.bin`
//! file of `BIN_DIR`, the path written as `BIN_DIR` joined with the file name (relative if `BIN_DIR` is),
//! the two numbers copied as given. It then splits the list into `sth1.info .. sthN.info` (N = 4 in the
//! recipe) next to `OUT.info`: with `step = len / N` (integer division), shard `k` (1-based) takes entries
//! `(k-1)*step .. k*step` and the last shard takes everything from `(N-1)*step` on. Each shard is
//! re-indexed from 0. With fewer files than shards the first shards are empty files, as in the recipe.
//!
//! One deliberate difference: the recipe lists files in `glob` order (directory order, unspecified); we
//! sort by file name so that the lists, and hence which device gets which tile, are reproducible.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::error::{BinsError, Result};

/// The recipe's shard count (`sth1.info .. sth4.info`).
pub const DEFAULT_SHARDS: usize = 4;
/// The recipe's `input_width` / `input_height` (the patch edge).
pub const DEFAULT_SIZE: u32 = 128;

/// One line of a `.info` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoEntry {
    /// 0-based index within its file.
    pub index: usize,
    /// The tile path as written (UTF-8, no whitespace).
    pub path: String,
    /// `input_width` column.
    pub width: u32,
    /// `input_height` column.
    pub height: u32,
}

impl std::fmt::Display for InfoEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.index, self.path, self.width, self.height
        )
    }
}

/// The `.bin` files directly inside `dir` (regular files whose name ends in `.bin`, hidden files and the
/// temporaries of interrupted writes excluded), as `dir` joined with the name, sorted by name.
pub fn list_bins(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| BinsError::io(dir, e))? {
        let entry = entry.map_err(|e| BinsError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".bin") || name.starts_with('.') {
            continue;
        }
        let ft = entry
            .file_type()
            .map_err(|e| BinsError::io(entry.path(), e))?;
        let is_file = ft.is_file() || (ft.is_symlink() && entry.path().is_file());
        if is_file {
            names.push(name.to_string());
        }
    }
    names.sort_unstable();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Info entries for `paths`, indexed from 0. An error names a path that is not UTF-8 or has whitespace.
pub fn entries(paths: &[PathBuf], width: u32, height: u32) -> Result<Vec<InfoEntry>> {
    paths
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let s = p.to_str().ok_or_else(|| BinsError::BadInfoPath {
                path: p.clone(),
                reason: "not valid UTF-8",
            })?;
            if s.chars().any(char::is_whitespace) {
                return Err(BinsError::BadInfoPath {
                    path: p.clone(),
                    reason: "contains whitespace",
                });
            }
            Ok(InfoEntry {
                index,
                path: s.to_string(),
                width,
                height,
            })
        })
        .collect()
}

/// The recipe's contiguous split of `len` items into `n` shards (see the module docs).
pub fn shard_ranges(len: usize, n: usize) -> Result<Vec<Range<usize>>> {
    if n == 0 {
        return Err(BinsError::BadShardCount(n));
    }
    let step = len / n;
    Ok((0..n)
        .map(|k| {
            let end = if k + 1 == n { len } else { (k + 1) * step };
            k * step..end
        })
        .collect())
}

/// Splits `entries` into `n` shards with [`shard_ranges`], each re-indexed from 0.
pub fn shard(entries: &[InfoEntry], n: usize) -> Result<Vec<Vec<InfoEntry>>> {
    Ok(shard_ranges(entries.len(), n)?
        .into_iter()
        .map(|r| {
            entries[r]
                .iter()
                .enumerate()
                .map(|(index, e)| InfoEntry { index, ..e.clone() })
                .collect()
        })
        .collect())
}

/// The text of a `.info` file: one line per entry, each ending in `\n`.
pub fn format_info(entries: &[InfoEntry]) -> String {
    entries.iter().map(|e| format!("{e}\n")).collect()
}

/// Writes a `.info` file atomically.
pub fn write_info(path: impl AsRef<Path>, entries: &[InfoEntry]) -> Result<()> {
    write_atomic(path.as_ref(), format_info(entries).as_bytes())
}

/// Reads a `.info` file. Blank lines are skipped; paths cannot contain whitespace.
pub fn read_info(path: impl AsRef<Path>) -> Result<Vec<InfoEntry>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| BinsError::io(path, e))?;
    parse_info(path, &text)
}

/// Parses the text of a `.info` file (`path` is only used in errors), as [`read_info`] does.
pub fn parse_info(path: &Path, text: &str) -> Result<Vec<InfoEntry>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| BinsError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            return Err(bad(format!(
                "expected 'INDEX PATH WIDTH HEIGHT', found {} fields",
                f.len()
            )));
        }
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| bad(format!("{s:?} is not a number")))
        };
        let (index, width, height) = (num(f[0])?, num(f[2])?, num(f[3])?);
        out.push(InfoEntry {
            index: usize::try_from(index).map_err(|_| bad("index too large".into()))?,
            path: f[1].to_string(),
            width: u32::try_from(width).map_err(|_| bad("width too large".into()))?,
            height: u32::try_from(height).map_err(|_| bad("height too large".into()))?,
        });
    }
    Ok(out)
}

/// The file name of shard `k` (1-based): `sthK.info`.
pub fn shard_file_name(k: usize) -> String {
    format!("sth{k}.info")
}

/// Options of [`write_info_set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoOptions {
    /// Number of shards `sth1.info..`; `0` writes none. Default 4, as the recipe.
    pub shards: usize,
    /// `input_width` column. Default 128.
    pub width: u32,
    /// `input_height` column. Default 128.
    pub height: u32,
}

impl Default for InfoOptions {
    fn default() -> Self {
        InfoOptions {
            shards: DEFAULT_SHARDS,
            width: DEFAULT_SIZE,
            height: DEFAULT_SIZE,
        }
    }
}

/// What [`write_info_set`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoSummary {
    /// Number of `.bin` files listed.
    pub files: usize,
    /// The shard files written, with their entry counts.
    pub shards: Vec<(PathBuf, usize)>,
}

/// The recipe's `gen_dataset_info.py`: lists the `.bin` files of `bin_dir` into `out_info` and writes the
/// shards `sth1.info..` in the folder of `out_info`. All files are written atomically.
pub fn write_info_set(
    bin_dir: impl AsRef<Path>,
    out_info: impl AsRef<Path>,
    opts: InfoOptions,
) -> Result<InfoSummary> {
    let out_info = out_info.as_ref();
    let paths = list_bins(bin_dir)?;
    let all = entries(&paths, opts.width, opts.height)?;
    write_info(out_info, &all)?;
    let mut shards = Vec::new();
    if opts.shards > 0 {
        let folder = out_info.parent().unwrap_or(Path::new(""));
        for (k, part) in shard(&all, opts.shards)?.into_iter().enumerate() {
            let p = folder.join(shard_file_name(k + 1));
            write_info(&p, &part)?;
            shards.push((p, part.len()));
        }
    }
    Ok(InfoSummary {
        files: all.len(),
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_split() {
        assert_eq!(shard_ranges(10, 4).unwrap(), vec![0..2, 2..4, 4..6, 6..10]);
        assert_eq!(shard_ranges(3, 4).unwrap(), vec![0..0, 0..0, 0..0, 0..3]);
        assert_eq!(shard_ranges(8, 1).unwrap(), vec![0..8]);
        assert!(shard_ranges(8, 0).is_err());
        let e = entries(
            &(0..5)
                .map(|i| PathBuf::from(format!("d/{i}.bin")))
                .collect::<Vec<_>>(),
            128,
            128,
        )
        .unwrap();
        let s = shard(&e, 2).unwrap();
        assert_eq!(
            format_info(&s[1]),
            "0 d/2.bin 128 128\n1 d/3.bin 128 128\n2 d/4.bin 128 128\n"
        );
    }

    #[test]
    fn info_set_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let bins = dir.path().join("bins");
        std::fs::create_dir(&bins).unwrap();
        for n in ["b_0.bin", "a_0.bin", "c.txt", ".x.bin.1.2.tmp", "c_1.bin"] {
            std::fs::write(bins.join(n), b"").unwrap();
        }
        std::fs::create_dir(bins.join("sub.bin")).unwrap();
        let out = dir.path().join("all.info");
        let s = write_info_set(
            &bins,
            &out,
            InfoOptions {
                shards: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.files, 3);
        let all = read_info(&out).unwrap();
        let names: Vec<_> = all
            .iter()
            .map(|e| e.path.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names, ["a_0.bin", "b_0.bin", "c_1.bin"]);
        assert_eq!(read_info(dir.path().join("sth2.info")).unwrap().len(), 2);
        assert_eq!(s.shards[0].1, 1);
        assert!(entries(&[PathBuf::from("a b.bin")], 1, 1).is_err());
    }
}

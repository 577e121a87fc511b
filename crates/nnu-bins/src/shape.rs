//! `all_shape.txt`: one line per case, `CASE X Y Z-sx0,sx1,...-sy0,...-sz0,...`.
//!
//! `X Y Z` is the padded shape and `sx.., sy.., sz..` the sliding-window starts, both in array axes
//! `(0, 1, 2)` (the recipe's `x, y, z`; see [`crate::name`] for the mapping). The recipe's `save_as_shape`
//! opens the file with mode `"w"` for every case, so its file only ever holds the last case, and its reader
//! only reads the first line. We keep one line per case ([`upsert_all_shape`] replaces the line of a case
//! that is written again); a file holding one case is byte-identical to the recipe's.

use std::fmt;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::{BinsError, Result};
use crate::name::{check_case_name, Mirror, TileBounds, TileName};

/// The usual file name, in the recipe's `INFERENCE_SHAPE_PATH` folder.
pub const ALL_SHAPE_FILE: &str = "all_shape.txt";

/// The most tiles one record may describe. A 512 x 512 x 900 CT at 128^3 patches and step 0.5 has about
/// 1,200; the bound only stops a hostile or corrupt line from asking for a tile list beyond memory.
pub const MAX_TILES_PER_CASE: usize = 1_000_000;

/// One case's line of `all_shape.txt`: padded shape and sliding-window starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeRecord {
    /// The case name used in tile names.
    pub case: String,
    /// Shape of the padded volume, array axes `(0, 1, 2)`.
    pub padded_shape: [usize; 3],
    /// Sliding-window starts per array axis `(0, 1, 2)`.
    pub steps: [Vec<usize>; 3],
}

impl ShapeRecord {
    /// A record; an error if the case name cannot be written or an axis has no step.
    pub fn new(
        case: impl Into<String>,
        padded_shape: [usize; 3],
        steps: [Vec<usize>; 3],
    ) -> Result<Self> {
        let case = case.into();
        check_case_name(&case)?;
        if steps.iter().any(Vec::is_empty) {
            return Err(BinsError::BadShapeRecord {
                case,
                reason: "every axis needs at least one step".into(),
            });
        }
        Ok(ShapeRecord {
            case,
            padded_shape,
            steps,
        })
    }

    /// Parses one line (without its line break).
    pub fn parse_line(line: &str) -> std::result::Result<Self, String> {
        let tokens: Vec<&str> = line.split(' ').collect();
        if tokens.len() != 4 {
            return Err(format!(
                "expected 'CASE X Y Z-steps-steps-steps' (4 space-separated fields), found {} fields",
                tokens.len()
            ));
        }
        let parts: Vec<&str> = tokens[3].split('-').collect();
        if parts.len() != 4 {
            return Err(format!(
                "expected 'Z-sx,..-sy,..-sz,..' in the last field, found {:?}",
                tokens[3]
            ));
        }
        let int = |s: &str| -> std::result::Result<usize, String> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?} is not a non-negative integer"));
            }
            s.parse().map_err(|_| format!("{s:?} is too large"))
        };
        let shape = [int(tokens[1])?, int(tokens[2])?, int(parts[0])?];
        let list = |s: &str| {
            s.split(',')
                .map(int)
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let steps = [list(parts[1])?, list(parts[2])?, list(parts[3])?];
        ShapeRecord::new(tokens[0], shape, steps).map_err(|e| e.to_string())
    }

    /// The line as the recipe writes it, without the line break.
    pub fn line(&self) -> String {
        self.to_string()
    }

    /// Number of tiles (product of the step counts).
    pub fn num_tiles(&self) -> usize {
        self.steps
            .iter()
            .map(Vec::len)
            .fold(1usize, |a, b| a.saturating_mul(b))
    }

    /// Checks that every tile of size `patch` lies inside the padded shape, that the steps are strictly
    /// increasing and that there are at most [`MAX_TILES_PER_CASE`] tiles.
    pub fn validate(&self, patch: [usize; 3]) -> Result<()> {
        if self.num_tiles() > MAX_TILES_PER_CASE {
            return Err(self.bad(format!(
                "{} x {} x {} tiles, more than {MAX_TILES_PER_CASE}",
                self.steps[0].len(),
                self.steps[1].len(),
                self.steps[2].len()
            )));
        }
        for a in 0..3 {
            if patch[a] == 0 {
                return Err(self.bad(format!("patch size {patch:?} has an empty axis")));
            }
            // nnU-Net's sliding-window steps are strictly increasing; a repeated step would give two tiles
            // the same file name (and a hostile line of repeats an enormous tile list).
            if let Some(w) = self.steps[a].windows(2).find(|w| w[0] >= w[1]) {
                return Err(self.bad(format!(
                    "steps on axis {a} are not strictly increasing ({} then {})",
                    w[0], w[1]
                )));
            }
            if let Some(&s) = self.steps[a].iter().find(|&&s| {
                s.checked_add(patch[a])
                    .is_none_or(|end| end > self.padded_shape[a])
            }) {
                return Err(self.bad(format!(
                    "step {s} + patch {} exceeds the padded size {} on axis {a}",
                    patch[a], self.padded_shape[a]
                )));
            }
        }
        Ok(())
    }

    fn bad(&self, reason: String) -> BinsError {
        BinsError::BadShapeRecord {
            case: self.case.clone(),
            reason,
        }
    }

    /// Tile bounds in the recipe's order: axis 0 outer, axis 2 inner.
    pub fn tiles(&self, patch: [usize; 3]) -> Result<Vec<TileBounds>> {
        self.validate(patch)?;
        let mut out = Vec::with_capacity(self.num_tiles());
        for &a in &self.steps[0] {
            for &b in &self.steps[1] {
                for &c in &self.steps[2] {
                    out.push(TileBounds::from_start([a, b, c], patch)?);
                }
            }
        }
        Ok(out)
    }

    /// Every input tile name of this case in the order the recipe writes them (tiles outer, `mirrors` inner).
    pub fn tile_names(&self, patch: [usize; 3], mirrors: &[Mirror]) -> Result<Vec<TileName>> {
        let tiles = self.tiles(patch)?;
        let mut out = Vec::with_capacity(tiles.len() * mirrors.len());
        for bounds in tiles {
            for &m in mirrors {
                out.push(TileName {
                    case: self.case.clone(),
                    bounds,
                    mirror: m,
                });
            }
        }
        Ok(out)
    }
}

impl fmt::Display for ShapeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.padded_shape;
        write!(f, "{} {} {} {}", self.case, s[0], s[1], s[2])?;
        for axis in &self.steps {
            f.write_str("-")?;
            for (i, v) in axis.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{v}")?;
            }
        }
        Ok(())
    }
}

/// Parses the text of an `all_shape.txt` (`path` is only used in errors). Blank lines are skipped; `\r\n`
/// line ends are accepted, as the recipe's reader does.
pub fn parse_all_shape(path: &Path, text: &str) -> Result<Vec<ShapeRecord>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let rec = ShapeRecord::parse_line(line).map_err(|reason| BinsError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        })?;
        if out.iter().any(|r: &ShapeRecord| r.case == rec.case) {
            return Err(BinsError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("case {} appears twice", rec.case),
            });
        }
        out.push(rec);
    }
    Ok(out)
}

/// Reads an `all_shape.txt`.
pub fn read_all_shape(path: impl AsRef<Path>) -> Result<Vec<ShapeRecord>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| BinsError::io(path, e))?;
    parse_all_shape(path, &text)
}

/// The file text for `records`: one line each, each ending in `\n`.
pub fn format_all_shape(records: &[ShapeRecord]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

/// Writes `records` to `path` atomically, one line each.
pub fn write_all_shape(path: impl AsRef<Path>, records: &[ShapeRecord]) -> Result<()> {
    write_atomic(path.as_ref(), format_all_shape(records).as_bytes())
}

/// Adds `record` to the file at `path` (created if absent), replacing the line of the same case if there is
/// one, and rewrites the file atomically. Not safe against two processes updating the same file at once.
pub fn upsert_all_shape(path: impl AsRef<Path>, record: &ShapeRecord) -> Result<()> {
    let path = path.as_ref();
    let mut records = match std::fs::read_to_string(path) {
        Ok(text) => parse_all_shape(path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(BinsError::io(path, e)),
    };
    match records.iter_mut().find(|r| r.case == record.case) {
        Some(r) => *r = record.clone(),
        None => records.push(record.clone()),
    }
    write_all_shape(path, &records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip() {
        let line =
            "liver_11 437 309 570-0,62,124,185,247,309-0,60,121,181-0,63,126,189,253,316,379,442";
        let r = ShapeRecord::parse_line(line).unwrap();
        assert_eq!(r.padded_shape, [437, 309, 570]);
        assert_eq!(r.num_tiles(), 6 * 4 * 8);
        assert_eq!(r.line(), line);
        let names = r.tile_names([128; 3], &Mirror::set(true)).unwrap();
        assert_eq!(names.len(), 192 * 8);
        assert_eq!(names[0].file_name(), "liver_11_0_128_0_128_0_128_0.bin");
        assert_eq!(names[9].file_name(), "liver_11_0_128_0_128_63_191_1.bin");
        assert!(r.tiles([129, 128, 128]).is_err());
        // Repeated steps (two tiles with one file name; a hostile line of repeats) are refused before any
        // tile list is built.
        let repeats = format!("c 4 4 4-{}-0-0", vec!["0"; 100_000].join(","));
        let r = ShapeRecord::parse_line(&repeats).unwrap();
        let e = r.tiles([4, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("not strictly increasing"), "{e}");
        let steps: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let steps = steps.join(",");
        let many = format!("d 300 300 300-{steps}-{steps}-{steps}");
        let r = ShapeRecord::parse_line(&many).unwrap();
        let e = r.tiles([1, 1, 1]).unwrap_err().to_string();
        assert!(e.contains("200 x 200 x 200 tiles"), "{e}");
    }

    #[test]
    fn bad_lines() {
        for l in [
            "a 1 2",
            "a 1 2 3-0-0",
            "a 1 2 3-0-0-x",
            "a 1 2 3-0--0",
            "a b 2 3-0-0-0",
            " 1 2 3-0-0-0",
        ] {
            assert!(ShapeRecord::parse_line(l).is_err(), "{l}");
        }
        let e =
            parse_all_shape(Path::new("s.txt"), "a 1 2 3-0-0-0\r\n\nb 1 2 3-0-0-\n").unwrap_err();
        assert!(e.to_string().starts_with("s.txt:3:"), "{e}");
    }

    #[test]
    fn upsert_replaces_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(ALL_SHAPE_FILE);
        let a = ShapeRecord::new("a", [4, 4, 4], [vec![0], vec![0], vec![0]]).unwrap();
        let b = ShapeRecord::new("b_1", [6, 4, 4], [vec![0, 2], vec![0], vec![0]]).unwrap();
        upsert_all_shape(&p, &a).unwrap();
        upsert_all_shape(&p, &b).unwrap();
        let a2 = ShapeRecord::new("a", [5, 4, 4], [vec![0, 1], vec![0], vec![0]]).unwrap();
        upsert_all_shape(&p, &a2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a 5 4 4-0,1-0-0\nb_1 6 4 4-0,2-0-0\n"
        );
        assert_eq!(read_all_shape(&p).unwrap(), vec![a2, b]);
    }
}

//! Tile and dump file names: `CASE_lbx_ubx_lby_uby_lbz_ubz_m.bin` and `CASE_..._m_H.bin`.
//!
//! # Axes
//!
//! The recipe's loop variables are nnU-Net's `x, y, z`, which name the axes of the preprocessed array
//! `data[c, x, y, z]` in order. Our arrays are in SimpleITK's numpy order `(z, y, x)` (see
//! `docs/architecture.md`), and the preprocessed array has the same memory order, so:
//!
//! | in the file name | recipe's variable | our array axis |
//! |---|---|---|
//! | `lbx_ubx` | `x` (outer loop) | axis 0 (slice axis, our `z`) |
//! | `lby_uby` | `y` | axis 1 (row, `y`) |
//! | `lbz_ubz` | `z` (inner loop) | axis 2 (column, our `x`) |
//!
//! [`TileBounds`] therefore stores `lower`/`upper` indexed by array axis `0, 1, 2`, which is also the order
//! in which they appear in the name.

use std::fmt;

use crate::error::{BinsError, Result};

/// Number of mirror combinations of the three spatial axes.
pub const MIRROR_COUNT: u8 = 8;

/// The recipe's mirror index `m` (file-name suffix), `0..8`.
///
/// The recipe flips the channel-first 4-D tile along these axes: m0 none, m1 (3), m2 (2), m3 (3, 2), m4 (1),
/// m5 (3, 1), m6 (2, 1), m7 (3, 2, 1). In spatial array axes `(0, 1, 2)`, bit 2 of `m` flips axis 0, bit 1
/// flips axis 1 and bit 0 flips axis 2. This is the order of the eight passes of nnU-Net v1's
/// `_internal_maybe_mirror_and_pred_3D` (nnunet 1.7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mirror(u8);

impl Mirror {
    /// No flip (m0), the only pass when test-time mirroring is disabled.
    pub const NONE: Mirror = Mirror(0);

    /// The mirror with index `m`; an error unless `m < 8`.
    pub fn new(m: u32) -> Result<Self> {
        if m < u32::from(MIRROR_COUNT) {
            Ok(Mirror(m as u8))
        } else {
            Err(BinsError::BadMirror(m))
        }
    }

    /// The mirror flipping the spatial array axes marked `true` in `(axis 0, axis 1, axis 2)`.
    pub fn from_flips(flips: [bool; 3]) -> Self {
        Mirror(u8::from(flips[0]) * 4 + u8::from(flips[1]) * 2 + u8::from(flips[2]))
    }

    /// The index `m` written in file names.
    pub fn index(self) -> u8 {
        self.0
    }

    /// Which spatial array axes `(0, 1, 2)` this mirror flips.
    pub fn flips(self) -> [bool; 3] {
        [self.0 & 4 != 0, self.0 & 2 != 0, self.0 & 1 != 0]
    }

    /// All eight mirrors in the recipe's order `m0..m7`.
    pub fn all() -> impl Iterator<Item = Mirror> + Clone {
        (0..MIRROR_COUNT).map(Mirror)
    }

    /// The mirrors the recipe writes: all eight with test-time mirroring, else only m0.
    pub fn set(mirroring: bool) -> Vec<Mirror> {
        if mirroring {
            Mirror::all().collect()
        } else {
            vec![Mirror::NONE]
        }
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Bounds of one tile in the padded volume: `lower..upper` per spatial array axis `(0, 1, 2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileBounds {
    /// Inclusive lower bounds (the sliding-window starts), array axes `(0, 1, 2)`.
    pub lower: [usize; 3],
    /// Exclusive upper bounds (`lower + patch_size`), array axes `(0, 1, 2)`.
    pub upper: [usize; 3],
}

impl TileBounds {
    /// Bounds `lower..upper`; an error if any axis is empty or inverted.
    pub fn new(lower: [usize; 3], upper: [usize; 3]) -> Result<Self> {
        if (0..3).any(|a| lower[a] >= upper[a]) {
            return Err(BinsError::BadBounds { lower, upper });
        }
        Ok(TileBounds { lower, upper })
    }

    /// The tile starting at `start` with size `patch` (array axes `(0, 1, 2)`); an error if an axis is
    /// empty or `start + patch` overflows.
    pub fn from_start(start: [usize; 3], patch: [usize; 3]) -> Result<Self> {
        let upper: [Option<usize>; 3] = std::array::from_fn(|a| start[a].checked_add(patch[a]));
        match upper {
            [Some(u0), Some(u1), Some(u2)] => TileBounds::new(start, [u0, u1, u2]),
            _ => Err(BinsError::BadBounds {
                lower: start,
                upper: upper.map(|u| u.unwrap_or(usize::MAX)),
            }),
        }
    }

    /// The tile's size per axis.
    pub fn size(&self) -> [usize; 3] {
        [
            self.upper[0] - self.lower[0],
            self.upper[1] - self.lower[1],
            self.upper[2] - self.lower[2],
        ]
    }
}

/// Checks that a case name can be written into the recipe's names and text files.
///
/// Refused: empty names, names with whitespace (the `.info` and `all_shape.txt` formats are space-separated)
/// and names with a path separator. Underscores are fine (names are parsed from the right). Note that the
/// recipe itself names a case `basename.split('.')[0]`: a case id containing a dot is truncated there; use
/// [`recipe_case_name`] to reproduce that.
pub fn check_case_name(case: &str) -> Result<()> {
    let reason = if case.is_empty() {
        "empty"
    } else if case.chars().any(char::is_whitespace) {
        "contains whitespace"
    } else if case.contains(['/', '\\']) {
        "contains a path separator"
    } else {
        return Ok(());
    };
    Err(BinsError::BadCaseName {
        case: case.to_string(),
        reason,
    })
}

/// The case name the recipe derives from an output file name or case id: everything before the first `.`
/// (`liver_132.nii.gz` and `liver_132` both give `liver_132`).
pub fn recipe_case_name(case_id: &str) -> &str {
    case_id.split('.').next().unwrap_or(case_id)
}

/// The name of one input tile: case, bounds in the padded volume and mirror index.
///
/// Formats as `CASE_lb0_ub0_lb1_ub1_lb2_ub2_m` (the file name adds `.bin`), exactly as the recipe's
/// `save_as_bin` (decimal integers joined by `_`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileName {
    /// The case name (may contain underscores).
    pub case: String,
    /// Bounds in the padded volume.
    pub bounds: TileBounds,
    /// Mirror index.
    pub mirror: Mirror,
}

impl TileName {
    /// A tile name; an error if the case name cannot be written (see [`check_case_name`]).
    pub fn new(case: impl Into<String>, bounds: TileBounds, mirror: Mirror) -> Result<Self> {
        let case = case.into();
        check_case_name(&case)?;
        Ok(TileName {
            case,
            bounds,
            mirror,
        })
    }

    /// The stem `CASE_lb0_ub0_lb1_ub1_lb2_ub2_m`.
    pub fn stem(&self) -> String {
        self.to_string()
    }

    /// The input file name `CASE_lb0_ub0_lb1_ub1_lb2_ub2_m.bin`.
    pub fn file_name(&self) -> String {
        format!("{self}.bin")
    }

    /// Parses an input tile name, with or without the `.bin` extension, from the right (so case names may
    /// contain underscores).
    pub fn parse(name: &str) -> Result<Self> {
        let stem = name.strip_suffix(".bin").unwrap_or(name);
        let (case, nums) = split_numbers::<7>(name, stem)?;
        tile_from_numbers(name, case, &nums)
    }
}

impl fmt::Display for TileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, u) = (self.bounds.lower, self.bounds.upper);
        write!(
            f,
            "{}_{}_{}_{}_{}_{}_{}_{}",
            self.case, l[0], u[0], l[1], u[1], l[2], u[2], self.mirror
        )
    }
}

/// The name of one output dump: the input tile's stem plus the output index `_H` (`_1.._5` from
/// `benchmark`, `_0.._4` from `ais_bench`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DumpName {
    /// The input tile this output belongs to.
    pub tile: TileName,
    /// The number after the last underscore.
    pub head: u32,
}

impl DumpName {
    /// Parses `CASE_lb0_ub0_lb1_ub1_lb2_ub2_m_H.bin` (extension optional) from the right.
    pub fn parse(name: &str) -> Result<Self> {
        let stem = name.strip_suffix(".bin").unwrap_or(name);
        let (case, nums) = split_numbers::<8>(name, stem)?;
        let tile = tile_from_numbers(name, case, &nums[..7])?;
        let head = u32::try_from(nums[7]).map_err(|_| bad(name, "output index too large"))?;
        Ok(DumpName { tile, head })
    }

    /// The file name `STEM_H.bin`.
    pub fn file_name(&self) -> String {
        format!("{}_{}.bin", self.tile, self.head)
    }
}

fn bad(name: &str, reason: impl Into<String>) -> BinsError {
    BinsError::BadName {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Splits `stem` into a case name and the last `N` underscore-separated decimal numbers.
fn split_numbers<'a, const N: usize>(name: &str, stem: &'a str) -> Result<(&'a str, [usize; N])> {
    let mut nums = [0usize; N];
    let mut rest = stem;
    for slot in nums.iter_mut().rev() {
        let (head, field) = rest.rsplit_once('_').ok_or_else(|| {
            bad(
                name,
                format!("expected a case name and {N} numbers separated by '_'"),
            )
        })?;
        if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                name,
                format!("{field:?} is not a non-negative integer"),
            ));
        }
        *slot = field
            .parse()
            .map_err(|_| bad(name, format!("{field:?} is too large")))?;
        rest = head;
    }
    if rest.is_empty() {
        return Err(bad(name, "empty case name"));
    }
    Ok((rest, nums))
}

fn tile_from_numbers(name: &str, case: &str, n: &[usize]) -> Result<TileName> {
    let bounds = TileBounds::new([n[0], n[2], n[4]], [n[1], n[3], n[5]])
        .map_err(|e| bad(name, e.to_string()))?;
    let mirror = u32::try_from(n[6])
        .ok()
        .and_then(|m| Mirror::new(m).ok())
        .ok_or_else(|| bad(name, format!("mirror index {} is outside 0..8", n[6])))?;
    TileName::new(case, bounds, mirror).map_err(|e| bad(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_with_underscores_in_case() {
        let b = TileBounds::new([0, 64, 5], [128, 192, 133]).unwrap();
        let t = TileName::new("my_liver_case_3", b, Mirror::new(5).unwrap()).unwrap();
        assert_eq!(t.file_name(), "my_liver_case_3_0_128_64_192_5_133_5.bin");
        assert_eq!(TileName::parse(&t.file_name()).unwrap(), t);
        let d = DumpName::parse("my_liver_case_3_0_128_64_192_5_133_5_1.bin").unwrap();
        assert_eq!(d.tile, t);
        assert_eq!(d.head, 1);
        assert_eq!(d.file_name(), "my_liver_case_3_0_128_64_192_5_133_5_1.bin");
    }

    #[test]
    fn bad_names_are_errors() {
        for name in [
            "liver_0_128_0_128_0_128.bin",   // 6 numbers
            "_0_128_0_128_0_128_0.bin",      // empty case
            "liver_0_128_0_128_0_128_8.bin", // mirror 8
            "liver_128_0_0_128_0_128_0.bin", // inverted
            "liver_0_128_0_12a_0_128_0.bin", // not a number
            "liver_0_128_0_-1_0_128_0.bin",  // sign
            "liver_0_128_0_128_0_128_",      // empty field
        ] {
            assert!(TileName::parse(name).is_err(), "{name}");
        }
        assert!(DumpName::parse("liver_0_128_0_128_0_128_0.bin").is_err());
    }

    #[test]
    fn mirror_flips_follow_the_recipe() {
        // m1 flips tile axis 3 (spatial 2), m2 axis 2 (spatial 1), m4 axis 1 (spatial 0).
        assert_eq!(Mirror::new(1).unwrap().flips(), [false, false, true]);
        assert_eq!(Mirror::new(2).unwrap().flips(), [false, true, false]);
        assert_eq!(Mirror::new(4).unwrap().flips(), [true, false, false]);
        assert_eq!(Mirror::new(7).unwrap().flips(), [true, true, true]);
        for m in Mirror::all() {
            assert_eq!(Mirror::from_flips(m.flips()), m);
        }
        assert!(Mirror::new(8).is_err());
    }

    #[test]
    fn overflowing_bounds_are_errors() {
        assert!(TileBounds::from_start([usize::MAX, 0, 0], [1, 1, 1]).is_err());
        assert!(TileBounds::from_start([0, usize::MAX - 1, 0], [1, 1, 1]).is_ok());
    }

    #[test]
    fn case_names() {
        assert_eq!(recipe_case_name("liver_132.nii.gz"), "liver_132");
        assert!(check_case_name("a b").is_err());
        assert!(check_case_name("").is_err());
        assert!(check_case_name("a/b").is_err());
        assert!(check_case_name("a-b_c").is_ok());
    }
}

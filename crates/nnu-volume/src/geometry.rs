//! Physical geometry of a volume, derived from a NIfTI header exactly as ITK 5.4's `NiftiImageIO` does,
//! and turned back into qform/sform fields for writing.
//!
//! # Reading: which transform ITK uses
//!
//! The rules below restate `itk::NiftiImageIO::ReadImageInformation` and
//! `SetImageIOOrientationFromNIfTI` (ITK 5.4, `Modules/IO/NIFTI/src/itkNiftiImageIO.cxx`, the version inside
//! SimpleITK 2.5) together with niftilib's `nifti_convert_nhdr2nim` / `nifti_quatern_to_mat44`, and
//! `ImageFileReader`'s handling of negative spacing. They are checked against SimpleITK 2.5.7 by the goldens
//! in `fixtures/nifti/`.
//!
//! 1. `pixdim[1..=3]` equal to 0 or not finite become 1 (niftilib). Spacing is `pixdim * scale` where
//!    `scale` is 1000 for metres, 1/1000 for microns, else 1 (`xyzt_units`); the origin is scaled alike.
//! 2. The qform matrix is the quaternion rotation scaled by `pixdim` (non-positive ones count as 1) with
//!    the third column negated when `pixdim[0] < 0` (qfac), offsets `qoffset_*`; a qform code <= 0 means
//!    "unknown" and the qform matrix is `diag(pixdim)`. The sform matrix is `srow_*` (all zero when its code
//!    is <= 0). Both are computed in `f64` and stored in `f32`, as niftilib's `mat44` does.
//! 3. Both codes unknown: origin 0, identity direction.
//! 4. Otherwise the sform wins when the two matrices agree (3x3 within 1e-5, translation within 1e-7), or
//!    when the sform is an invertible affine whose column-normalised 3x3 is orthonormal (within 1e-4) and
//!    either the qform code is unknown, or the sform code is 1 (`NIFTI_XFORM_SCANNER_ANAT`), or both codes
//!    are known and the two describe nearly the same space (offsets, spacings and rotations within 1e-4).
//!    Failing that the qform is used if its code is known; else the file is rejected (ITK: "ITK only
//!    supports orthonormal direction cosines").
//! 5. Direction columns are the chosen matrix's columns with x and y negated (RAS to LPS), normalised in
//!    `f64`; origin is `(-m[0][3], -m[1][3], m[2][3])`.
//! 6. A negative `pixdim` gives a positive spacing and negates that direction column (`ImageFileReader`).
//!
//! Deliberate difference: ITK compares the sform and qform rotations through the `U` factors of their
//! SVDs; this crate compares the column-normalised matrices. The two agree except when the matrices are
//! equal to within 1e-4 anyway, where both choices give the same geometry to that precision.
//!
//! NIfTI-2 files (which ITK 5.4 cannot read) follow the same rules in `f64` without the `f32` rounding.

// Matrix code reads best in index notation, like the formulas it restates.
#![allow(clippy::needless_range_loop)]

use crate::header::RawHeader;

/// Physical geometry as SimpleITK reports it: ITK's (x, y, z) axis order, LPS world coordinates.
///
/// `spacing[i]` and `direction` column `i` belong to the image axis `i` (x = columns, fastest in the file),
/// which is array axis `2 - i` of the (z, y, x) [`ndarray::Array3`] in [`crate::Volume`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// Voxel size in mm along x, y, z (`Image.GetSpacing()`).
    pub spacing: [f64; 3],
    /// World position (LPS, mm) of the centre of voxel (0, 0, 0) (`Image.GetOrigin()`).
    pub origin: [f64; 3],
    /// Direction cosines, row-major 3x3 as `Image.GetDirection()`: `direction[3 * r + c]` is the LPS
    /// component `r` of image axis `c`.
    pub direction: [f64; 9],
}

impl Default for Geometry {
    /// 1 mm isotropic, origin 0, identity direction.
    fn default() -> Self {
        Geometry {
            spacing: [1.0; 3],
            origin: [0.0; 3],
            direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        }
    }
}

impl Geometry {
    /// Spacing in array order (z, y, x): nnU-Net's `original_spacing`.
    pub fn spacing_zyx(&self) -> [f64; 3] {
        [self.spacing[2], self.spacing[1], self.spacing[0]]
    }

    /// Geometry from a spacing given in array order (z, y, x), keeping origin and direction.
    pub fn with_spacing_zyx(mut self, spacing_zyx: [f64; 3]) -> Self {
        self.spacing = [spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]];
        self
    }

    /// The voxel-to-world affine in nibabel's RAS convention (what `nibabel.load(f).affine` reports for a
    /// file written by this crate): `affine[r][c]`, index order (x, y, z, 1).
    pub fn ras_affine(&self) -> [[f64; 4]; 4] {
        let mut a = [[0.0; 4]; 4];
        for r in 0..3 {
            let sign = if r < 2 { -1.0 } else { 1.0 };
            for c in 0..3 {
                a[r][c] = sign * self.direction[3 * r + c] * self.spacing[c];
            }
            a[r][3] = sign * self.origin[r];
        }
        a[3][3] = 1.0;
        a
    }

    /// World (LPS) position of the voxel at array index (z, y, x), as SimpleITK's
    /// `TransformContinuousIndexToPhysicalPoint((x, y, z))`.
    pub fn index_to_world_zyx(&self, index_zyx: [f64; 3]) -> [f64; 3] {
        let ijk = [index_zyx[2], index_zyx[1], index_zyx[0]];
        let mut p = self.origin;
        for (r, pr) in p.iter_mut().enumerate() {
            for c in 0..3 {
                *pr += self.direction[3 * r + c] * self.spacing[c] * ijk[c];
            }
        }
        p
    }
}

type Mat4 = [[f64; 4]; 4];

/// niftilib's `nifti_quatern_to_mat44`, restated.
fn quatern_to_mat(q: [f64; 3], off: [f64; 3], d: [f64; 3], qfac: f64) -> Mat4 {
    let (mut b, mut c, mut dd) = (q[0], q[1], q[2]);
    let mut a = 1.0 - (b * b + c * c + dd * dd);
    if a < 1e-7 {
        // 180 degree rotation: renormalise (b, c, d)
        let n = 1.0 / (b * b + c * c + dd * dd).sqrt();
        b *= n;
        c *= n;
        dd *= n;
        a = 0.0;
    } else {
        a = a.sqrt();
    }
    let xd = if d[0] > 0.0 { d[0] } else { 1.0 };
    let yd = if d[1] > 0.0 { d[1] } else { 1.0 };
    let mut zd = if d[2] > 0.0 { d[2] } else { 1.0 };
    if qfac < 0.0 {
        zd = -zd;
    }
    let d2 = dd;
    [
        [
            (a * a + b * b - c * c - d2 * d2) * xd,
            2.0 * (b * c - a * d2) * yd,
            2.0 * (b * d2 + a * c) * zd,
            off[0],
        ],
        [
            2.0 * (b * c + a * d2) * xd,
            (a * a + c * c - b * b - d2 * d2) * yd,
            2.0 * (c * d2 - a * b) * zd,
            off[1],
        ],
        [
            2.0 * (b * d2 - a * c) * xd,
            2.0 * (c * d2 + a * b) * yd,
            (a * a + d2 * d2 - c * c - b * b) * zd,
            off[2],
        ],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn det3(m: &Mat4) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn col_norm(m: &Mat4, c: usize) -> f64 {
    (m[0][c] * m[0][c] + m[1][c] * m[1][c] + m[2][c] * m[2][c]).sqrt()
}

/// The 3x3 with unit columns (columns of zero length stay zero).
fn normalized_cols(m: &Mat4) -> [[f64; 3]; 3] {
    let mut r = [[0.0; 3]; 3];
    for c in 0..3 {
        let n = col_norm(m, c);
        for (row, rr) in r.iter_mut().enumerate() {
            rr[c] = if n > 0.0 { m[row][c] / n } else { 0.0 };
        }
    }
    r
}

/// ITK's `IsAffine` plus the orthonormality test of `sform_decomposable_without_skew`.
fn sform_decomposable(s: &Mat4) -> bool {
    let bottom = (s[3][3] - 1.0).abs() + s[3][0].abs() + s[3][1].abs() + s[3][2].abs();
    if bottom > f64::from(f32::EPSILON) {
        return false;
    }
    let norms = [col_norm(s, 0), col_norm(s, 1), col_norm(s, 2)];
    let max = norms.iter().cloned().fold(0.0, f64::max);
    let det = det3(s);
    if !det.is_finite() || max == 0.0 || det.abs() <= f64::EPSILON * max * max * max {
        return false;
    }
    let r = normalized_cols(s);
    for i in 0..3 {
        for j in 0..3 {
            let dot: f64 = (0..3).map(|k| r[i][k] * r[j][k]).sum();
            let target = if i == j { 1.0 } else { 0.0 };
            if (dot - target).abs() > 1e-4 {
                return false;
            }
        }
    }
    true
}

/// How the header's transforms were used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XformSource {
    /// Neither code set: origin 0, identity direction.
    None,
    /// The quaternion (qform) fields.
    Qform,
    /// The `srow_*` (sform) fields.
    Sform,
}

/// Geometry of a header following the rules in the module docs; `Err` carries the rejection reason.
pub(crate) fn itk_geometry(h: &RawHeader) -> Result<(Geometry, XformSource), String> {
    let round = |v: f64| {
        if h.version == 1 {
            f64::from(v as f32)
        } else {
            v
        }
    };
    let mut d = [1.0f64; 3];
    for (i, di) in d.iter_mut().enumerate() {
        let p = h.pixdim[i + 1];
        *di = if p == 0.0 || !p.is_finite() { 1.0 } else { p };
    }
    let scale = match h.xyzt_units & 7 {
        1 => 1e3,
        3 => 1e-3,
        _ => 1.0,
    };
    let qcode = if h.qform_code > 0 { h.qform_code } else { 0 };
    let scode = if h.sform_code > 0 { h.sform_code } else { 0 };
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };

    let mut q: Mat4 = [
        [d[0], 0.0, 0.0, 0.0],
        [0.0, d[1], 0.0, 0.0],
        [0.0, 0.0, d[2], 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    if qcode != 0 {
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        q = quatern_to_mat(h.quatern.map(finite), h.qoffset.map(finite), d, qfac);
    }
    let mut s: Mat4 = [[0.0; 4]; 4];
    if scode != 0 {
        s[..3].copy_from_slice(&h.srow);
        s[3][3] = 1.0;
    }
    for m in [&mut q, &mut s] {
        for row in m.iter_mut() {
            for v in row.iter_mut() {
                *v = round(*v);
            }
        }
    }

    let (m, source) = if qcode == 0 && scode == 0 {
        ([[0.0; 4], [0.0; 4], [0.0; 4], [0.0; 4]], XformSource::None)
    } else {
        let similar = {
            let mut ok = true;
            for r in 0..3 {
                for c in 0..3 {
                    ok &= (s[r][c] - q[r][c]).abs() <= 1e-5;
                }
            }
            let t: f64 = (0..4).map(|r| (s[r][3] - q[r][3]).abs()).sum();
            let b: f64 = (0..4).map(|c| (s[3][c] - q[3][c]).abs()).sum();
            ok && t <= 1e-7 && b <= 1e-7
        };
        let mut prefer_sform = similar;
        if (!prefer_sform || scode != 0) && sform_decomposable(&s) {
            // sform known and qform unknown, or sform labelled NIFTI_XFORM_SCANNER_ANAT
            if (qcode == 0 && scode != 0) || scode == 1 {
                prefer_sform = true;
            } else if qcode != 0 && scode != 0 {
                let mut sn = [col_norm(&s, 0), col_norm(&s, 1), col_norm(&s, 2)];
                let mut qn = [col_norm(&q, 0), col_norm(&q, 1), col_norm(&q, 2)];
                sn.sort_by(f64::total_cmp);
                qn.sort_by(f64::total_cmp);
                let spacing_ok = (0..3).all(|i| (sn[i] - qn[i]).abs() <= 1e-4);
                let (rs, rq) = (normalized_cols(&s), normalized_cols(&q));
                let rot_ok = (0..3).all(|r| (0..3).all(|c| (rs[r][c] - rq[r][c]).abs() <= 1e-4));
                let off_ok = (0..3).all(|r| (s[r][3] - q[r][3]).abs() <= 1e-4);
                prefer_sform = spacing_ok && rot_ok && off_ok;
            }
        }
        if prefer_sform {
            (s, XformSource::Sform)
        } else if qcode != 0 {
            (q, XformSource::Qform)
        } else {
            return Err(
                "ITK only supports orthonormal direction cosines: the sform is not orthonormal \
                        (sheared or singular) and there is no qform"
                    .to_string(),
            );
        }
    };

    let mut g = Geometry::default();
    if source != XformSource::None {
        g.origin = [-m[0][3] * scale, -m[1][3] * scale, m[2][3] * scale];
        for c in 0..3 {
            let col = [-m[0][c], -m[1][c], m[2][c]];
            let n = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
            if n == 0.0 || !n.is_finite() {
                return Err(format!(
                    "direction column {c} of the {source:?} is zero or not finite"
                ));
            }
            for r in 0..3 {
                g.direction[3 * r + c] = col[r] / n;
            }
        }
    }
    for c in 0..3 {
        let sp = round(d[c]) * scale;
        if sp < 0.0 {
            for r in 0..3 {
                g.direction[3 * r + c] = -g.direction[3 * r + c];
            }
        }
        g.spacing[c] = sp.abs();
    }
    Ok((g, source))
}

/// Quaternion parameters (b, c, d) and qfac of a direction given as a RAS 3x3 with unit columns
/// (`r[row][col]`): the inverse of the qform rotation (nifti1.h's "quaternion representation").
pub(crate) fn rotation_to_quatern(mut r: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let mut qfac = 1.0;
    if det < 0.0 {
        qfac = -1.0;
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        let aa = 0.5 * trace.sqrt();
        a = aa;
        b = 0.25 * (r[2][1] - r[1][2]) / aa;
        c = 0.25 * (r[0][2] - r[2][0]) / aa;
        d = 0.25 * (r[1][0] - r[0][1]) / aa;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let bb = 0.5 * xd.sqrt();
            b = bb;
            c = 0.25 * (r[0][1] + r[1][0]) / bb;
            d = 0.25 * (r[0][2] + r[2][0]) / bb;
            a = 0.25 * (r[2][1] - r[1][2]) / bb;
        } else if yd > 1.0 {
            let cc = 0.5 * yd.sqrt();
            c = cc;
            b = 0.25 * (r[0][1] + r[1][0]) / cc;
            d = 0.25 * (r[1][2] + r[2][1]) / cc;
            a = 0.25 * (r[0][2] - r[2][0]) / cc;
        } else {
            let dd = 0.5 * zd.sqrt();
            d = dd;
            b = 0.25 * (r[0][2] + r[2][0]) / dd;
            c = 0.25 * (r[1][2] + r[2][1]) / dd;
            a = 0.25 * (r[1][0] - r[0][1]) / dd;
        }
    }
    if a < 0.0 {
        ([-b, -c, -d], qfac)
    } else {
        ([b, c, d], qfac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_round_trip_of_an_improper_rotation() {
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        // rotation about z, then z flipped
        let r = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, -1.0]];
        let (qv, qfac) = rotation_to_quatern(r);
        assert_eq!(qfac, -1.0);
        let m = quatern_to_mat(qv, [0.0; 3], [1.0; 3], qfac);
        for i in 0..3 {
            for j in 0..3 {
                assert!(
                    (m[i][j] - r[i][j]).abs() < 1e-12,
                    "{i}{j}: {} vs {}",
                    m[i][j],
                    r[i][j]
                );
            }
        }
    }

    #[test]
    fn quaternion_of_a_180_degree_rotation() {
        let r = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
        let (qv, qfac) = rotation_to_quatern(r);
        assert_eq!(qfac, 1.0);
        let m = quatern_to_mat(qv, [0.0; 3], [1.0; 3], qfac);
        for i in 0..3 {
            for j in 0..3 {
                assert!((m[i][j] - r[i][j]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn spacing_zyx_reverses_axes() {
        let g = Geometry {
            spacing: [0.7, 0.8, 5.0],
            ..Geometry::default()
        };
        assert_eq!(g.spacing_zyx(), [5.0, 0.8, 0.7]);
        assert_eq!(g.with_spacing_zyx([1.0, 2.0, 3.0]).spacing, [3.0, 2.0, 1.0]);
    }
}

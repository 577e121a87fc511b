"""Write the NIfTI goldens of `nnu-volume` into fixtures/nifti/.

Produces:
  fixtures/nifti/*.nii, *.nii.gz  small volumes (7 x 6 x 5 voxels, x fastest) whose headers are written
                                  byte by byte here (not through nibabel, which would "fix" them), covering
                                  qform-only, sform-only, both, disagreeing qform/sform, a sheared sform,
                                  flipped and oblique axes, qfac = -1, negative pixdim, no xform at all,
                                  metre units, every integer/float datatype, scl_slope/scl_inter (incl.
                                  slope 0), big-endian, a 4-D channel file, a 4-D file with t = 1 and a
                                  NIfTI-2 file;
  fixtures/nifti/expected.json    what SimpleITK and nibabel read from each file: size, spacing, origin,
                                  direction (SimpleITK), affine and shape (nibabel), and every voxel value
                                  as float64 in SimpleITK's numpy order (z, y, x) (c, z, y, x for 4-D), or
                                  the error SimpleITK raises.

Pinned versions (what produced the committed files): Python 3.11, numpy 2.4.6, SimpleITK 2.5.7 (ITK 5.4),
nibabel 5.4.2.

Run: /work/venv/bin/python scripts/goldens/nifti_make.py
"""

import gzip
import json
import math
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "nifti"

DT = {  # NIfTI datatype code -> (numpy dtype char, bitpix)
    "u8": (2, "u1", 8),
    "i16": (4, "i2", 16),
    "i32": (8, "i4", 32),
    "f32": (16, "f4", 32),
    "f64": (64, "f8", 64),
    "i8": (256, "i1", 8),
    "u16": (512, "u2", 16),
    "u32": (768, "u4", 32),
}


def quat_from_rotation(r):
    """Quaternion (b, c, d) and qfac of a 3x3 orthonormal matrix (columns = axis directions, RAS)."""
    r = np.array(r, dtype=float)
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r[:, 2] *= -1
    a = r[0, 0] + r[1, 1] + r[2, 2] + 1.0
    if a > 0.5:
        a = 0.5 * math.sqrt(a)
        b = 0.25 * (r[2, 1] - r[1, 2]) / a
        c = 0.25 * (r[0, 2] - r[2, 0]) / a
        d = 0.25 * (r[1, 0] - r[0, 1]) / a
    else:
        xd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2])
        yd = 1.0 + r[1, 1] - (r[0, 0] + r[2, 2])
        zd = 1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
        if xd > 1.0:
            b = 0.5 * math.sqrt(xd)
            c = 0.25 * (r[0, 1] + r[1, 0]) / b
            d = 0.25 * (r[0, 2] + r[2, 0]) / b
            a = 0.25 * (r[2, 1] - r[1, 2]) / b
        elif yd > 1.0:
            c = 0.5 * math.sqrt(yd)
            b = 0.25 * (r[0, 1] + r[1, 0]) / c
            d = 0.25 * (r[1, 2] + r[2, 1]) / c
            a = 0.25 * (r[0, 2] - r[2, 0]) / c
        else:
            d = 0.5 * math.sqrt(zd)
            b = 0.25 * (r[0, 2] + r[2, 0]) / d
            c = 0.25 * (r[1, 2] + r[2, 1]) / d
            a = 0.25 * (r[1, 0] - r[0, 1]) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return (b, c, d), qfac


def rot(ax, ay, az):
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def nifti1_bytes(data_xyzt, dtype, pixdim, qform=None, sform=None, qform_code=0, sform_code=0,
                 slope=0.0, inter=0.0, xyzt_units=2, endian="<", dim0=None):
    """Header + data of a single-file NIfTI-1 (.nii) volume; data is indexed [x, y, z(, t)]."""
    code, npt, bitpix = DT[dtype]
    shape = list(data_xyzt.shape)
    dim = [dim0 or len(shape)] + shape + [1] * (7 - len(shape))
    pd = [1.0] * 8
    if qform is not None:
        (b, c, d), qfac, off = qform
        pd[0] = qfac
    for i, p in enumerate(pixdim):
        pd[i + 1] = p
    h = bytearray(352)
    e = endian
    struct.pack_into(e + "i", h, 0, 348)
    struct.pack_into(e + "8h", h, 40, *dim)
    struct.pack_into(e + "hhh", h, 70, code, bitpix, 0)
    struct.pack_into(e + "8f", h, 76, *pd)
    struct.pack_into(e + "fff", h, 108, 352.0, slope, inter)
    struct.pack_into(e + "B", h, 123, xyzt_units)
    struct.pack_into(e + "hh", h, 252, qform_code, sform_code)
    if qform is not None:
        struct.pack_into(e + "6f", h, 256, b, c, d, *off)
    if sform is not None:
        s = np.asarray(sform, dtype=float)
        struct.pack_into(e + "12f", h, 280, *s[:3, :].ravel())
    h[344:348] = b"n+1\0"
    raw = np.asarray(data_xyzt, dtype=np.dtype(e + npt)).tobytes(order="F")
    return bytes(h) + raw


def nifti2_bytes(data_xyz, dtype, pixdim, sform, sform_code=1):
    code, npt, bitpix = DT[dtype]
    shape = list(data_xyz.shape)
    h = bytearray(544)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, code, bitpix)
    struct.pack_into("<8q", h, 16, len(shape), *shape, *([1] * (7 - len(shape))))
    struct.pack_into("<8d", h, 104, 1.0, *pixdim, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<q", h, 168, 544)
    struct.pack_into("<dd", h, 176, 0.0, 0.0)
    struct.pack_into("<ii", h, 344, 0, sform_code)
    struct.pack_into("<12d", h, 400, *np.asarray(sform, dtype=float)[:3, :].ravel())
    struct.pack_into("<i", h, 500, 2)
    raw = np.asarray(data_xyz, dtype="<" + npt).tobytes(order="F")
    return bytes(h) + raw


def affine(r, spacing, origin):
    a = np.eye(4)
    a[:3, :3] = np.asarray(r) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def ramp(shape, dtype, lo, hi, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(lo, hi, size=shape)
    if dtype.startswith("f"):
        return v
    return np.round(v)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    nx, ny, nz = 7, 6, 5
    cases = {}

    def add(name, blob):
        p = OUT / name
        if name.endswith(".gz"):
            p.write_bytes(gzip.compress(blob, compresslevel=9, mtime=0))
        else:
            p.write_bytes(blob)
        cases[name] = p

    sp = (0.7, 0.8, 2.5)
    r_obl = rot(0.1, -0.2, 0.3)
    r_flip = np.diag([-1.0, 1.0, -1.0])
    r_left = rot(0.0, 0.0, 0.4) @ np.diag([1.0, 1.0, -1.0])  # improper: qfac = -1

    d = ramp((nx, ny, nz), "i16", -1024, 1500, 1)
    q, qfac = quat_from_rotation(r_left)
    add("i16_qform_only_qfac.nii.gz",
        nifti1_bytes(d, "i16", sp, qform=(q, qfac, (12.5, -30.25, 7.0)), qform_code=1))

    d = ramp((nx, ny, nz), "u8", 0, 3, 2)
    add("u8_sform_only_flipped.nii",
        nifti1_bytes(d, "u8", (1.5, 1.5, 5.0), sform=affine(r_flip, (1.5, 1.5, 5.0), (100.0, -50.0, 20.0)),
                     sform_code=2))

    d = ramp((nx, ny, nz), "f32", -5, 5, 3)
    a = affine(r_obl, sp, (-3.0, 4.0, -5.0))
    q, qfac = quat_from_rotation(r_obl)
    add("f32_both_scanner_oblique.nii.gz",
        nifti1_bytes(d, "f32", sp, qform=(q, qfac, tuple(a[:3, 3])), sform=a, qform_code=1, sform_code=1))

    d = ramp((nx, ny, nz), "i16", -100, 100, 4)
    q, qfac = quat_from_rotation(np.eye(3))
    add("i16_both_disagree.nii.gz",
        nifti1_bytes(d, "i16", sp, qform=(q, qfac, (1.0, 2.0, 3.0)), sform=affine(r_obl, sp, (9.0, 8.0, 7.0)),
                     qform_code=1, sform_code=2))

    d = ramp((nx, ny, nz), "u16", 0, 4000, 5)
    a = affine(np.eye(3), sp, (-10.0, -20.0, -30.0))
    q, qfac = quat_from_rotation(np.eye(3))
    add("u16_scaled.nii.gz",
        nifti1_bytes(d, "u16", sp, qform=(q, qfac, tuple(a[:3, 3])), sform=a, qform_code=1, sform_code=1,
                     slope=0.5, inter=-1024.0))

    d = ramp((nx, ny, nz), "i8", -100, 100, 6)
    add("i8_slope0_inter.nii",
        nifti1_bytes(d, "i8", sp, sform=affine(np.eye(3), sp, (0.0, 0.0, 0.0)), sform_code=1,
                     slope=0.0, inter=5.0))

    d = ramp((nx, ny, nz, 2), "i32", -70000, 70000, 7)
    a = affine(r_flip, (0.9, 0.9, 3.0), (1.0, 2.0, 3.0))
    q, qfac = quat_from_rotation(r_flip)
    add("i32_4d_channels.nii.gz",
        nifti1_bytes(d, "i32", (0.9, 0.9, 3.0, 1.0), qform=(q, qfac, (1.0, 2.0, 3.0)), sform=a,
                     qform_code=1, sform_code=1))

    d = ramp((nx, ny, nz), "f64", -1, 1, 8)
    shear = affine(r_obl, sp, (5.0, 6.0, 7.0))
    shear[0, 1] += 0.3
    q, qfac = quat_from_rotation(r_obl)
    add("f64_bigendian_shear_sform.nii",
        nifti1_bytes(d, "f64", sp, qform=(q, qfac, (5.0, 6.0, 7.0)), sform=shear, qform_code=1, sform_code=1,
                     endian=">"))

    d = ramp((nx, ny, nz, 1), "u32", 0, 100000, 9)
    a = affine(np.eye(3), (0.001, 0.002, 0.003), (0.01, 0.02, 0.03))
    add("u32_4d_t1_metres.nii.gz",
        nifti1_bytes(d, "u32", (0.001, 0.002, 0.003, 1.0), sform=a, sform_code=1, xyzt_units=1 | 8))

    d = ramp((nx, ny, nz), "i16", -5, 5, 10)
    add("i16_no_xform_negpix.nii", nifti1_bytes(d, "i16", (-0.7, 0.8, 2.5)))

    d = ramp((nx, ny, nz), "f32", 0, 1, 11)
    add("f32_shear_sform_only.nii", nifti1_bytes(d, "f32", sp, sform=shear, sform_code=1))

    d = ramp((nx, ny, nz), "i16", -1000, 1000, 12)
    add("i16_nifti2.nii", nifti2_bytes(d, "i16", sp, affine(r_obl, sp, (1.0, -2.0, 3.0))))

    expected = {}
    for name, p in cases.items():
        e = {}
        try:
            im = sitk.ReadImage(str(p))
            arr = sitk.GetArrayFromImage(im)
            e["sitk"] = {
                "size": list(im.GetSize()),
                "spacing": list(im.GetSpacing()),
                "origin": list(im.GetOrigin()),
                "direction": list(im.GetDirection()),
                "pixel_type": im.GetPixelIDTypeAsString(),
                "array_shape": list(arr.shape),
                "values": [float(v) for v in arr.astype(np.float64).ravel()],
            }
        except RuntimeError as ex:
            e["sitk"] = {"error": str(ex).strip().splitlines()[-1]}
        try:
            img = nib.load(str(p))
            data = np.asanyarray(img.dataobj).astype(np.float64)
            e["nibabel"] = {
                "shape": list(img.shape),
                "affine": img.affine.tolist(),
                "zooms": [float(z) for z in img.header.get_zooms()],
                # nibabel order is (x, y, z[, t]); store it in SimpleITK's order for easy comparison
                "values": [float(v) for v in np.moveaxis(data, list(range(data.ndim)), list(range(data.ndim))[::-1]).ravel()],
            }
        except Exception as ex:  # noqa: BLE001 - recorded as a golden
            e["nibabel"] = {"error": str(ex)}
        expected[name] = e
    versions = {"numpy": np.__version__, "SimpleITK": sitk.Version.VersionString(), "nibabel": nib.__version__}
    (OUT / "expected.json").write_text(json.dumps({"versions": versions, "files": expected}, indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v["sitk"].items() if kk != "values"} for k, v in expected.items()},
                     indent=1))


if __name__ == "__main__":
    main()

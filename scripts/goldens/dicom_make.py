"""Write the DICOM series goldens of `nnu-dicom` into fixtures/dicom/.

Produces:
  fixtures/dicom/<series>/...      small CT series (8 slices of 20 rows x 24 columns, int16 storage,
                                   Implicit VR Little Endian, GDCM's default) written slice by slice with SimpleITK's
                                   GDCM writer from analytic phantoms:
                                     axial    identity direction, non-zero origin, slope 1 / intercept
                                              -1024, files `*.dcm` named in an order unrelated to the
                                              slice order, SliceThickness deliberately wrong (5 mm);
                                     flipped  x and z flipped (IOP row -1,0,0), files without extension
                                              in a nested folder, slope 1 / intercept 0;
                                     oblique  rotated about all three axes, slope 0.5 / intercept -10.25
                                              (non-integer: SimpleITK reads float64);
                                     coronal  rows along x, columns along -z, slice normal along +y
                                              (LPS), slope 2 / intercept -1000;
                                   every series has anisotropic pixels (PixelSpacing rows 0.9 mm,
                                   columns 0.7 mm) so that a swapped spacing order shows;
  fixtures/dicom/CT_small/CT_small.dcm  pydicom's real CT test file (one 128x128 slice, see README.md);
  fixtures/dicom/MR_small_RLE/MR_small_RLE.dcm  pydicom's RLE Lossless MR test file: a compressed series
                                   the reader refuses (no golden);
  fixtures/dicom/<series>.npy      what SimpleITK's ImageSeriesReader reads (files ordered by
                                   `GetGDCMSeriesFileNames`), cast to float32, numpy order (z, y, x);
  fixtures/dicom/expected.json     per series: SeriesInstanceUID, size, spacing, origin, direction as
                                   SimpleITK reports them, SimpleITK's pixel type, the file order it used,
                                   and the raw stored values of slice 0 (to show that the rescale applies).

Pinned versions (what produced the committed files): Python 3.11, numpy 2.4.6, SimpleITK 2.5.7 (ITK 5.4),
pydicom 3.0.1 (only to copy its CT_small.dcm and to check the stored values).

Run: /work/venv/bin/python scripts/goldens/dicom_make.py
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.data import get_testdata_file

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "dicom"
UID_ROOT = "1.2.826.0.1.3680043.8.498.4242"  # a fixed root: the files are reproducible
SIZE = (24, 20, 8)  # x (columns), y (rows), z (slices)


def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


SERIES = {
    "axial": dict(direction=np.eye(3), origin=(-12.5, 30.25, -100.0), z=2.5, slope=1.0, intercept=-1024.0,
                  number=3, ext=".dcm", sub="", patient="PHANTOM-A"),
    "flipped": dict(direction=np.diag([-1.0, 1.0, -1.0]), origin=(40.0, -7.5, 62.0), z=3.0, slope=1.0,
                    intercept=0.0, number=4, ext="", sub="a/b", patient="PHANTOM-B"),
    "oblique": dict(direction=rotation(0.3, -0.2, 0.45), origin=(-101.25, 57.5, 12.75), z=1.75, slope=0.5,
                    intercept=-10.25, number=5, ext=".dcm", sub="", patient="PHANTOM-C"),
    "coronal": dict(direction=np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
                    origin=(3.0, -40.0, 25.5), z=2.0, slope=2.0, intercept=-1000.0, number=6, ext=".dcm",
                    sub="", patient="PHANTOM-D"),
}


def phantom(seed):
    """Stored (raw) int16 values: an ellipsoid, a gradient and a few unique voxels, distinct per axis."""
    z, y, x = np.meshgrid(np.arange(SIZE[2]), np.arange(SIZE[1]), np.arange(SIZE[0]), indexing="ij")
    v = 40 * x + 7 * y + 300 * z + seed
    inside = ((x - 11) / 9.0) ** 2 + ((y - 9) / 7.0) ** 2 + ((z - 3.5) / 4.0) ** 2 < 1
    v = v + 500 * inside
    v[0, 0, 0] = -2000  # below the intercept: negative stored values must stay negative
    return v.astype(np.int16)


def write_series(name, spec):
    folder = OUT / name / spec["sub"] if spec["sub"] else OUT / name
    shutil.rmtree(OUT / name, ignore_errors=True)
    folder.mkdir(parents=True)
    raw = phantom(spec["number"])
    # The float image the writer turns back into int16 with the slope and intercept below (as in
    # SimpleITK's "DICOM series from array" example).
    hu = raw.astype(np.float64) * spec["slope"] + spec["intercept"]
    img = sitk.GetImageFromArray(hu.astype(np.float32))
    img.SetSpacing((0.7, 0.9, spec["z"]))
    img.SetOrigin(spec["origin"])
    d = spec["direction"]
    img.SetDirection(tuple(d.flatten()))
    series_uid = f"{UID_ROOT}.{spec['number']}"
    tags = [
        ("0008|0060", "CT"),
        ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),  # CT Image Storage
        ("0010|0010", "Phantom^" + name),
        ("0010|0020", spec["patient"]),
        ("0020|000d", f"{UID_ROOT}.1"),
        ("0020|000e", series_uid),
        ("0020|0011", str(spec["number"])),
        ("0008|103e", f"nnu-dicom phantom {name}"),
        ("0020|0037", "\\".join(f"{c:.10f}" for c in (d[0, 0], d[1, 0], d[2, 0], d[0, 1], d[1, 1], d[2, 1]))),
        ("0018|0050", "5"),  # SliceThickness, deliberately not the spacing
        ("0028|1053", repr(spec["slope"])),
        ("0028|1052", repr(spec["intercept"])),
        ("0028|0100", "16"),
        ("0028|0101", "16"),
        ("0028|0102", "15"),
        ("0028|0103", "1"),
        ("0008|0012", "20260101"),
        ("0008|0013", "120000"),
    ]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    # File names unrelated to the slice order: slice i goes to file (5 * i + 3) % 8.
    for i in range(SIZE[2]):
        s = img[:, :, i]
        for k, v in tags:
            s.SetMetaData(k, v)
        pos = img.TransformIndexToPhysicalPoint((0, 0, i))
        s.SetMetaData("0020|0032", "\\".join(f"{c:.6f}" for c in pos))
        s.SetMetaData("0020|0013", str(i + 1))
        s.SetMetaData("0008|0018", f"{series_uid}.{i + 1}")
        path = folder / f"IM{(5 * i + 3) % SIZE[2]:04d}"
        writer.SetFileName(str(path) + ".dcm")  # the writer picks GDCM by the extension
        writer.Execute(s)
        if not spec["ext"]:
            Path(str(path) + ".dcm").rename(path)
    return raw


def read_with_sitk(folder):
    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(str(folder))
    assert len(uids) == 1, uids
    files = reader.GetGDCMSeriesFileNames(str(folder), uids[0])
    reader.SetFileNames(files)
    img = reader.Execute()
    return uids[0], files, img


def record(name, folder, raw0=None):
    uid, files, img = read_with_sitk(folder)
    arr = sitk.GetArrayFromImage(img)
    np.save(OUT / f"{name}.npy", arr.astype(np.float32))
    first = pydicom.dcmread(files[0])
    entry = {
        "folder": name,
        "series_uid": uid,
        "size": list(img.GetSize()),
        "spacing": list(img.GetSpacing()),
        "origin": list(img.GetOrigin()),
        "direction": list(img.GetDirection()),
        "pixel_type": img.GetPixelIDTypeAsString(),
        "files": [str(Path(f).relative_to(OUT / name)) for f in files],
        "stored_first_slice_min_max": [int(first.pixel_array.min()), int(first.pixel_array.max())],
        "read_first_slice_min_max": [float(arr[0].min()), float(arr[0].max())],
    }
    if raw0 is not None:
        # The stored values are the phantom's (the writer inverted the rescale exactly).
        assert np.array_equal(np.sort(first.pixel_array.ravel()), np.sort(raw0.ravel())), name
    return entry


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, spec in SERIES.items():
        raw = write_series(name, spec)
        folder = OUT / name
        if spec["sub"]:
            folder = folder / spec["sub"]
        e = record(name, folder, raw[0])
        # Slice 0 in SimpleITK's order is the lowest along the normal: check the stored values of its file.
        first = pydicom.dcmread(folder / Path(e["files"][0]).name)
        assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2", first.file_meta.TransferSyntaxUID
        assert first.PixelRepresentation == 1 and first.BitsAllocated == 16
        assert float(first.RescaleSlope) == spec["slope"] and float(first.RescaleIntercept) == spec["intercept"]
        expected[name] = e
    # pydicom's real CT test file: one slice.
    ct = OUT / "CT_small"
    shutil.rmtree(ct, ignore_errors=True)
    ct.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), ct / "CT_small.dcm")
    expected["CT_small"] = record("CT_small", ct)
    # A real compressed file (RLE Lossless) that the reader must refuse, naming the transfer syntax.
    rle = OUT / "MR_small_RLE"
    shutil.rmtree(rle, ignore_errors=True)
    rle.mkdir()
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), rle / "MR_small_RLE.dcm")
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for k, v in expected.items():
        print(k, v["size"], v["spacing"], v["origin"], v["pixel_type"])


if __name__ == "__main__":
    main()

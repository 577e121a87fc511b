"""Goldens for crates/nnu-metrics and tools/nnu-evaluate (written to fixtures/metrics/).

Produces, from a fixed seed:
  ref/case_XX.nii.gz, pred/case_XX.nii.gz  small uint8 label pairs (z, y, x) = (20, 24, 28), labels 0/1/2,
                                           anisotropic spacing; random ellipsoid blobs, plus edge cases:
                                           empty foreground in both, a label missing on one side, a test
                                           volume that is one label everywhere, identical volumes.
  summary.json          nnU-Net 1.7.1 aggregate_scores(labels=[0, 1, 2]) on the pairs, run with the
                        working directory fixtures/metrics so the recorded paths are "pred/..", "ref/..".
  summary_advanced.json the same with advanced=True (adds MedPy's "Hausdorff Distance 95").
  splits_final.pkl      two folds over the cases as nnU-Net pickles them (list of dicts of numpy str arrays).
  summary_fold1.json    aggregate_scores(labels=[0, 1, 2]) on fold 1's validation cases only.
  surface.json          per case and foreground label, with the spacing nnU-Net passes (z, y, x):
                        MedPy 0.5.2 hd, hd95, assd (connectivity 1 and 3) and the normalised surface Dice
                        (MONAI-style voxel counting on MedPy's surface voxels) reproduced in numpy/scipy at
                        tolerances 1.0 and 2.5 mm. Null where MedPy raises (an empty mask).

Pinned versions: Python 3.11, nnunet 1.7.1, MedPy 0.5.2, numpy 2.4.6, scipy 1.17.1, SimpleITK 2.5.7.
Run: /work/venv/bin/python scripts/goldens/metrics_make.py  (from the repository root).
"""

import json
import os
import pickle
import sys

import numpy as np
import SimpleITK as sitk

# nnunet 1.7.1 under numpy 2: restore removed aliases it may touch (inside this script only).
for _name, _alias in (("int", int), ("float", float), ("bool", bool), ("object", object)):
    if _name not in np.__dict__:
        setattr(np, _name, _alias)

from medpy.metric import binary as medpy_binary  # noqa: E402
from nnunet.evaluation.evaluator import aggregate_scores  # noqa: E402
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "metrics")
SHAPE = (20, 24, 28)


def ellipsoid(rng, shape, centre_jitter=4.0, radius=(3.0, 7.0)):
    z, y, x = np.indices(shape, dtype=np.float64)
    c = np.array(shape) / 2.0 + rng.uniform(-centre_jitter, centre_jitter, 3)
    r = rng.uniform(*radius, 3)
    return ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1.0


def blob_labels(rng):
    seg = np.zeros(SHAPE, np.uint8)
    seg[ellipsoid(rng, SHAPE, 3.0, (5.0, 9.0))] = 1
    seg[ellipsoid(rng, SHAPE, 3.0, (1.5, 3.5))] = 2
    return seg


def perturb(rng, seg):
    """A plausible prediction: shift by up to a voxel, drop/add a small blob."""
    out = np.roll(seg, tuple(rng.integers(-1, 2, 3)), axis=(0, 1, 2))
    out[ellipsoid(rng, SHAPE, 6.0, (1.0, 2.5))] = rng.integers(0, 3)
    return out


def make_cases(rng):
    cases = []
    for i in range(4):
        ref = blob_labels(rng)
        cases.append((ref, perturb(rng, ref)))
    ref = blob_labels(rng)
    pred = ref.copy()
    pred[pred == 2] = 1  # label 2 missing in the prediction
    cases.append((ref, pred))
    ref = blob_labels(rng)
    ref[ref == 2] = 1  # label 2 missing in the reference
    cases.append((ref, perturb(rng, blob_labels(rng))))
    cases.append((np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)))  # no foreground at all
    ref = blob_labels(rng)
    cases.append((ref, np.ones(SHAPE, np.uint8)))  # prediction is label 1 everywhere (test_full)
    ref = blob_labels(rng)
    cases.append((ref, ref.copy()))  # identical
    return cases


SPACINGS_XYZ = [
    (0.8, 0.8, 2.5),
    (0.7, 0.9, 1.5),
    (1.0, 1.0, 1.0),
    (0.6, 0.75, 3.0),
]


def write(seg, spacing_xyz, path):
    img = sitk.GetImageFromArray(seg)
    img.SetSpacing(spacing_xyz)
    img.SetOrigin((-10.0, 5.5, 3.25))
    sitk.WriteImage(img, path, True)


def surface_distances(a, b, spacing, connectivity):
    fp = generate_binary_structure(3, connectivity)
    a_border = a ^ binary_erosion(a, structure=fp, iterations=1)
    b_border = b ^ binary_erosion(b, structure=fp, iterations=1)
    dt = distance_transform_edt(~b_border, sampling=spacing)
    return dt[a_border]


def nsd(test, ref, spacing, connectivity, tol):
    d_tr = surface_distances(test, ref, spacing, connectivity)
    d_rt = surface_distances(ref, test, spacing, connectivity)
    return float((np.sum(d_tr <= tol) + np.sum(d_rt <= tol)) / (len(d_tr) + len(d_rt)))


def main():
    os.makedirs(os.path.join(OUT, "ref"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "pred"), exist_ok=True)
    rng = np.random.default_rng(20261127)
    cases = make_cases(rng)
    names = []
    surface = []
    for i, (ref, pred) in enumerate(cases):
        name = "case_%02d.nii.gz" % i
        names.append(name)
        spacing_xyz = SPACINGS_XYZ[i % len(SPACINGS_XYZ)]
        write(ref, spacing_xyz, os.path.join(OUT, "ref", name))
        write(pred, spacing_xyz, os.path.join(OUT, "pred", name))
        spacing_zyx = tuple(reversed(spacing_xyz))
        for label in (1, 2):
            t, r = pred == label, ref == label
            entry = {"case": name, "label": label, "spacing_zyx": list(spacing_zyx)}
            for c in (1, 3):
                if t.any() and r.any():
                    entry["hd_c%d" % c] = float(medpy_binary.hd(t, r, spacing_zyx, c))
                    entry["hd95_c%d" % c] = float(medpy_binary.hd95(t, r, spacing_zyx, c))
                    entry["assd_c%d" % c] = float(medpy_binary.assd(t, r, spacing_zyx, c))
                    for tol in (1.0, 2.5):
                        entry["nsd_c%d_tol%s" % (c, tol)] = nsd(t, r, spacing_zyx, c, tol)
                else:
                    entry["hd_c%d" % c] = entry["hd95_c%d" % c] = entry["assd_c%d" % c] = None
            surface.append(entry)

    cwd = os.getcwd()
    os.chdir(OUT)
    try:
        pairs = [(os.path.join("pred", n), os.path.join("ref", n)) for n in names]
        aggregate_scores(pairs, labels=[0, 1, 2], json_output_file="summary.json", num_threads=2)
        aggregate_scores(pairs, labels=[0, 1, 2], json_output_file="summary_advanced.json", num_threads=2,
                         advanced=True)
        ids = [n[: -len(".nii.gz")] for n in names]
        splits = [
            {"train": np.array(ids[4:]), "val": np.array(ids[:4])},
            {"train": np.array(ids[:4] + ids[7:]), "val": np.array(ids[4:7])},
        ]
        with open("splits_final.pkl", "wb") as f:
            pickle.dump(splits, f)
        fold1 = [(os.path.join("pred", i + ".nii.gz"), os.path.join("ref", i + ".nii.gz")) for i in splits[1]["val"]]
        aggregate_scores(fold1, labels=[0, 1, 2], json_output_file="summary_fold1.json", num_threads=2)
    finally:
        os.chdir(cwd)
    with open(os.path.join(OUT, "surface.json"), "w") as f:
        json.dump(surface, f, indent=1, sort_keys=True)
    print("wrote", len(cases), "pairs to", os.path.abspath(OUT), file=sys.stderr)


if __name__ == "__main__":
    main()

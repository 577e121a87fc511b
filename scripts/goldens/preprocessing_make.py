"""Goldens for crates/nnu-preprocessing: nnU-Net 1.7.1's own preprocessing and export on small phantoms.

Produces fixtures/preprocessing/<case>/ for each case below:
  input_<c>.npy.gz      the image channels as written to NIfTI (int16 or float32, z y x)
  params.json           plan values (target spacing, transposes, schemes, masks, intensity properties, geometry)
  expected.npy.gz       GenericPreprocessor.preprocess_test_case output data (float32, c z y x)
  properties.json       the properties nnU-Net returns (shapes, crop_bbox, spacings, itk geometry)
and, for cases with an export:
  softmax.npy.gz        class probabilities in the preprocessed (transposed) frame, float16 (fed as float32)
  export_seg.npy.gz     save_segmentation_nifti_from_softmax's label map read back from its NIfTI (uint8)
  export_probs.npy.gz   the resampled probabilities it computed before the argmax (float32, cropped frame),
                        only where stored
plus fixtures/preprocessing/resize/ (skimage.transform.resize orders 0/1/3 and the separate-z path on a random
volume) and fixtures/preprocessing/postprocessing/ (remove_all_but_the_largest_connected_component).

Run: /work/venv/bin/python scripts/goldens/preprocessing_make.py
Pinned versions (checked at start): nnunet 1.7.1, numpy 2.4.6, scipy 1.17.1, scikit-image 0.26.0,
batchgenerators 0.25.5, SimpleITK 2.5.7.
"""
import contextlib
import copy
import gzip
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

# nnU-Net 1.7.1 predates numpy 2: restore the aliases it uses (in this process only).
for _name, _t in (("int", int), ("float", float), ("bool", bool), ("object", object)):
    if not hasattr(np, _name):
        setattr(np, _name, _t)

import scipy  # noqa: E402
import skimage  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import batchgenerators  # noqa: E402
import nnunet  # noqa: E402
from importlib.metadata import version  # noqa: E402
from scipy.ndimage import zoom  # noqa: E402

import nnunet.inference.segmentation_export as seg_export  # noqa: E402
from nnunet.preprocessing.preprocessing import GenericPreprocessor, resample_data_or_seg  # noqa: E402

EXPECTED = {"nnunet": "1.7.1", "numpy": "2.4.6", "scipy": "1.17.1", "scikit-image": "0.26.0",
            "batchgenerators": "0.25.5", "SimpleITK": "2.5.7"}

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "preprocessing")


def check_versions():
    for pkg, want in EXPECTED.items():
        got = version(pkg)
        if got != want:
            sys.exit(f"{pkg} {got} installed, goldens are pinned to {want}")


def save_npy_gz(path, arr):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr))
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(buf.getvalue())


def phantom(shape, rng, zero_frame=True, dtype=np.int16):
    """CT-like abdomen: air, body cylinder with fat/soft tissue, a liver ellipsoid with a tumour, a bone ring."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    img = np.full(shape, -1000.0)
    r = (y / 0.85) ** 2 + (x / 0.9) ** 2
    body = r < 1
    img[body] = -80.0
    img[r < 0.75] = 40.0
    liver = ((z - 0.1) / 0.7) ** 2 + ((y - 0.15) / 0.45) ** 2 + ((x + 0.3) / 0.4) ** 2 < 1
    img[liver] = 100.0
    tumour = ((z - 0.1) ** 2 + (y - 0.2) ** 2 + (x + 0.35) ** 2) < 0.15 ** 2
    img[tumour] = 60.0
    bone = (r > 0.8) & (r < 0.9) & (y > 0.3)
    img[bone] = 700.0
    img[body] += rng.normal(0, 15, size=int(body.sum()))
    img = np.round(img)
    # a few exact zeros inside the body: holes of the nonzero mask that binary_fill_holes fills
    inner = np.argwhere(r < 0.5)
    for idx in inner[rng.choice(len(inner), size=5, replace=False)]:
        img[tuple(idx)] = 0
    if zero_frame:
        img[:2] = 0
        img[:, :, -3:] = 0
        img[:, :1, :] = 0
    return img.astype(dtype)


def smooth_softmax(shape, n_classes, rng):
    low = rng.normal(0, 3, size=(n_classes,) + tuple(max(2, s // 4) for s in shape))
    logits = np.stack([zoom(l, [s / t for s, t in zip(shape, l.shape)], order=1) for l in low])
    logits = logits[:, :shape[0], :shape[1], :shape[2]]
    e = np.exp(logits - logits.max(0, keepdims=True))
    return (e / e.sum(0, keepdims=True)).astype(np.float16)


def write_nifti(path, arr, spacing_zyx, origin, direction):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, path)


CT_STATS = {"mean": np.float32(97.29), "sd": np.float32(49.37), "percentile_00_5": np.float32(-17.0),
            "percentile_99_5": np.float32(201.0)}
IDENT = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# a rotation about z and a flip, as real scanners write them
OBLIQUE = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)

CASES = [
    # name, shape, spacing (z, y, x), target spacing (transposed frame), transpose_forward, schemes, use_mask,
    # direction, export?, store export probabilities?, dtype
    dict(name="iso_down", shape=(24, 40, 36), spacing=(1.5, 0.8, 0.8), target=(1.6, 1.0, 1.0),
         tf=(0, 1, 2), schemes=["CT"], mask=[False], direction=IDENT, export=True, probs=True),
    dict(name="aniso_sepz", shape=(12, 40, 36), spacing=(5.0, 0.8, 0.8), target=(3.0, 0.9, 0.9),
         tf=(0, 1, 2), schemes=["CT"], mask=[False], direction=OBLIQUE, export=True, probs=False),
    dict(name="target_aniso", shape=(20, 30, 30), spacing=(1.0, 1.0, 1.0), target=(3.5, 1.0, 1.0),
         tf=(0, 1, 2), schemes=["CT"], mask=[False], direction=IDENT, export=True, probs=False),
    dict(name="no_resample", shape=(16, 24, 20), spacing=(2.0, 0.75, 0.75), target=(2.0, 0.75, 0.75),
         tf=(0, 1, 2), schemes=["CT"], mask=[False], direction=IDENT, export=True, probs=False),
    dict(name="upsample", shape=(10, 16, 14), spacing=(1.2, 1.1, 1.3), target=(0.8, 0.7, 0.75),
         tf=(0, 1, 2), schemes=["CT"], mask=[False], direction=IDENT, export=True, probs=True),
    dict(name="lowres_x_nonct", shape=(20, 24, 10), spacing=(0.7, 0.7, 3.0), target=(1.0, 1.0, 2.0),
         tf=(0, 1, 2), schemes=["nonCT"], mask=[False], direction=IDENT, export=True, probs=False,
         dtype=np.float32, nan=True),
    dict(name="transpose_mask", shape=(18, 22, 8), spacing=(0.9, 0.9, 3.2), target=(2.0, 1.0, 1.0),
         tf=(2, 0, 1), schemes=["CT", "nonCT"], mask=[False, True], direction=IDENT, export=True, probs=False),
    dict(name="mask_3d_ct2", shape=(14, 20, 18), spacing=(1.3, 0.9, 0.9), target=(1.0, 1.1, 1.1),
         tf=(0, 1, 2), schemes=["CT2", "nonCT", "noNorm"], mask=[True, True, False], direction=IDENT,
         export=False, probs=False),
]


def main():
    check_versions()
    rng = np.random.default_rng(20261127)
    tmp = tempfile.mkdtemp()
    try:
        for case in CASES:
            run_case(case, rng, tmp)
    finally:
        shutil.rmtree(tmp)
    make_resize(np.random.default_rng(7))
    make_postprocessing(np.random.default_rng(11))


def make_resize(rng):
    """skimage.transform.resize (orders 0, 1, 3) and resample_data_or_seg's separate-z path on a random volume.

    resize/input.npy.gz (float32 8x11x13), resize/o<order>_<i>.npy.gz for the shapes in RESIZE_SHAPES
    (the first has an exact factor 2 on axis 0, where order 0 meets coordinates at exact halves), and
    resize/sepz_axis<a>_o<order>.npy.gz for resample_data_or_seg(do_separate_z=True, axis=[a], order_z=0).
    """
    from skimage.transform import resize
    d = os.path.join(OUT, "resize")
    os.makedirs(d, exist_ok=True)
    x = (rng.normal(0, 100, size=(8, 11, 13)) + 20).astype(np.float32)
    save_npy_gz(os.path.join(d, "input.npy.gz"), x)
    for i, shape in enumerate(RESIZE_SHAPES):
        for order in (0, 1, 3):
            y = resize(x.astype(float), shape, order, mode="edge", anti_aliasing=False).astype(np.float32)
            save_npy_gz(os.path.join(d, f"o{order}_{i}.npy.gz"), y)
    for axis, shape in SEPZ_SHAPES:
        for order in (1, 3):
            with contextlib.redirect_stdout(io.StringIO()):
                y = resample_data_or_seg(x[None], shape, False, [axis], order, True, order_z=0)[0]
            save_npy_gz(os.path.join(d, f"sepz_axis{axis}_o{order}.npy.gz"), y.astype(np.float32))
    print("resize done")


RESIZE_SHAPES = [(4, 17, 13), (12, 7, 20)]
SEPZ_SHAPES = [(0, (13, 9, 20)), (1, (5, 4, 17)), (2, (10, 15, 29))]


def make_postprocessing(rng):
    """remove_all_but_the_largest_connected_component on a blobby 3-class label map.

    postprocessing/labels.npy.gz (uint8 20x24x22), postprocessing/postprocessing.json as
    determine_postprocessing writes it (min_valid_object_sizes as str(dict)), expected_all.npy.gz (no minimum
    sizes) and expected_min.npy.gz (with them), volume_per_voxel 0.5.
    """
    from nnunet.postprocessing.connected_components import remove_all_but_the_largest_connected_component
    d = os.path.join(OUT, "postprocessing")
    os.makedirs(d, exist_ok=True)
    field = zoom(rng.normal(size=(5, 6, 6)), 4, order=1)[:20, :24, :22]
    labels = np.zeros(field.shape, dtype=np.uint8)
    labels[field > 0.3] = 1
    labels[field > 0.9] = 2
    # two single voxels of class 2 and a class-1 pair of equal size: ties of the largest are kept
    labels[0, 0, 0] = 2
    labels[19, 23, 21] = 2
    save_npy_gz(os.path.join(d, "labels.npy.gz"), labels)
    for_which = [[1, 2], 2]
    vpv = 0.5
    out_all, _, _ = remove_all_but_the_largest_connected_component(labels.copy(), for_which, vpv, None)
    save_npy_gz(os.path.join(d, "expected_all.npy.gz"), out_all.astype(np.uint8))
    min_sizes = {(1, 2): 40.0, 2: 2.0}
    out_min, _, _ = remove_all_but_the_largest_connected_component(labels.copy(), for_which, vpv, min_sizes)
    save_npy_gz(os.path.join(d, "expected_min.npy.gz"), out_min.astype(np.uint8))
    with open(os.path.join(d, "postprocessing.json"), "w") as f:
        json.dump({"dc_per_class_raw": {}, "for_which_classes": for_which,
                   "min_valid_object_sizes": str(min_sizes), "num_samples": 1}, f, indent=4)
    print("postprocessing done: removed", int((labels != out_all).sum()), "/", int((labels != out_min).sum()))


def run_case(case, rng, tmp):
    name = case["name"]
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    n_ch = len(case["schemes"])
    dtype = case.get("dtype", np.int16)
    origin = (-120.5, 33.25, 812.0)
    files = []
    for c in range(n_ch):
        img = phantom(case["shape"], rng, dtype=dtype)
        if c > 0:  # an MR-like second modality: positive intensities inside the body, same zero frame
            img = np.where(img != 0, (img.astype(np.float64) + 1000) // 4 + 3, 0).astype(dtype)
        if case.get("nan"):
            img[case["shape"][0] // 2, case["shape"][1] // 2, 4] = np.nan
        f = os.path.join(tmp, f"{name}_{c:04d}.nii.gz")
        write_nifti(f, img, case["spacing"], origin, case["direction"])
        save_npy_gz(os.path.join(d, f"input_{c}.npy.gz"), img)
        files.append(f)

    tf = list(case["tf"])
    tb = [int(i) for i in np.argsort(tf)]
    intensity = {c: dict(CT_STATS) for c in range(n_ch)}
    schemes = {c: s for c, s in enumerate(case["schemes"])}
    use_mask = {c: m for c, m in enumerate(case["mask"])}
    pre = GenericPreprocessor(schemes, use_mask, tf, intensity)
    target = np.array(case["target"], dtype=np.float64)
    data, seg, props = pre.preprocess_test_case(files, target)
    save_npy_gz(os.path.join(d, "expected.npy.gz"), data.astype(np.float32))

    params = {
        "target_spacing": [float(v) for v in target],
        "transpose_forward": tf,
        "transpose_backward": tb,
        "normalization_schemes": case["schemes"],
        "use_mask_for_norm": case["mask"],
        "intensityproperties": [{k: float(v) for k, v in intensity[c].items()} for c in range(n_ch)],
        # the geometry as SimpleITK read it back (NIfTI stores spacing as float32)
        "itk_spacing": [float(v) for v in props["itk_spacing"]],
        "itk_origin": [float(v) for v in props["itk_origin"]],
        "itk_direction": [float(v) for v in props["itk_direction"]],
    }
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump(params, f, indent=1)
    properties = {
        "original_size_of_raw_data": [int(v) for v in props["original_size_of_raw_data"]],
        "original_spacing": [float(v) for v in props["original_spacing"]],
        "crop_bbox": [[int(a), int(b)] for a, b in props["crop_bbox"]],
        "size_after_cropping": [int(v) for v in props["size_after_cropping"]],
        "size_after_resampling": [int(v) for v in props["size_after_resampling"]],
        "spacing_after_resampling": [float(v) for v in props["spacing_after_resampling"]],
        "itk_spacing": [float(v) for v in props["itk_spacing"]],
        "itk_origin": [float(v) for v in props["itk_origin"]],
        "itk_direction": [float(v) for v in props["itk_direction"]],
    }
    with open(os.path.join(d, "properties.json"), "w") as f:
        json.dump(properties, f, indent=1)

    if case["export"]:
        softmax16 = smooth_softmax(data.shape[1:], 3, rng)
        save_npy_gz(os.path.join(d, "softmax.npy.gz"), softmax16)
        softmax = softmax16.astype(np.float32)
        # predict_cases applies transpose_backward before the export
        softmax = softmax.transpose([0] + [i + 1 for i in tb])
        captured = {}
        original = seg_export.resample_data_or_seg

        def capture(*args, **kwargs):
            out = original(*args, **kwargs)
            captured["probs"] = out
            return out

        seg_export.resample_data_or_seg = capture
        try:
            out_f = os.path.join(tmp, f"{name}_seg.nii.gz")
            seg_export.save_segmentation_nifti_from_softmax(softmax, out_f, copy.deepcopy(props), order=1,
                                                            verbose=False)
        finally:
            seg_export.resample_data_or_seg = original
        seg = sitk.GetArrayFromImage(sitk.ReadImage(out_f)).astype(np.uint8)
        save_npy_gz(os.path.join(d, "export_seg.npy.gz"), seg)
        if case["probs"]:
            probs = captured.get("probs", softmax)
            save_npy_gz(os.path.join(d, "export_probs.npy.gz"), probs.astype(np.float32))
    print(name, "done:", props["size_after_cropping"], "->", props["size_after_resampling"])


if __name__ == "__main__":
    main()

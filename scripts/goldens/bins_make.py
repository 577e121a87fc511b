"""Goldens for nnu-bins: the file names, all_shape.txt lines, tile bytes and .info lists that the Ascend
recipe (ModelZoo-PyTorch ACL_PyTorch/contrib/cv/segmentation/3D_Nested_Unet, new.patch: the modified
`_internal_predict_3D_3Dconv_tiled` with pre_mode=1, and gen_dataset_info.py) produces for given cases.

The recipe's behaviour is re-stated here (not imported: it lives in a patch of a fork), driven by the real
nnU-Net functions it calls:
  * padding: batchgenerators `pad_nd_image(x, patch, 'constant', None, True, None)`,
  * steps: nnunet 1.7.1 `SegmentationNetwork._compute_steps_for_sliding_window(patch, shape, 0.5)`,
  * all_shape.txt: `NAME X Y Z-steps0-steps1-steps2\n` with NAME = basename.split('.')[0], X Y Z the padded
    shape (array axes 1..3 of the (c, x, y, z) data), steps joined by ',' (opened with mode 'w': one line),
  * tiles: for each start (axis 0 outer, axis 2 inner) the 4-D slice data[:, x, y, z] is flipped with
    torch.flip along the tile axes of mirror m (m0 none, m1 (3), m2 (2), m3 (3,2), m4 (1), m5 (3,1),
    m6 (2,1), m7 (3,2,1)) and written with ndarray.tofile as float32, name NAME_lbx_ubx_lby_uby_lbz_ubz_m.bin,
  * .info: one line 'INDEX PATH W H' per glob('BIN_DIR/*.bin') entry; sth1..4.info: step = len // 4, shards
    [0:step], [step:2step], [2step:3step], [3step:], each re-indexed from 0. (glob order is unspecified; we
    sort it, as nnu-bins does.)

Outputs (fixtures/bins/):
  shape_<case>.txt    the all_shape.txt the recipe writes for that case (patch 128^3)
  tiles_<case>.txt    the tile file names in write order (each 8 MiB = 128^3 * 4 bytes)
  small_volume.bin    a padded (1, 6, 5, 7) float32 volume (seeded normal noise), C order
  small_shape.txt     its all_shape.txt line for patch 4^3
  small_tiles.txt     'NAME SIZE' per tile file, in write order
  small_tiles.bin     the concatenated bytes of those files, in the same order
  small.info, small_sth1.info .. small_sth4.info   gen_dataset_info.py over BIN_DIR='input_bins'

Run: /work/venv/bin/python scripts/goldens/bins_make.py   (from the repository root)
Pinned versions used: Python 3.11, numpy 2.4.6, torch 2.15.0 (CPU), nnunet 1.7.1, batchgenerators 0.25.5.
"""
import glob
import os
import tempfile

import numpy as np
import torch
from batchgenerators.augmentations.utils import pad_nd_image
from nnunet.network_architecture.neural_network import SegmentationNetwork

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "bins")
MIRROR_AXES = [(), (3,), (2,), (3, 2), (1,), (3, 1), (2, 1), (3, 2, 1)]


def plan(data, patch):
    padded, _ = pad_nd_image(data, patch, "constant", None, True, None)
    steps = SegmentationNetwork._compute_steps_for_sliding_window(patch, padded.shape[1:], 0.5)
    return padded, steps


def shape_line(image_file_name, shape, steps):
    name = image_file_name.split("/")[-1].split(".")[0]
    line = name + " " + " ".join(str(int(s)) for s in shape[1:4])
    return line + "".join("-" + ",".join(str(s) for s in axis) for axis in steps) + "\n"


def tile_records(image_file_name, padded, steps, patch):
    """(file name, bytes) for every tile and mirror, in the recipe's write order."""
    name = image_file_name.split("/")[-1].split(".")[0]
    for x in steps[0]:
        for y in steps[1]:
            for z in steps[2]:
                b = [x, x + patch[0], y, y + patch[1], z, z + patch[2]]
                stem = name + "".join("_" + str(v) for v in b)
                tile = torch.from_numpy(np.ascontiguousarray(padded[:, b[0]:b[1], b[2]:b[3], b[4]:b[5]]))
                for m, axes in enumerate(MIRROR_AXES):
                    t = torch.flip(tile, axes) if axes else tile
                    yield stem + "_" + str(m) + ".bin", np.array(t).astype(np.float32).tobytes()


def tile_names(image_file_name, steps, patch):
    name = image_file_name.split("/")[-1].split(".")[0]
    out = []
    for x in steps[0]:
        for y in steps[1]:
            for z in steps[2]:
                b = [x, x + patch[0], y, y + patch[1], z, z + patch[2]]
                stem = name + "".join("_" + str(v) for v in b)
                out += [stem + "_" + str(m) + ".bin" for m in range(8)]
    return out


def info_lines(paths, w, h):
    return "".join(" ".join([str(i), p, w, h]) + "\n" for i, p in enumerate(paths))


def write(path, text):
    with open(os.path.join(OUT, path), "w") as f:
        f.write(text)


def main():
    os.makedirs(OUT, exist_ok=True)
    patch = (128, 128, 128)
    # Preprocessed (resampled, normalised) shapes in array order; the recipe's image_file_name is the
    # output file name CASE.nii.gz.
    cases = {
        "liver_11": (437, 309, 570),   # no padding, 6 x 4 x 8 tiles
        "liver_52": (100, 150, 300),   # axis 0 padded to 128
        "case_07_b": (128, 128, 128),  # one tile, underscores in the case name
    }
    for case, shape in cases.items():
        data = np.zeros((1,) + shape, dtype=np.float32)
        padded, steps = plan(data, patch)
        write("shape_%s.txt" % case, shape_line(case + ".nii.gz", padded.shape, steps))
        write("tiles_%s.txt" % case, "".join(n + "\n" for n in tile_names(case + ".nii.gz", steps, patch)))

    small_patch = (4, 4, 4)
    rng = np.random.default_rng(20261127)
    vol = rng.standard_normal((1, 6, 5, 7)).astype(np.float32)
    vol.tofile(os.path.join(OUT, "small_volume.bin"))
    padded, steps = plan(vol, small_patch)
    assert padded.shape == vol.shape
    write("small_shape.txt", shape_line("small_case.nii.gz", padded.shape, steps))
    records = list(tile_records("small_case.nii.gz", padded, steps, small_patch))
    write("small_tiles.txt", "".join("%s %d\n" % (n, len(b)) for n, b in records))
    with open(os.path.join(OUT, "small_tiles.bin"), "wb") as f:
        for _, b in records:
            f.write(b)

    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "input_bins"))
        for n, b in records:
            with open(os.path.join(tmp, "input_bins", n), "wb") as f:
                f.write(b)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            paths = sorted(glob.glob(os.path.join("input_bins", "*.bin")))
        finally:
            os.chdir(cwd)
    write("small.info", info_lines(paths, "128", "128"))
    step = len(paths) // 4
    parts = [paths[0:step], paths[step:2 * step], paths[2 * step:3 * step], paths[3 * step:]]
    for k, part in enumerate(parts):
        write("small_sth%d.info" % (k + 1), info_lines(part, "128", "128"))


if __name__ == "__main__":
    main()

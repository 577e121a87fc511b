"""Goldens for crates/nnu-tiling, produced by nnU-Net 1.7.1's own functions.

Writes into fixtures/tiling/ (or the folder given as the first argument):

- gaussian.json, gaussian_<z>x<y>x<x>.f32: `SegmentationNetwork._get_gaussian(patch, 1/8)` for several patch
  sizes. Every entry stores the sha256 and the FNV-1a 64 hash of the raw little-endian f32 bytes (C order)
  and a few sample values (as f32 bit patterns); the small maps are also stored whole as raw f32.
- steps.json: `SegmentationNetwork._compute_steps_for_sliding_window(patch, image, step_size)` for many cases.
- pad.json: `batchgenerators.augmentations.utils.pad_nd_image(x, patch, 'constant', {'constant_values': 0},
  return_slicer=True)` on (c, z, y, x) arrays: padded shape, pad below/above, and the slicer back.
- merge.json, merge_<name>_input.f32, merge_<name>_probs.f32: `SegmentationNetwork._internal_predict_3D_3Dconv_tiled`
  (all_in_gpu=False, constant padding, regions_class_order=None) driven by a deterministic fake network
  (`FakeNet` below). Its logits are, per class k and patch voxel (z, y, x), all in float32 with one rounding
  per operation, in this order:
      acc = x[0] * a[k, 0]; acc = acc + x[c] * a[k, c] for c = 1.. ; ramp = ((cz[k] * z + cy[k] * y) + cx[k] * x) + d[k]
      logit = acc + ramp
  with z, y, x the voxel's integer position inside the patch (as float32). The ramp makes the output depend on
  the position inside the patch, so a missing flip of the input or of the prediction changes the result.
  Inputs and probabilities are raw little-endian f32 in C order, (c, z, y, x).

Pinned versions: nnunet 1.7.1, batchgenerators 0.25.5, numpy 2.4.6, scipy 1.17.1, torch 2.15 (CPU).
Run: /work/venv/bin/python scripts/goldens/tiling_make.py [out_dir]
"""
import hashlib
import json
import os
import sys

import numpy as np

# nnunet 1.7.1 predates numpy 2: restore the aliases it may touch.
for _name, _alias in (("int", int), ("float", float)):
    if not hasattr(np, _name):
        setattr(np, _name, _alias)

import torch  # noqa: E402
from batchgenerators.augmentations.utils import pad_nd_image  # noqa: E402
from nnunet.network_architecture.neural_network import SegmentationNetwork  # noqa: E402
from nnunet.utilities.nd_softmax import softmax_helper  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "tiling")


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bit: the tests recompute it (no sha256 implementation in the Rust dependency tree)."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def gaussians():
    patches = [(128, 128, 128), (64, 64, 64), (5, 7, 9), (1, 3, 2), (12, 16, 10), (11, 13, 9), (8, 8, 8),
               (96, 160, 160), (80, 192, 160), (28, 256, 256), (129, 130, 131), (17, 33, 200)]
    entries = []
    for p in patches:
        g = SegmentationNetwork._get_gaussian(p, sigma_scale=1. / 8)
        assert g.dtype == np.float32 and g.shape == p
        raw = np.ascontiguousarray(g).astype("<f4").tobytes()
        rng = np.random.default_rng(sum(p))
        idx = [tuple(int(i) // 2 for i in p), (0, 0, 0), tuple(int(i) - 1 for i in p)]
        idx += [tuple(int(rng.integers(0, i)) for i in p) for _ in range(8)]
        e = {
            "patch": list(p),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "fnv1a64": format(fnv1a64(raw), "016x"),
            "samples": [{"index": list(i), "bits": int(np.float32(g[i]).view(np.uint32))} for i in idx],
        }
        if g.size <= 4096:
            name = "gaussian_%dx%dx%d.f32" % p
            with open(os.path.join(OUT, name), "wb") as f:
                f.write(raw)
            e["file"] = name
        entries.append(e)
        print("gaussian", p, e["sha256"][:16])
    with open(os.path.join(OUT, "gaussian.json"), "w") as f:
        json.dump(entries, f, indent=1)


def steps():
    cases = [((64, 64, 64), (110, 64, 200), 0.5), ((128, 128, 128), (128, 129, 500), 0.5),
             ((128, 128, 128), (900, 512, 512), 0.5), ((3, 5, 7), (3, 6, 100), 0.5)]
    rng = np.random.default_rng(1234)
    for _ in range(300):
        patch = tuple(int(i) for i in rng.integers(1, 160, 3))
        image = tuple(int(p + rng.integers(0, 3 * p + 40)) for p in patch)
        step = float(rng.choice([0.5, 0.5, 0.25, 1.0, 0.33, 0.7, 0.125, 0.9, 1.0 / 3]))
        cases.append((patch, image, step))
    out = []
    for patch, image, step in cases:
        s = SegmentationNetwork._compute_steps_for_sliding_window(patch, image, step)
        out.append({"patch": list(patch), "image": list(image), "step_size": step,
                    "steps": [[int(v) for v in a] for a in s]})
    with open(os.path.join(OUT, "steps.json"), "w") as f:
        json.dump(out, f)
    print("steps", len(out))


def pads():
    cases = [((1, 20, 26, 23), (12, 16, 10)), ((1, 9, 14, 11), (12, 16, 10)), ((2, 7, 9, 5), (12, 16, 10)),
             ((1, 128, 128, 128), (128, 128, 128)), ((1, 100, 300, 300), (128, 128, 128)),
             ((1, 127, 1, 2), (128, 128, 128)), ((3, 1, 1, 1), (2, 3, 4))]
    out = []
    for shape, patch in cases:
        x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 1
        res, slicer = pad_nd_image(x, patch, "constant", {"constant_values": 0}, True, None)
        below = [int(s.start) for s in slicer[1:]]
        above = [int(res.shape[i + 1] - s.stop) for i, s in enumerate(slicer[1:])]
        assert np.array_equal(res[tuple(slicer)], x)
        assert res.sum() == x.sum()
        out.append({"shape": list(shape), "patch": list(patch), "padded_shape": [int(i) for i in res.shape],
                    "pad_below": below, "pad_above": above,
                    "slicer": [[int(s.start or 0), int(s.stop) if s.stop is not None else int(res.shape[i])]
                               for i, s in enumerate(slicer)]})
    with open(os.path.join(OUT, "pad.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("pads", len(out))


class FakeNet(SegmentationNetwork):
    """Deterministic stand-in for a segmentation network (see the module docstring for its formula)."""

    def __init__(self, num_classes, in_channels, seed):
        super().__init__()
        self.conv_op = torch.nn.Conv3d
        self.num_classes = num_classes
        self.inference_apply_nonlin = softmax_helper
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # get_device() needs one parameter
        rng = np.random.default_rng(seed)
        self.a = rng.uniform(-2, 2, (num_classes, in_channels)).astype(np.float32)
        self.cz = rng.uniform(-0.3, 0.3, num_classes).astype(np.float32)
        self.cy = rng.uniform(-0.3, 0.3, num_classes).astype(np.float32)
        self.cx = rng.uniform(-0.3, 0.3, num_classes).astype(np.float32)
        self.d = rng.uniform(-1, 1, num_classes).astype(np.float32)

    def forward(self, x):
        assert x.dtype == torch.float32 and x.shape[0] == 1
        _, c_in, pz, py, px = x.shape
        gz = torch.arange(pz, dtype=torch.float32).view(pz, 1, 1)
        gy = torch.arange(py, dtype=torch.float32).view(1, py, 1)
        gx = torch.arange(px, dtype=torch.float32).view(1, 1, px)
        outs = []
        for k in range(self.num_classes):
            acc = x[0, 0] * float(self.a[k, 0])
            for c in range(1, c_in):
                acc = acc + x[0, c] * float(self.a[k, c])
            ramp = ((torch.tensor(self.cz[k]) * gz + torch.tensor(self.cy[k]) * gy) + torch.tensor(self.cx[k]) * gx) \
                + torch.tensor(self.d[k])
            outs.append(acc + ramp)
        return torch.stack(outs)[None]

    def params(self):
        return {"a": [[int(v) for v in row] for row in self.a.view(np.uint32)],
                "cz": [int(v) for v in self.cz.view(np.uint32)], "cy": [int(v) for v in self.cy.view(np.uint32)],
                "cx": [int(v) for v in self.cx.view(np.uint32)], "d": [int(v) for v in self.d.view(np.uint32)]}


def merges():
    # name, image (c, z, y, x), patch, classes, step, do_mirroring, mirror_axes, use_gaussian
    cases = [
        ("basic", (1, 20, 26, 23), (12, 16, 10), 3, 0.5, True, (0, 1, 2), True),
        ("smaller", (1, 9, 14, 11), (12, 16, 10), 3, 0.5, True, (0, 1, 2), True),
        ("single_tile", (1, 7, 9, 5), (12, 16, 10), 3, 0.5, True, (0, 1, 2), True),
        ("no_mirror_2ch", (2, 20, 26, 23), (12, 16, 10), 2, 0.5, False, (0, 1, 2), True),
        ("axes_0_2", (1, 18, 21, 25), (12, 16, 10), 3, 0.5, True, (0, 2), True),
        ("no_gaussian", (1, 20, 26, 23), (12, 16, 10), 3, 0.5, True, (0, 1, 2), False),
        ("odd_step", (1, 17, 19, 15), (11, 13, 9), 4, 0.33, True, (0, 1, 2), True),
        ("axes_1", (1, 16, 30, 12), (8, 8, 8), 2, 0.5, True, (1,), True),
    ]
    out = []
    for i, (name, shape, patch, classes, step, mirror, axes, gauss) in enumerate(cases):
        rng = np.random.default_rng(100 + i)
        x = rng.normal(0, 1, shape).astype(np.float32)
        net = FakeNet(classes, shape[0], 200 + i)
        with torch.no_grad():
            _, probs = net._internal_predict_3D_3Dconv_tiled(x, step, mirror, axes, patch, None, gauss, "constant",
                                                             {"constant_values": 0}, False, False)
        assert probs.dtype == np.float32 and probs.shape == (classes,) + shape[1:]
        x.astype("<f4").tofile(os.path.join(OUT, "merge_%s_input.f32" % name))
        probs.astype("<f4").tofile(os.path.join(OUT, "merge_%s_probs.f32" % name))
        out.append({"name": name, "shape": list(shape), "patch": list(patch), "num_classes": classes,
                    "step_size": step, "do_mirroring": mirror, "mirror_axes": list(axes), "use_gaussian": gauss,
                    "net": net.params()})
        print("merge", name, probs.shape)
    with open(os.path.join(OUT, "merge.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    gaussians()
    steps()
    pads()
    merges()

"""Time nnU-Net 1.7.1's evaluator on the liver-size phantom pair of benches/benches/metrics.rs.

The pair (z, y, x) = (480, 512, 512) uint8 is the same analytic phantom as the Rust bench (exact integer
ellipsoid tests): label 1 a liver-like ellipsoid, label 2 three tumour spheres; the prediction has a
slightly larger liver and shifted tumours. Prints the best-of-N wall time of
`Evaluator(test, reference, labels=[0, 1, 2]).evaluate()` (the per-case work of `aggregate_scores`, volumes
already in memory, one process), the per-label confusion counts (to check against the Rust side), and with
`--surface` the time of nnU-Net's `hausdorff_distance_95` (MedPy) for labels 1 and 2 with spacing
(1.0, 0.8, 0.8).

Pinned versions: Python 3.11, nnunet 1.7.1, MedPy 0.5.2, numpy 2.4.6, scipy 1.17.1.
Run: /work/venv/bin/python scripts/bench/evaluate_vs_nnunet.py [--repeat 3] [--surface]
Compare with: cargo bench -p nnu-benches --bench metrics
"""

import argparse
import time

import numpy as np

for _name, _alias in (("int", int), ("float", float), ("bool", bool)):
    if _name not in np.__dict__:
        setattr(np, _name, _alias)

from nnunet.evaluation.evaluator import Evaluator  # noqa: E402
from nnunet.evaluation.metrics import ConfusionMatrix, hausdorff_distance_95  # noqa: E402

SHAPE = (480, 512, 512)


def inside(c, r):
    """Boolean volume of ((p - c) / r)^2 summed <= 1, exactly in int64, one z slab at a time."""
    r2 = [int(v) * int(v) for v in r]
    out = np.zeros(SHAPE, bool)
    y = (np.arange(SHAPE[1], dtype=np.int64) - c[1]) ** 2 * (r2[0] * r2[2])
    x = (np.arange(SHAPE[2], dtype=np.int64) - c[2]) ** 2 * (r2[0] * r2[1])
    yx = y[:, None] + x[None, :]
    bound = r2[0] * r2[1] * r2[2]
    for z in range(SHAPE[0]):
        out[z] = (z - c[0]) ** 2 * (r2[1] * r2[2]) + yx <= bound
    return out


def phantom(liver_grow, tumour_shift):
    seg = np.zeros(SHAPE, np.uint8)
    seg[inside((240, 270, 230), (150 + liver_grow, 170 + liver_grow, 190 + liver_grow))] = 1
    for c, r in (((200, 250, 200), 30), ((290, 320, 280), 18), ((250, 200, 330), 9)):
        seg[inside((c[0] + tumour_shift, c[1], c[2] + tumour_shift), (r, r, r))] = 2
    return seg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--surface", action="store_true", help="also time MedPy hd95 for labels 1 and 2")
    args = parser.parse_args()

    reference = phantom(0, 0)
    test = phantom(3, 2)
    for label in (0, 1, 2):
        cm = ConfusionMatrix(test == label, reference == label)
        print("label %d: tp fp tn fn = %s" % (label, cm.get_matrix()))

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        Evaluator(test=test, reference=reference, labels=[0, 1, 2]).evaluate()
        times.append(time.perf_counter() - t0)
    print("nnU-Net Evaluator.evaluate, labels 0,1,2: best %.3f s of %s" % (min(times), ["%.3f" % t for t in times]))

    if args.surface:
        t0 = time.perf_counter()
        for label in (1, 2):
            cm = ConfusionMatrix(test == label, reference == label)
            hd95 = hausdorff_distance_95(confusion_matrix=cm, voxel_spacing=(1.0, 0.8, 0.8))
            print("label %d: hd95 %.6f" % (label, hd95))
        print("nnU-Net hausdorff_distance_95 (MedPy), labels 1,2: %.3f s" % (time.perf_counter() - t0))


if __name__ == "__main__":
    main()

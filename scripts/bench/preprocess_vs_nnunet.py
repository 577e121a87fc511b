"""Times nnU-Net 1.7.1's resampling and normalisation on the input of benches/benches/preprocessing.rs.

The phantom is the same analytic volume as the Rust bench: (z, y, x) = (200, 256, 256) float32, air (-1000)
outside a cylinder of radius 110, `40 + 60 sin(0.05 z) cos(0.07 y) + ((31 z + 17 y + 7 x) % 23 - 11)` inside.
Each step calls nnU-Net's own function on the same arrays and shapes as the matching criterion bench:

  resample/order3_3d     resample_data_or_seg(order=3, do_separate_z=False)  -> (250, 300, 300)
  resample/order1_3d     resample_data_or_seg(order=1, do_separate_z=False)
  resample/order3_sepz   resample_data_or_seg(order=3, do_separate_z=True, axis=[0], order_z=0)
  resample/order1_sepz   resample_data_or_seg(order=1, do_separate_z=True, axis=[0], order_z=0)
  resample/order3_zonly  resample_data_or_seg(order=3, do_separate_z=False) -> (250, 256, 256): only z changes
  normalize/ct           GenericPreprocessor's CT branch (np.clip, subtract, divide) on the resampled volume
  case/preprocess        crop_to_nonzero + GenericPreprocessor.resample_and_normalize (spacing 1.2/0.9/0.9 ->
                         0.96/0.768/0.768)
  case/export_3class     save_segmentation_nifti_from_softmax's numerics (resample 3 classes with order 1,
                         argmax, paste) without the NIfTI write

and prints wall time, CPU time (user + system, all threads) and peak RSS (VmHWM) of a fresh process per step,
with the RSS its inputs took before the step started (VmHWM is reset with /proc/self/clear_refs once the inputs
exist). The machine these run on is often shared: CPU time is the steadier number. Compare with
crates/nnu-preprocessing/examples/prep_steps.rs (same steps, prints CPU time and page faults) and
`cargo bench -p nnu-benches --bench preprocessing`.

Run: /work/venv/bin/python scripts/bench/preprocess_vs_nnunet.py [--repeat N] [--only NAME]
Versions: nnunet 1.7.1, numpy 2.4.6, scipy 1.17.1, scikit-image 0.26.0, batchgenerators 0.25.5.
"""
import argparse
import contextlib
import io
import subprocess
import sys
import time

import numpy as np

for _name, _t in (("int", int), ("float", float), ("bool", bool), ("object", object)):
    if not hasattr(np, _name):
        setattr(np, _name, _t)

with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints a citation banner on import
    from nnunet.preprocessing.cropping import crop_to_nonzero  # noqa: E402
    from nnunet.preprocessing.preprocessing import GenericPreprocessor, resample_data_or_seg  # noqa: E402

SHAPE = (200, 256, 256)
OUT = (250, 300, 300)
STATS = {"mean": np.float32(99.4), "sd": np.float32(39.4), "percentile_00_5": np.float32(-17.0),
         "percentile_99_5": np.float32(201.0)}


def phantom():
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij", sparse=True)
    t = ((z * 31 + y * 17 + x * 7) % 23).astype(np.float64) - 11.0
    v = 40.0 + 60.0 * np.sin(z * 0.05) * np.cos(y * 0.07) + t
    out = ((y - 128.0) ** 2 + (x - 128.0) ** 2) > 110.0 ** 2
    return np.where(out, -1000.0, v).astype(np.float32)


def probs():
    c, z, y, x = np.meshgrid(*[np.arange(n) for n in (3,) + OUT], indexing="ij", sparse=True)
    c = c.astype(np.float32)
    return np.exp(np.sin(z * np.float32(0.03) + c) + np.cos(y * np.float32(0.02)) *
                  np.sin(x * np.float32(0.025) * c)).astype(np.float32)


def export(softmax, shape_after_cropping, bbox, original_shape):
    seg = resample_data_or_seg(softmax, shape_after_cropping, False, None, 1, False, 0).argmax(0)
    out = np.zeros(original_shape, dtype=np.uint8)
    out[bbox[0][0]:bbox[0][1], bbox[1][0]:bbox[1][1], bbox[2][0]:bbox[2][1]] = seg
    return out


def preprocess(data):
    d, s, bbox = crop_to_nonzero(data[None].copy(), None, -1)
    pre = GenericPreprocessor({0: "CT"}, {0: False}, [0, 1, 2], {0: STATS})
    props = {"original_spacing": np.array([1.2, 0.9, 0.9])}
    return pre.resample_and_normalize(d, np.array([0.96, 0.768, 0.768]), props, s)


def normalize(d):
    d = np.clip(d, STATS["percentile_00_5"], STATS["percentile_99_5"])
    return (d - STATS["mean"]) / STATS["sd"]


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_hwm():
    """Resets VmHWM to the current RSS (Linux: clear_refs 5), so the peak is the step's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def vm_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_step(name, repeat):
    data = phantom()
    if name == "normalize/ct":
        resampled = np.zeros(OUT, dtype=np.float32) + data.mean()
    if name == "case/export_3class":
        softmax = probs()
    steps = {
        "normalize/ct": lambda: normalize(resampled),
        "resample/order1_sepz": lambda: resample_data_or_seg(data[None], OUT, False, [0], 1, True, 0),
        "resample/order3_sepz": lambda: resample_data_or_seg(data[None], OUT, False, [0], 3, True, 0),
        "resample/order1_3d": lambda: resample_data_or_seg(data[None], OUT, False, None, 1, False, 0),
        "resample/order3_3d": lambda: resample_data_or_seg(data[None], OUT, False, None, 3, False, 0),
        "resample/order3_zonly": lambda: resample_data_or_seg(data[None], (OUT[0],) + SHAPE[1:], False, None, 3, False,
                                                              0),
        "case/preprocess": lambda: preprocess(data),
        "case/export_3class": lambda: export(softmax, SHAPE, [[0, 200], [0, 256], [0, 256]], SHAPE),
    }
    reset_hwm()
    before = vm_rss_mib()
    times = []
    cpu = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c0 = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            steps[name]()
        cpu.append(time.process_time() - c0)
        times.append(time.perf_counter() - t0)
    print(f"{name:24s} {min(times):8.3f} s  CPU {min(cpu):8.3f} s   peak RSS {vm_hwm_mib():7.0f} MiB "
          f"(inputs {before:7.0f} MiB)", flush=True)


STEPS = ["normalize/ct", "resample/order1_sepz", "resample/order3_sepz", "resample/order1_3d", "resample/order3_3d",
         "resample/order3_zonly", "case/preprocess", "case/export_3class"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default=None, help="run one step in this process")
    args = ap.parse_args()
    if args.only:
        run_step(args.only, args.repeat)
        return
    # one fresh process per step, so that each peak RSS is that step's own
    for name in STEPS:
        subprocess.run([sys.executable, "-W", "ignore", __file__, "--only", name, "--repeat", str(args.repeat)],
                       check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()

"""Time SimpleITK reading and writing the same .nii.gz files as `benches/benches/nifti.rs`.

Run the criterion bench first (it writes the files into target/bench-data/nifti/):
    cargo bench -p nnu-benches --bench nifti
    /work/venv/bin/python scripts/bench/nifti_vs_sitk.py [N] [read|write|all]

Prints, per file, the median and the minimum wall time of N runs (default 5) of
  - read:  sitk.ReadImage + GetArrayFromImage(...).astype(float32) (what nnU-Net does and what
           nnu_volume::read_volume returns),
  - write: sitk.WriteImage(useCompression=True) of the int16 image (SimpleITK's default level), and with
           compressionLevel=1 for comparison with nnu-volume's default,
and the load average before and after (the development VM is shared: compare with nnu-volume's numbers
taken in the same minutes). Single process, SimpleITK's default thread count (ITK's NIfTI IO inflates
and deflates with single-threaded zlib).

Pinned versions: Python 3.11, numpy 2.4.6, SimpleITK 2.5.7.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

DATA = Path(__file__).resolve().parents[2] / "target" / "bench-data" / "nifti"


def timed(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    what = sys.argv[2] if len(sys.argv) > 2 else "all"
    print(f"SimpleITK {sitk.Version.VersionString()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"median/min of {n}, load average {load()}")
    files = ["phantom_ours.nii.gz", "phantom_single.nii.gz", "phantom.nii"]
    for name in files:
        p = DATA / name
        if not p.exists():
            sys.exit(f"error: {p}: missing; run `cargo bench -p nnu-benches --bench nifti` first")
    if what in ("read", "all"):
        for name in files:
            p = str(DATA / name)
            med, best = timed(lambda: sitk.GetArrayFromImage(sitk.ReadImage(p)).astype(np.float32), n)
            print(f"read  {name:24s} ReadImage + GetArrayFromImage.astype(f32)  median {med:6.3f} s  min {best:6.3f} s")
    if what in ("write", "all"):
        img = sitk.ReadImage(str(DATA / "phantom.nii"))
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out.nii.gz")
            med, best = timed(lambda: sitk.WriteImage(img, out, True), n)
            size = os.path.getsize(out)
            print(f"write default level (useCompression=True)       median {med:6.3f} s  min {best:6.3f} s  {size} bytes")
            med, best = timed(lambda: sitk.WriteImage(img, out, True, 1), n)
            size = os.path.getsize(out)
            print(f"write compressionLevel=1                        median {med:6.3f} s  min {best:6.3f} s  {size} bytes")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

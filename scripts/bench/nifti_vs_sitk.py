"""Time SimpleITK reading and writing the same .nii.gz files as `benches/benches/nifti.rs`.

Run the criterion bench first (it writes the files into target/bench-data/nifti/):
    cargo bench -p nnu-benches --bench nifti
    /work/venv/bin/python scripts/bench/nifti_vs_sitk.py

Prints, per file, the best-of-N wall time of
  - read:  sitk.ReadImage, and ReadImage + GetArrayFromImage(...).astype(float32) (what nnU-Net does and
           what nnu_volume::read_volume returns),
  - write: sitk.WriteImage(useCompression=True) of the int16 image (SimpleITK's default level), and with
           compressionLevel=1 for comparison with nnu-volume's default.
Single process, SimpleITK's default thread count (ITK's NIfTI IO is single-threaded zlib).

Pinned versions: Python 3.11, numpy 2.4.6, SimpleITK 2.5.7.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

DATA = Path(__file__).resolve().parents[2] / "target" / "bench-data" / "nifti"


def best(f, n):
    times = []
    out = None
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"SimpleITK {sitk.Version.VersionString()}, numpy {np.__version__}, {os.cpu_count()} CPUs, best of {n}")
    files = ["phantom_ours.nii.gz", "phantom_single.nii.gz", "phantom.nii"]
    img = None
    for name in files:
        p = DATA / name
        if not p.exists():
            sys.exit(f"error: {p}: missing; run `cargo bench -p nnu-benches --bench nifti` first")
        t, img_ = best(lambda: sitk.ReadImage(str(p)), n)
        t2, _ = best(lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float32), n)
        print(f"read  {name:28s} ReadImage {t:7.3f} s   + GetArrayFromImage.astype(f32) {t2:7.3f} s")
        img = img_
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.nii.gz")
        t, _ = best(lambda: sitk.WriteImage(img, out, True), n)
        size = os.path.getsize(out)
        print(f"write default level (useCompression=True)   {t:7.3f} s   {size} bytes")
        t, _ = best(lambda: sitk.WriteImage(img, out, True, 1), n)
        size = os.path.getsize(out)
        print(f"write compressionLevel=1                   {t:7.3f} s   {size} bytes")


if __name__ == "__main__":
    main()

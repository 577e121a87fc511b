"""Time SimpleITK and nnu-volume reading and writing the same NIfTI files, interleaved.

Run the criterion bench first (it writes the files into target/bench-data/nifti/), and build the timing
example:
    cargo bench -p nnu-benches --bench nifti
    cargo build --release -p nnu-volume --example nifti_timing
    /work/venv/bin/python scripts/bench/nifti_vs_sitk.py [ROUNDS]

Each round times, per file, one SimpleITK read (sitk.ReadImage + GetArrayFromImage(...).astype(float32):
what nnU-Net does and what nnu_volume::read_volume returns) right before one nnu-volume read (the
`nifti_timing` example, timed inside its process), then one write of the 512x512x480 int16 phantom as
`.nii.gz` by each (SimpleITK: WriteImage(useCompression=True), its default level; nnu-volume:
write_volume with default options, level 1 in parallel gzip members). The development VM is shared with
other jobs, so the pairs see the same load; the script prints the median and minimum of each, their
ratio (SimpleITK / nnu-volume), and the load average before and after. Without the example binary only
SimpleITK is timed. Single process, SimpleITK's default thread count (ITK's NIfTI IO inflates and
deflates with single-threaded zlib).

Pinned versions: Python 3.11, numpy 2.4.6, SimpleITK 2.5.7.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "target" / "bench-data" / "nifti"
OURS = ROOT / "target" / "release" / "examples" / "nifti_timing"
FILES = ["phantom_ours.nii.gz", "phantom_single.nii.gz", "phantom.nii"]


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sitk_read(p):
    t = time.perf_counter()
    sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float32)
    return time.perf_counter() - t


def sitk_write(img, out):
    t = time.perf_counter()
    sitk.WriteImage(img, str(out), True)
    return time.perf_counter() - t


def ours(args):
    r = subprocess.run([str(OURS), *map(str, args)], capture_output=True, text=True, check=True)
    return float(r.stdout.split()[-1])


def report(name, s, o):
    line = f"{name:34s} SimpleITK median {statistics.median(s):6.3f} s (min {min(s):6.3f})"
    if o:
        ratio = statistics.median(s) / statistics.median(o)
        line += f"   nnu-volume median {statistics.median(o):6.3f} s (min {min(o):6.3f})   ratio {ratio:4.2f}x"
    print(line, flush=True)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    have_ours = OURS.exists()
    print(f"SimpleITK {sitk.Version.VersionString()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"{rounds} interleaved rounds, load average {load()}"
          + ("" if have_ours else f"; {OURS} missing: SimpleITK only"), flush=True)
    for name in FILES:
        if not (DATA / name).exists():
            sys.exit(f"error: {DATA / name}: missing; run `cargo bench -p nnu-benches --bench nifti` first")
    times = {k: ([], []) for k in FILES + ["write"]}
    img = sitk.ReadImage(str(DATA / "phantom.nii"))
    with tempfile.TemporaryDirectory() as d:
        for _ in range(rounds):
            for name in FILES:
                times[name][0].append(sitk_read(DATA / name))
                if have_ours:
                    times[name][1].append(ours([DATA / name]))
            times["write"][0].append(sitk_write(img, Path(d) / "sitk.nii.gz"))
            if have_ours:
                times["write"][1].append(ours(["--write", Path(d) / "ours.nii.gz", DATA / "phantom.nii"]))
        sizes = [os.path.getsize(Path(d) / f) for f in ("sitk.nii.gz", "ours.nii.gz") if (Path(d) / f).exists()]
    for name in FILES:
        report(f"read {name}", *times[name])
    report("write .nii.gz (default level)", *times["write"])
    print(f"written sizes (SimpleITK, nnu-volume): {sizes} bytes")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

"""Orchestrates the comparison run (called by benches/compare/run.sh, which builds the binaries and sets up
the Python environment). Generates the inputs with nnu-phantom, runs each pair (ours: release binaries or
benches/examples/compare_step; reference: benches/compare/ref_steps.py) REPEAT times each, alternating,
under `/usr/bin/time -v`, and writes OUT/results.json and OUT/results.md and prints the table.

Per run it records the process wall time and peak RSS (GNU time's "Maximum resident set size": the largest
single process of the tree, so a multiprocessing reference is under-counted; said in the table), the step's
own seconds where the program reports them, and the 1-minute load average just before the run.

Which seconds each pair compares (the "metric" column):
  nifti, export          the step's own seconds on both sides (input generation excluded on both)
  preprocess, evaluate   ours: the whole process (plans, NIfTI read, work, write); nnU-Net: the timed call
                         inside the process (interpreter start and imports excluded), so the ratio is
                         conservative for us
  patch (small / full)   median per-patch latency as each program reports it (one warm-up call first)

Pinned versions: see benches/compare/requirements.txt.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd, env=None, cwd=None):
    """Runs cmd under /usr/bin/time -v; returns wall, peak RSS, load, the JSON line (if any) and stdout."""
    load1 = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name] + cmd, capture_output=True, text=True,
                           env=env, cwd=cwd)
        tv = tf.read()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", tv)
    parts = [float(x) for x in m.group(1).split(":")]
    wall = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv).group(1)) / 1024
    step = None
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                step = json.loads(line)
            except json.JSONDecodeError:
                pass
    return {"cmd": cmd, "wall_s": wall, "rss_mib": rss, "load1_before": load1,
            "load1_after": os.getloadavg()[0], "step": step, "stdout": p.stdout[-4000:]}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Runner:
    def __init__(self, args):
        self.a = args
        self.bin = args.bin
        self.py = args.python
        self.ref = os.path.join(HERE, "ref_steps.py")
        self.out = args.out
        self.results = {"pairs": {}, "ours_only": {}}
        prev = os.path.join(self.out, "results.json")
        if os.path.isfile(prev) and not args.fresh:
            # a rerun with --only replaces the pairs it runs and keeps the others
            with open(prev) as f:
                old = json.load(f)
            for k in ("pairs", "ours_only", "flops", "scratch", "machine_runs"):
                if k in old:
                    self.results[k] = old[k]

    def ours(self, tool, *args):
        return [os.path.join(self.bin, tool)] + [str(a) for a in args]

    def example(self, *args):
        return [self.a.example] + [str(a) for a in args]

    def refcmd(self, *args):
        return [self.py, "-W", "ignore", self.ref] + [str(a) for a in args]

    def pair(self, name, ours_cmd, ref_cmd, metric, repeat=None, prepare=None, sub=()):
        """Runs both sides `repeat` times, alternating; metric(run, side) -> seconds."""
        repeat = repeat or self.a.repeat
        runs = {"ours": [], "ref": []}
        for i in range(repeat):
            for side, cmd in (("ours", ours_cmd), ("ref", ref_cmd)):
                if prepare:
                    prepare(side)
                log(f"[{name}] {side} run {i + 1}/{repeat}: {' '.join(cmd)}")
                r = timed(cmd)
                r["metric_s"] = metric(r, side)
                log(f"[{name}] {side}: {r['metric_s']:.3f} s (process {r['wall_s']:.2f} s, peak RSS "
                    f"{r['rss_mib']:.0f} MiB, load {r['load1_before']:.2f})")
                runs[side].append(r)
        res = {"runs": runs}
        for side in ("ours", "ref"):
            res[f"{side}_s"] = median(r["metric_s"] for r in runs[side])
            res[f"{side}_rss_mib"] = median(r["rss_mib"] for r in runs[side])
            res[f"{side}_wall_s"] = median(r["wall_s"] for r in runs[side])
        res["speedup"] = res["ref_s"] / res["ours_s"] if res["ours_s"] else None
        res["rss_ratio"] = res["ours_rss_mib"] / res["ref_rss_mib"] if res["ref_rss_mib"] else None
        res["load1"] = [r["load1_before"] for s in ("ours", "ref") for r in runs[s]]
        for key in sub:  # sub-steps reported by both sides (e.g. read_s / write_s)
            o = median(r["step"].get(key) for r in runs["ours"])
            f = median(r["step"].get(key) for r in runs["ref"])
            res.setdefault("sub", {})[key] = {"ours_s": o, "ref_s": f, "speedup": f / o if o else None}
        self.results["pairs"][name] = res
        self.save()
        return res

    def save(self):
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=1, default=str)

    # ---------------------------------------------------------------- inputs
    def inputs(self):
        a = self.a
        d = os.path.join(self.out, "inputs")
        if a.quick:
            shape, spacing, lab_shape, export_shape = "48,192,192", "2.0,0.78,0.78", "48,192,192", "60,128,128"
        else:
            shape, spacing, lab_shape, export_shape = a.ct_shape, "1.5,0.78,0.78", a.ct_shape, a.export_shape
        self.export_shape = export_shape
        ct_dir = os.path.join(d, "ct")
        if not os.path.isdir(ct_dir):
            log(f"generating the CT phantom {shape} at {spacing} mm")
            sh(self.ours("nnu-phantom", "--out", ct_dir, "--cases", 1, "--shape", shape, "--spacing", spacing,
                         "--seed", 0))
        # real CTs are single gzip streams as SimpleITK / ITK write them (nnu-phantom writes parallel gzip
        # members, which only our reader can decompress in parallel): resave every input with SimpleITK
        src = sorted(os.path.join(ct_dir, "imagesTr", f) for f in os.listdir(os.path.join(ct_dir, "imagesTr")))[0]
        self.ct = os.path.join(d, "ct_0000.nii.gz")
        if not os.path.isfile(self.ct):
            sh(self.refcmd("nifti", src, self.ct))
        ref_dir, pred_dir = os.path.join(d, "labels_ref"), os.path.join(d, "labels_pred")
        if not os.path.isdir(ref_dir):
            log(f"generating {a.eval_cases} label pairs {lab_shape}")
            for seed, target in ((0, ref_dir), (1000, pred_dir)):
                tmp = target + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                sh(self.ours("nnu-phantom", "--out", tmp, "--cases", a.eval_cases, "--shape", lab_shape,
                             "--spacing", spacing, "--seed", seed))
                os.makedirs(target, exist_ok=True)
                labels = sorted(os.listdir(os.path.join(tmp, "labelsTr")))
                for i, f in enumerate(labels):
                    sh(self.refcmd("nifti", os.path.join(tmp, "labelsTr", f),
                                   os.path.join(target, f"case_{i:03d}.nii.gz")))
                shutil.rmtree(tmp)
        self.labels_ref, self.labels_pred = ref_dir, pred_dir

    # ---------------------------------------------------------------- pairs
    def run_nifti(self):
        o, r = os.path.join(self.out, "nifti_ours.nii.gz"), os.path.join(self.out, "nifti_ref.nii.gz")
        step = lambda run, side: run["step"]["seconds"]  # noqa: E731
        self.pair("nifti read+write", self.example("nifti", self.ct, o), self.refcmd("nifti", self.ct, r), step,
                  sub=("read_s", "write_s"))

    def run_preprocess(self):
        o, r = os.path.join(self.out, "pre_ours"), os.path.join(self.out, "pre_ref")

        def prepare(side):
            shutil.rmtree(o if side == "ours" else r, ignore_errors=True)

        metric = lambda run, side: run["wall_s"] if side == "ours" else run["step"]["seconds"]  # noqa: E731
        res = self.pair("preprocess", self.ours("nnu-preprocess", "--model", self.a.model, "--npy", "-i", self.ct,
                                                "-o", o),
                        self.refcmd("preprocess", os.path.join(self.a.model, "plans.pkl"), self.ct, r), metric,
                        prepare=prepare)
        name = os.path.basename(self.ct).split(".nii")[0].removesuffix("_0000")
        res["check"] = json.loads(sh(self.refcmd("check", "npy", os.path.join(o, name + ".npy"),
                                                 os.path.join(r, name + ".npy"))).stdout)
        log(f"[preprocess] check: {res['check']}")
        self.preprocessed_shape = res["check"].get("shape", [1, 0, 0, 0])[1:]
        self.save()

    def run_export(self):
        o, r = os.path.join(self.out, "export_ours.nii.gz"), os.path.join(self.out, "export_ref.nii.gz")
        step = lambda run, side: run["step"]["seconds"]  # noqa: E731
        res = self.pair("export", self.example("export", self.export_shape, o),
                        self.refcmd("export", self.export_shape, r), step)
        res["check"] = json.loads(sh(self.refcmd("check", "nii", o, r)).stdout)
        log(f"[export] check: {res['check']}")
        self.save()

    def run_evaluate(self):
        o = os.path.join(self.out, "eval_ours")
        rp = os.path.join(self.out, "eval_ref_pred")
        shutil.rmtree(rp, ignore_errors=True)
        shutil.copytree(self.labels_pred, rp)
        os.makedirs(o, exist_ok=True)
        metric = lambda run, side: run["wall_s"] if side == "ours" else run["step"]["seconds"]  # noqa: E731
        res = self.pair("evaluate", self.ours("nnu-evaluate", "--ref", self.labels_ref, "--pred", self.labels_pred,
                                              "--labels", "0,1,2", "-o", os.path.join(o, "summary.json")),
                        self.refcmd("evaluate", self.labels_ref, rp, "0,1,2"), metric)
        res["check"] = json.loads(sh(self.refcmd("check", "summary", os.path.join(o, "summary.json"),
                                                 os.path.join(rp, "summary.json"))).stdout)
        log(f"[evaluate] check: {res['check']}")
        self.save()

    def patch_metric(self, run, side):
        if side == "ours":
            m = re.search(r"median = ([0-9.]+)", run["stdout"])
            return float(m.group(1)) / 1e3
        return run["step"]["seconds"]

    def run_patch(self, name, model, n, repeat):
        t = self.a.threads
        self.pair(name, self.ours("nnu-infer", "--model", model, "--loop", n, "--threads", t),
                  self.refcmd("ort", model, n, t), self.patch_metric, repeat=repeat)

    def run_full_net(self):
        model = os.path.join(self.out, "task003_unetpp.onnx")
        if not os.path.isfile(model):
            log("exporting the full Task003 UNet++ (random weights, batch 1)")
            r = timed(self.ours("nnu-export-onnx", "--random-weights", "--batch", "1", "-o", model))
            self.results["ours_only"]["export-onnx task003"] = {"wall_s": r["wall_s"], "rss_mib": r["rss_mib"],
                                                                "load1": r["load1_before"]}
        flops_json = os.path.join(self.out, "flops.json")
        sh([self.py, os.path.join(HERE, "flops.py"), model, "--threads", str(self.a.threads), "--json", flops_json])
        with open(flops_json) as f:
            self.results["flops"] = json.load(f)
        self.run_patch("patch task003 128^3", model, self.a.full_net_loops, 1)

    def run_ours_only(self):
        r = timed(self.example("merge", 3))
        self.results["ours_only"]["merge 128^3 tile x 3 classes x 8 mirrors"] = {
            "seconds": r["step"]["seconds"], "rss_mib": r["rss_mib"], "load1": r["load1_before"]}
        shape = getattr(self, "preprocessed_shape", None)
        if shape is None:  # from an earlier run's preprocess pair kept in results.json
            shape = self.results["pairs"].get("preprocess", {}).get("check", {}).get("shape", [None])[1:] or None
        if shape:
            r = timed(self.example("tiles", ",".join(str(v) for v in shape), 128))
            tiles = r["step"]["tiles"]
            mib = 128 ** 3 * 4 / 2 ** 20
            self.results["scratch"] = {
                "preprocessed_shape": shape, "patch": 128, "tiles": tiles, "classes": 3, "heads": 5,
                "recipe_in_gib": tiles * 8 * mib / 1024, "recipe_out_gib": tiles * 8 * 5 * 3 * mib / 1024,
                "ours_bins_in_gib": tiles * 8 * mib / 1024, "ours_bins_out_gib": tiles * 8 * 3 * mib / 1024,
                "ours_streaming_gib": 0}
        if not self.a.skip_demo:
            demo_out = os.path.join(self.out, "demo")
            r = timed(self.ours("nnu-predict", "--demo", "-o", demo_out, "--overwrite", "--threads", self.a.threads))
            dice = re.findall(r"^(\S+)\s+([0-9.]+)\s+([0-9.]+)\s*$", r["stdout"], re.M)
            self.results["ours_only"]["nnu-predict --demo"] = {
                "wall_s": r["wall_s"], "rss_mib": r["rss_mib"], "load1": r["load1_before"],
                "dice": {c: {"liver": float(a), "tumour": float(b)} for c, a, b in dice}}
        self.save()

    # ---------------------------------------------------------------- report
    def machine(self):
        def lscpu(key):
            try:
                for line in sh(["lscpu"]).stdout.splitlines():
                    if line.startswith(key + ":"):
                        return line.split(":", 1)[1].strip()
            except Exception:
                return None
        mem = None
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = int(line.split()[1]) / 2 ** 20
        try:
            rustc = sh(["rustc", "--version"]).stdout.strip()
        except Exception:
            rustc = None
        vers = sh([self.py, "-c", "import numpy, scipy, skimage, SimpleITK, onnxruntime, onnx, importlib.metadata as m;"
                   "print(numpy.__version__, scipy.__version__, skimage.__version__, SimpleITK.Version.VersionString(),"
                   " onnxruntime.__version__, onnx.__version__, m.version('nnunet'), m.version('batchgenerators'))"]
                  ).stdout.split()
        return {"cpu": lscpu("Model name"), "cpus": os.cpu_count(), "flags_avx512": "avx512f" in open(
            "/proc/cpuinfo").read(), "mem_gib": mem, "kernel": platform.release(), "rustc": rustc,
            "python": sh([self.py, "--version"]).stdout.strip(),
            "packages": dict(zip(["numpy", "scipy", "scikit-image", "SimpleITK", "onnxruntime", "onnx", "nnunet",
                                  "batchgenerators"], vers)),
            "threads": self.a.threads, "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}

    def report(self):
        lines = []
        m = self.results["machine"]
        lines.append(f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['mem_gib']:.0f} GiB, Linux {m['kernel']}; {m['rustc']};"
                     f" {m['python']}; {m['date_utc']}; threads {m['threads']}; repeat {self.a.repeat}"
                     f"{' (quick)' if self.a.quick else ''}")
        lines.append("")
        lines.append("| pair | ours (median) | reference (median) | speed-up | peak RSS ours / ref | load avg during |")
        lines.append("|---|---:|---:|---:|---:|---|")
        for name, r in self.results["pairs"].items():
            loads = r["load1"]
            lines.append(f"| {name} | {r['ours_s']:.3f} s | {r['ref_s']:.3f} s | {r['speedup']:.2f}x | "
                         f"{r['ours_rss_mib']:.0f} / {r['ref_rss_mib']:.0f} MiB ({r['rss_ratio']:.2f}) | "
                         f"{min(loads):.1f}-{max(loads):.1f} |")
            for k, s in r.get("sub", {}).items():
                lines.append(f"| &nbsp; {name}: {k[:-2]} | {s['ours_s']:.3f} s | {s['ref_s']:.3f} s | "
                             f"{s['speedup']:.2f}x | | |")
        lines.append("")
        for name, r in self.results["pairs"].items():
            if "check" in r:
                lines.append(f"- {name} outputs: {json.dumps(r['check'])}")
        for name, r in self.results["ours_only"].items():
            lines.append(f"- {name}: {json.dumps({k: v for k, v in r.items()})}")
        if "flops" in self.results:
            f = self.results["flops"]
            lines.append(f"- FLOPs of {os.path.basename(f['model'])} {f['input']}: {f['total_macs'] / 1e12:.3f} TMAC, "
                         f"{f['parameters']:,} parameters; sgemm {f['sgemm_gflops']:.1f} GFLOP/s "
                         f"({f['sgemm_threads']} threads) -> bound {f['bound_s_at_sgemm']:.1f} s per patch")
        if "scratch" in self.results:
            s = self.results["scratch"]
            lines.append(f"- scratch disk for a preprocessed {s['preprocessed_shape']} case, {s['tiles']} tiles of "
                         f"128^3: recipe {s['recipe_in_gib']:.1f} GiB in + {s['recipe_out_gib']:.1f} GiB out; our bins "
                         f"path {s['ours_bins_in_gib']:.1f} + {s['ours_bins_out_gib']:.1f} GiB; streaming 0")
        merge = self.results["ours_only"].get("merge 128^3 tile x 3 classes x 8 mirrors")
        full = self.results["pairs"].get("patch task003 128^3")
        if merge and full:
            share = merge["seconds"] / (8 * full["ours_s"])
            self.results["merge_share_of_network"] = share
            lines.append(f"- merge share of network time per tile: {100 * share:.3f} % (goal <= 2 %)")
        text = "\n".join(lines) + "\n"
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(text)
        self.save()
        print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="folder with the release binaries")
    ap.add_argument("--example", required=True, help="the compare_step example binary")
    ap.add_argument("--python", required=True, help="python of the reference environment")
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full-net", action="store_true")
    ap.add_argument("--full-net-loops", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--model", default=os.path.join(os.path.dirname(ROOT), "shared", "reference", "unetpp-small"))
    ap.add_argument("--ct-shape", default="160,512,512")
    ap.add_argument("--export-shape", default="200,256,256")
    ap.add_argument("--eval-cases", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated: nifti,preprocess,export,evaluate,patch,full,ours")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="discard OUT/results.json instead of updating it")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    r = Runner(args)
    r.results["machine"] = r.machine()
    r.results.setdefault("machine_runs", []).append({"date_utc": r.results["machine"]["date_utc"],
                                                     "only": args.only, "load1": os.getloadavg()[0]})
    r.results["args"] = vars(args)
    only = set(args.only.split(",")) if args.only else None
    want = lambda k: only is None or k in only  # noqa: E731
    t0 = time.time()
    r.inputs()
    if want("nifti"):
        r.run_nifti()
    if want("preprocess"):
        r.run_preprocess()
    if want("export"):
        r.run_export()
    if want("evaluate"):
        r.run_evaluate()
    if want("patch"):
        demo_onnx = os.path.join(ROOT, "fixtures", "demo", "model", "fold_0", "model.onnx")
        r.run_patch("patch demo 32^3", demo_onnx, 5 if args.quick else 20, args.repeat)
    if args.full_net and want("full"):
        r.run_full_net()
    if want("ours"):
        r.run_ours_only()
    r.results["total_s"] = time.time() - t0
    r.report()


if __name__ == "__main__":
    main()

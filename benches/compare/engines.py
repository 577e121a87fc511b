"""Engine comparison for issue 16: one network patch through every CPU engine, in one sitting.

  python benches/compare/engines.py [--threads 2] [--loops 1] [--out DIR] [--plans PLANS --base B --max M]
                                    [--skip tract,torch,...] [--small-loops 20] [--demo] [--no-build]

Runs, each in its own process under GNU `/usr/bin/time -v` (peak RSS per engine), on the same ONNX file:
  native fp32, native bf16   nnu-infer --backend native [--precision bf16] --loop N --threads T
  tract                      nnu-infer --backend tract --loop N --threads T
  onnxruntime                ref_steps.py ort MODEL N T (intra-op T threads)
  torch                      this script's `torch` step: PyTorch eager, the graph's ops as torch.nn.functional
                             calls (conv3d, instance_norm, leaky_relu, conv_transpose3d, cat), T threads
  sgemm                      flops.py: the network's FLOPs and numpy's sgemm rate (4096^3, T threads, with
                             OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset), giving the fp32 FLOP limit
Each engine makes one warm-up call, then N timed passes; the median is reported. Then the small reference
networks (fixtures/reference/*/model_ds.onnx, 32^3) per pass: native fp32 against onnxruntime, and with
--demo `nnu-predict --demo` with the native and the tract backend.

The network is `nnu-export-onnx --random-weights --batch 1` (default: the full Task003 UNet++, patch 128^3,
46 M parameters, 4.75 TFLOP: minutes per engine on 2 cores). For a quick run pass a smaller plans file, e.g.
`--plans fixtures/reference/unetpp-small/plans.pkl` (UNet++ at 32^3) with `--base 32 --max 320`.

Prints seconds per patch, peak RSS and the ratios the issue's targets use; writes OUT/engines.json.
Offline only (Python is never used at run time).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from compare import timed  # noqa: E402  (same folder; /usr/bin/time -v wrapper)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- torch step
def torch_step(model_path, n, threads):
    """PyTorch eager on the ONNX graph's final head, one warm-up call then n timed passes."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    m = onnx.load(model_path)
    g = m.graph
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
    outs = [o.name for o in g.output]
    target = "class" if "class" in outs else outs[0]
    producer = {o: node for node in g.node for o in node.output}
    needed, stack = set(), [target]
    while stack:
        v = stack.pop()
        node = producer.get(v)
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    nodes = [node for node in g.node if id(node) in needed]

    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def run(x):
        env = {g.input[0].name: x}
        val = lambda name: env[name] if name in env else w[name]  # noqa: E731
        for node in nodes:
            a = attrs(node)
            ins = [val(i) for i in node.input if i]
            op = node.op_type
            if op == "Conv":
                pads = list(a.get("pads", [0] * 6))
                y = F.conv3d(ins[0], ins[1], ins[2] if len(ins) > 2 else None,
                             stride=list(a.get("strides", [1, 1, 1])), padding=pads[:3])
            elif op == "ConvTranspose":
                y = F.conv_transpose3d(ins[0], ins[1], ins[2] if len(ins) > 2 else None,
                                       stride=list(a.get("strides", [1, 1, 1])))
            elif op == "InstanceNormalization":
                y = F.instance_norm(ins[0], weight=ins[1], bias=ins[2], eps=a.get("epsilon", 1e-5))
            elif op == "LeakyRelu":
                y = F.leaky_relu(ins[0], a.get("alpha", 0.01))
            elif op == "Relu":
                y = F.relu(ins[0])
            elif op == "Concat":
                y = torch.cat(ins, dim=a.get("axis", 1))
            elif op == "Add":
                y = ins[0] + ins[1]
            elif op == "Identity":
                y = ins[0]
            else:
                raise SystemExit(f"torch step: operator {op} not mapped")
            env[node.output[0]] = y
        return env[target]

    shape = [d.dim_value or 1 for d in g.input[0].type.tensor_type.shape.dim]
    x = torch.from_numpy(np.random.default_rng(0).uniform(-2, 2, size=shape).astype(np.float32))
    lat = []
    with torch.inference_mode():
        run(torch.zeros_like(x))
        for _ in range(n):
            t = time.perf_counter()
            run(x)
            lat.append(time.perf_counter() - t)
    print(json.dumps({"step": "torch", "torch": torch.__version__, "threads": threads, "input": shape,
                      "latencies_s": lat, "seconds": float(np.median(lat))}), flush=True)


# -------------------------------------------------------------------------------------------- orchestration
def median_ms(stdout):
    import re

    m = re.search(r"median = ([0-9.]+)", stdout)
    if not m:
        raise RuntimeError(f"no 'median = ... ms' in nnu-infer's output:\n{stdout[-2000:]}")
    return float(m.group(1)) / 1e3


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "torch":
        return torch_step(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loops", type=int, default=1, help="timed passes per engine (after one warm-up)")
    ap.add_argument("--small-loops", type=int, default=20, help="passes of the 32^3 reference networks")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "engines"))
    ap.add_argument("--plans", default=None, help="plans for nnu-export-onnx --random-weights (default Task003)")
    ap.add_argument("--base", type=int, default=None)
    ap.add_argument("--max", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma list of: native,bf16,tract,ort,torch,sgemm,small")
    ap.add_argument("--demo", action="store_true", help="also time nnu-predict --demo, native vs tract")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.makedirs(args.out, exist_ok=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bins = os.path.join(target, "release")
    py = sys.executable
    t = str(args.threads)
    if not args.no_build:
        log("cargo build --release -p nnu-infer -p nnu-export-onnx -p nnu-predict")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "nnu-infer", "-p", "nnu-export-onnx",
                        "-p", "nnu-predict"], cwd=ROOT, check=True)
    tool = lambda name: os.path.join(bins, name)  # noqa: E731

    tag = "task003" if not args.plans else os.path.basename(os.path.dirname(os.path.abspath(args.plans)))
    tag += f"_b{args.base or 'p'}_m{args.max or 320}"
    model = os.path.join(args.out, f"unetpp_{tag}.onnx")
    if not os.path.isfile(model):
        cmd = [tool("nnu-export-onnx"), "--random-weights", "--batch", "1", "-o", model]
        if args.plans:
            cmd += ["--plans", args.plans]
        if args.base:
            cmd += ["--base", str(args.base)]
        if args.max:
            cmd += ["--max", str(args.max)]
        log(" ".join(cmd))
        subprocess.run(cmd, check=True, capture_output=True)

    results = {"model": model, "threads": args.threads, "loops": args.loops, "load1_start": os.getloadavg()[0],
               "engines": {}, "small": {}}
    n = str(args.loops)
    engines = [
        ("native fp32", "native", [tool("nnu-infer"), "--model", model, "--loop", n, "--threads", t,
                                   "--backend", "native"]),
        ("native bf16", "bf16", [tool("nnu-infer"), "--model", model, "--loop", n, "--threads", t,
                                 "--backend", "native", "--precision", "bf16"]),
        ("tract", "tract", [tool("nnu-infer"), "--model", model, "--loop", n, "--threads", t,
                            "--backend", "tract"]),
        ("onnxruntime", "ort", [py, os.path.join(HERE, "ref_steps.py"), "ort", model, n, t]),
        ("pytorch eager", "torch", [py, os.path.abspath(__file__), "torch", model, n, t]),
    ]
    for name, key, cmd in engines:
        if key in skip:
            continue
        log(f"{name}: {' '.join(cmd)}")
        try:
            r = timed(cmd)
        except RuntimeError as e:
            log(f"{name} failed: {str(e).splitlines()[0]}")
            results["engines"][name] = {"error": str(e)[-1500:]}
            continue
        sec = r["step"]["seconds"] if r["step"] else median_ms(r["stdout"])
        results["engines"][name] = {"seconds": sec, "rss_mib": r["rss_mib"], "wall_s": r["wall_s"],
                                    "load1_before": r["load1_before"], "load1_after": r["load1_after"],
                                    "cmd": " ".join(cmd)}
        log(f"{name}: {sec:.3f} s/patch, peak RSS {r['rss_mib']:.0f} MiB")

    if "sgemm" not in skip:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        fj = os.path.join(args.out, "flops.json")
        log("sgemm and FLOPs: flops.py")
        subprocess.run([py, os.path.join(HERE, "flops.py"), model, "--threads", t, "--json", fj], env=env,
                       check=True, capture_output=True)
        with open(fj) as f:
            fl = json.load(f)
        results["flops"] = {"tflop": 2 * fl["total_macs"] / 1e12, "sgemm_gflops": fl["sgemm_gflops"],
                            "limit_s": fl["bound_s_at_sgemm"]}

    if "small" not in skip:
        ref = os.path.join(ROOT, "fixtures", "reference")
        for d in sorted(os.listdir(ref)) if os.path.isdir(ref) else []:
            m = os.path.join(ref, d, "model_ds.onnx")
            if not os.path.isfile(m):
                continue
            k = str(args.small_loops)
            nat = timed([tool("nnu-infer"), "--model", m, "--loop", k, "--threads", t, "--backend", "native"])
            ort = timed([py, os.path.join(HERE, "ref_steps.py"), "ort", m, k, t])
            results["small"][d] = {"native_s": median_ms(nat["stdout"]), "ort_s": ort["step"]["seconds"],
                                   "native_rss_mib": nat["rss_mib"], "ort_rss_mib": ort["rss_mib"]}
            log(f"{d}: native {results['small'][d]['native_s'] * 1e3:.2f} ms, "
                f"onnxruntime {results['small'][d]['ort_s'] * 1e3:.2f} ms per pass")

    if args.demo:
        for b in ("native", "tract"):
            r = timed([tool("nnu-predict"), "--demo", "--threads", t, "--backend", b, "--overwrite",
                       "-o", os.path.join(args.out, f"demo_{b}")], cwd=ROOT)
            results.setdefault("demo", {})[b] = {"wall_s": r["wall_s"], "rss_mib": r["rss_mib"]}
            log(f"nnu-predict --demo --backend {b}: {r['wall_s']:.1f} s")

    results["load1_end"] = os.getloadavg()[0]
    with open(os.path.join(args.out, "engines.json"), "w") as f:
        json.dump(results, f, indent=1)
    report(results)


def report(r):
    e = r["engines"]
    base = e.get("native fp32", {}).get("seconds")
    print(f"\nmodel {r['model']}, {r['threads']} threads, {r['loops']} timed pass(es) per engine, "
          f"load {r['load1_start']:.1f} -> {r['load1_end']:.1f}")
    print(f"| engine | s / patch | peak RSS MiB | engine / native fp32 |")
    print(f"|---|---:|---:|---:|")
    for name, v in e.items():
        if "seconds" not in v:
            print(f"| {name} | failed | | |")
            continue
        ratio = f"{v['seconds'] / base:.2f}" if base else ""
        print(f"| {name} | {v['seconds']:.3f} | {v['rss_mib']:.0f} | {ratio} |")
    if "flops" in r:
        f = r["flops"]
        print(f"| fp32 FLOP limit: {f['tflop']:.3f} TFLOP / sgemm {f['sgemm_gflops']:.1f} GFLOP/s "
              f"| {f['limit_s']:.3f} | | {f['limit_s'] / base:.2f} |" if base else "")
    print()
    if base:
        def ratio(name):
            v = e.get(name, {}).get("seconds")
            return f"{v / base:.2f}x" if v else "n/a"
        print(f"native fp32 vs PyTorch eager: {ratio('pytorch eager')} faster (target >= 1.7x)")
        print(f"native fp32 vs onnxruntime:   {ratio('onnxruntime')} faster")
        print(f"native fp32 vs tract:         {ratio('tract')} faster")
        if "flops" in r:
            print(f"native fp32 / FLOP limit:     {base / r['flops']['limit_s']:.2f} (target <= 1.3)")
        bf = e.get("native bf16", {}).get("seconds")
        if bf:
            print(f"native bf16 vs native fp32:   {base / bf:.2f}x faster (target >= 1.7x)")
    for d, v in r["small"].items():
        print(f"{d} (32^3): native {v['native_s'] * 1e3:.2f} ms, onnxruntime {v['ort_s'] * 1e3:.2f} ms per pass "
              f"(onnxruntime / native {v['ort_s'] / v['native_s']:.2f})")
    if "demo" in r and "native" in r["demo"] and "tract" in r["demo"]:
        d = r["demo"]
        print(f"nnu-predict --demo: native {d['native']['wall_s']:.1f} s, tract {d['tract']['wall_s']:.1f} s "
              f"({d['tract']['wall_s'] / d['native']['wall_s']:.2f}x, target >= 4x)")


if __name__ == "__main__":
    main()

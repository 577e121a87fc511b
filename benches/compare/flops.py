"""Counts the multiply-accumulates of one forward pass of an ONNX network (batch 1) from its graph, and
measures this machine's practical fp32 matrix-product rate (numpy's OpenBLAS sgemm) for the bound.

  flops.py MODEL.onnx [--threads N] [--json OUT.json]

MACs are counted per node after ONNX shape inference (dynamic axes set to 1):
  Conv:          N * C_out * prod(out spatial) * (C_in / group) * prod(kernel)
  ConvTranspose: N * C_in  * prod(in spatial)  * (C_out / group) * prod(kernel)
  Gemm / MatMul: M * N * K
Bias adds, InstanceNormalization, LeakyRelu, Add, Concat, Softmax are counted as elements touched
(output elements), not as MACs: they are memory-bound and small next to the convolutions.

The bound: the convolution MACs as fp32 FLOPs (2 per MAC) divided by the sgemm rate measured here with
`--threads` BLAS threads (4096^3 single-precision product, best of 3), and by the nominal peak
cores * clock * FLOP/cycle when --peak-gflops is given.

Pinned: Python 3.11, onnx 1.23.2, numpy 2.4.6 (OpenBLAS as shipped in its wheel).
"""
import argparse
import json
import os
import time
from collections import defaultdict


def dims(vi):
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
            for d in vi.type.tensor_type.shape.dim]


def prod(v):
    p = 1
    for x in v:
        p *= int(x)
    return p


def count(path):
    import onnx
    from onnx import shape_inference

    model = onnx.load(path)
    g = model.graph
    # fix dynamic input axes to 1 so that shape inference gives concrete shapes
    for inp in g.input:
        for d in inp.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                d.Clear()
                d.dim_value = 1
    model = shape_inference.infer_shapes(model)
    g = model.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shapes[vi.name] = dims(vi)
    inits = {t.name: list(t.dims) for t in g.initializer}
    params = sum(prod(d) for d in inits.values())
    shapes.update(inits)
    macs = defaultdict(int)
    elems = defaultdict(int)
    nodes = defaultdict(int)
    for n in g.node:
        nodes[n.op_type] += 1
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        group = int(attrs.get("group", 1))
        out = shapes.get(n.output[0])
        if n.op_type == "Conv":
            w = shapes[n.input[1]]
            macs["Conv"] += prod(out) * w[1] * prod(w[2:])
        elif n.op_type == "ConvTranspose":
            w = shapes[n.input[1]]  # (C_in, C_out / group, k...)
            x = shapes[n.input[0]]
            macs["ConvTranspose"] += prod(x) * w[1] * prod(w[2:])
        elif n.op_type in ("Gemm", "MatMul"):
            a, b = shapes[n.input[0]], shapes[n.input[1]]
            macs[n.op_type] += prod(a) * b[-1]
        elif out is not None:
            elems[n.op_type] += prod(out)
    inp = g.input[0]
    return {
        "model": os.path.abspath(path),
        "input": dims(inp),
        "parameters": params,
        "macs": dict(macs),
        "total_macs": sum(macs.values()),
        "elements_other_ops": dict(elems),
        "nodes": dict(nodes),
        "outputs": {o.name: dims(o) for o in g.output},
    }


def sgemm_gflops(threads):
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import numpy as np

    n = 4096
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--peak-gflops", type=float, default=None, help="nominal fp32 peak of the machine")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    # BLAS threads must be set before numpy loads
    gflops = sgemm_gflops(args.threads)
    r = count(args.model)
    r["sgemm_gflops"] = gflops
    r["sgemm_threads"] = args.threads
    r["bound_s_at_sgemm"] = 2.0 * r["total_macs"] / (gflops * 1e9)
    if args.peak_gflops:
        r["peak_gflops"] = args.peak_gflops
        r["bound_s_at_peak"] = 2.0 * r["total_macs"] / (args.peak_gflops * 1e9)
    print(f"{r['model']}: input {r['input']}, {r['parameters']:,} parameters")
    for k, v in r["macs"].items():
        print(f"  {k:14s} {v / 1e9:10.2f} GMAC")
    print(f"  total          {r['total_macs'] / 1e9:10.2f} GMAC = {2 * r['total_macs'] / 1e12:.3f} TFLOP (fp32)")
    other = sum(r["elements_other_ops"].values())
    print(f"  other ops touch {other / 1e9:.2f} G output elements ({', '.join(sorted(r['elements_other_ops']))})")
    print(f"  sgemm {gflops:.1f} GFLOP/s with {args.threads} threads -> bound {r['bound_s_at_sgemm']:.1f} s per pass")
    if args.peak_gflops:
        print(f"  nominal peak {args.peak_gflops:.1f} GFLOP/s -> bound {r['bound_s_at_peak']:.1f} s per pass")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()

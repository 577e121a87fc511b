"""Reference side of the comparison runner (benches/compare/run.sh): one step per process, so that
`/usr/bin/time -v` reports that step's own peak RSS. Each step does what nnU-Net 1.7.1 (or SimpleITK,
onnxruntime) does for the same job, on the same inputs as our side, and prints one JSON line with the
step's own seconds (model or input set-up outside the timed part where both sides do the same).

  preprocess PLANS_PKL IMAGE OUT_DIR   GenericPreprocessor.preprocess_test_case with the plans' last stage
                                       (as nnUNetTrainer.preprocess_patient), NIfTI read included, then
                                       np.save of the f32 volume and the pickled properties
  export Z,Y,X OUT.nii.gz              save_segmentation_nifti_from_softmax on 3 analytic class maps of the
                                       preprocessed grid (spacing 1.2/0.9/0.9 -> 0.96/0.768/0.768), as
                                       benches/examples/compare_step.rs export
  nifti IN.nii.gz OUT.nii.gz           sitk.ReadImage + GetArrayFromImage(...).astype(float32) (nnU-Net's read),
                                       then sitk.WriteImage(useCompression=True) of the int16 image
  evaluate REF_DIR PRED_DIR LABELS     nnunet.evaluation.evaluator.evaluate_folder (8 worker processes, as
                                       nnU-Net hard-codes), summary.json into PRED_DIR
  ort MODEL.onnx N THREADS             onnxruntime CPU session (intra-op THREADS, default graph
                                       optimisations), one warm-up call, then N runs of one random
                                       (1, 1, patch) input; per-run latency and their median
  check KIND OURS REF                  how far our output is from the reference's: npy (max abs diff),
                                       nii (fraction of equal voxels), summary (max abs Dice difference)

Pinned versions (benches/compare/requirements.txt): Python 3.11, nnunet 1.7.1 (--no-deps), numpy 2.4.6,
scipy 1.17.1, scikit-image 0.26.0, SimpleITK 2.5.7, batchgenerators 0.25.5, medpy 0.5.2, onnx 1.23.2,
onnxruntime 1.32.0. nnU-Net 1.7.1 predates numpy 2: the removed aliases np.int / np.float / np.bool are
restored below (no other change to nnU-Net's code).
"""
import contextlib
import io
import json
import os
import pickle
import sys
import time

import numpy as np

for _name, _t in (("int", int), ("float", float), ("bool", bool), ("object", object)):
    if _name not in np.__dict__:
        setattr(np, _name, _t)


def emit(d):
    print(json.dumps(d), flush=True)


def preprocess(plans_pkl, image, out_dir):
    from nnunet.preprocessing.preprocessing import GenericPreprocessor

    with open(plans_pkl, "rb") as f:
        plans = pickle.load(f)
    stage = max(plans["plans_per_stage"].keys())
    target = plans["plans_per_stage"][stage]["current_spacing"]
    pre = GenericPreprocessor(plans["normalization_schemes"], plans["use_mask_for_norm"],
                              plans["transpose_forward"], plans["dataset_properties"]["intensityproperties"])
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        data, _, props = pre.preprocess_test_case([image], target)
    t1 = time.perf_counter()
    name = os.path.basename(image).split(".nii")[0]
    if name.endswith("_0000"):
        name = name[:-5]
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, name + ".npy"), data)
    with open(os.path.join(out_dir, name + ".pkl"), "wb") as f:
        pickle.dump(props, f)
    t2 = time.perf_counter()
    emit({"step": "preprocess", "shape": list(data.shape), "seconds": t2 - t0, "numerics_s": t1 - t0,
          "write_s": t2 - t1})


def export(shape, out):
    from nnunet.inference.segmentation_export import save_segmentation_nifti_from_softmax

    spacing = np.array([1.2, 0.9, 0.9])
    target = np.array([0.96, 0.768, 0.768])
    pre = tuple(int(round(s / t * n)) for s, t, n in zip(spacing, target, shape))
    c, z, y, x = np.meshgrid(*[np.arange(n) for n in (3,) + pre], indexing="ij", sparse=True)
    c = c.astype(np.float32)
    z, y, x = (a.astype(np.float32) for a in (z, y, x))
    probs = np.exp(np.sin(z * np.float32(0.03) + c) + np.cos(y * np.float32(0.02)) *
                   np.sin(x * np.float32(0.025) * c)).astype(np.float32)
    props = {
        "original_size_of_raw_data": np.array(shape), "original_spacing": spacing,
        "crop_bbox": [[0, shape[0]], [0, shape[1]], [0, shape[2]]], "size_after_cropping": tuple(shape),
        "size_after_resampling": pre, "spacing_after_resampling": target,
        "itk_spacing": tuple(spacing[::-1]), "itk_origin": (0.0, 0.0, 0.0),
        "itk_direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    }
    t0 = time.perf_counter()
    save_segmentation_nifti_from_softmax(probs, out, props, order=1, verbose=False)
    emit({"step": "export", "shape": list(shape), "preprocessed": list(pre), "seconds": time.perf_counter() - t0})


def nifti(inp, out):
    import SimpleITK as sitk

    t0 = time.perf_counter()
    img = sitk.ReadImage(inp)
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    t1 = time.perf_counter()
    del arr
    sitk.WriteImage(img, out, True)
    t2 = time.perf_counter()
    emit({"step": "nifti", "shape": list(img.GetSize()[::-1]), "seconds": t2 - t0, "read_s": t1 - t0,
          "write_s": t2 - t1})


def evaluate(ref, pred, labels):
    from nnunet.evaluation.evaluator import evaluate_folder

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        evaluate_folder(ref, pred, tuple(int(v) for v in labels.split(",")))
    emit({"step": "evaluate", "seconds": time.perf_counter() - t0})


def ort(model, n, threads):
    import onnxruntime as rt

    so = rt.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = rt.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    inp = sess.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in inp.shape]
    x = np.random.default_rng(0).uniform(-2, 2, size=shape).astype(np.float32)
    out_name = [o.name for o in sess.get_outputs()]
    out_name = ["class"] if "class" in out_name else out_name[:1]
    sess.run(out_name, {inp.name: np.zeros_like(x)})  # one warm-up call, as nnu-infer makes
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        sess.run(out_name, {inp.name: x})
        lat.append(time.perf_counter() - t)
    emit({"step": "ort", "input": shape, "threads": threads, "load_s": load_s, "latencies_s": lat,
          "seconds": float(np.median(lat))})


def check(kind, ours, ref):
    if kind == "npy":
        a, b = np.load(ours), np.load(ref)
        if a.shape != b.shape:
            emit({"check": kind, "error": f"shapes differ: {a.shape} vs {b.shape}"})
            return
        emit({"check": kind, "max_abs_diff": float(np.max(np.abs(a.astype(np.float64) - b))),
              "shape": list(a.shape)})
    elif kind == "nii":
        import SimpleITK as sitk

        a = sitk.GetArrayFromImage(sitk.ReadImage(ours))
        b = sitk.GetArrayFromImage(sitk.ReadImage(ref))
        if a.shape != b.shape:
            emit({"check": kind, "error": f"shapes differ: {a.shape} vs {b.shape}"})
            return
        emit({"check": kind, "equal_fraction": float(np.mean(a == b)), "differing": int(np.sum(a != b))})
    elif kind == "summary":
        with open(ours) as f:
            a = json.load(f)["results"]["mean"]
        with open(ref) as f:
            b = json.load(f)["results"]["mean"]
        d = max(abs(a[k]["Dice"] - b[k]["Dice"]) for k in b if a.get(k, {}).get("Dice") is not None
                and b[k].get("Dice") is not None)
        emit({"check": kind, "max_abs_dice_diff": d})
    else:
        sys.exit(f"error: {kind}: unknown check (npy, nii, summary)")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    step, rest = a[0], a[1:]
    if step == "preprocess" and len(rest) == 3:
        preprocess(*rest)
    elif step == "export" and len(rest) == 2:
        export(tuple(int(v) for v in rest[0].split(",")), rest[1])
    elif step == "nifti" and len(rest) == 2:
        nifti(*rest)
    elif step == "evaluate" and len(rest) == 3:
        evaluate(*rest)
    elif step == "ort" and len(rest) == 3:
        ort(rest[0], int(rest[1]), int(rest[2]))
    elif step == "check" and len(rest) == 3:
        check(*rest)
    else:
        sys.exit(f"error: {' '.join(a)}: bad arguments\n{__doc__}")


if __name__ == "__main__":
    main()

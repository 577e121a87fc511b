"""Issue 17's speed benchmark: whole `nnu-predict` against nnunetv2 2.8.1's
`nnUNetv2_predict_from_modelfolder -device cpu` on one liver-size CT with an nnunetv2 model, in the same run,
with the same threads and mirroring off on both (`--disable-tta` / `--disable_tta`), and both sides split into
their phases.

Offline only (Python is never used at run time). Generates its inputs into OUT (default /tmp/nnu-v2bench):

  model/   a v2 model folder (dataset.json, plans.json, fold_0/checkpoint_final.pth) with liver-like plans
           (3d_fullres, target spacing 1 x 0.7676 x 0.7676 mm as nnU-Net plans the MSD liver task,
           CTNormalization with liver-CT intensity statistics, patch 128^3, transpose identity) and a SMALL
           random-weight PlainConvUNet (4 stages of 4-16 features, one conv per stage), built the way
           scripts/goldens/v2_make.py builds fixtures/v2/models (its helpers are imported), so that the
           network does not dominate the run;
  input/   `liver_0000.nii.gz`: an `nnu-phantom --anatomy full` CT (default 100 x 512 x 512 voxels at
           2.5 x 0.78 x 0.78 mm), rewritten by SimpleITK (one gzip stream, as real CTs are).

Then REPEAT rounds, each alternating (every command under GNU `/usr/bin/time -v`):
  ours whole    nnu-predict --model model -i input -o DIR --disable-tta --folds 0 --threads T
  theirs whole  nnUNetv2_predict_from_modelfolder -m model -i input -o DIR -f 0 -device cpu --disable_tta
                -npp 1 -nps 1  (torch uses all CPUs on -device cpu: T must be the CPU count)
  ours phases   benches/examples/v2_phases (read+preprocess, sliding window, export+write; one process)
  theirs phases this script's `ref-phases`: DefaultPreprocessor.run_case,
                nnUNetPredictor.predict_logits_from_preprocessed_data, export_prediction_from_logits
                (one process, torch threads T)
and writes OUT/results{TAG}.json and .md (medians, ratios, load averages, voxel agreement of the two
segmentations of every run against the first "theirs whole" one).

  /work/venv/bin/python benches/compare/v2_predict.py --bin $CARGO_TARGET_DIR/release \
      --example $CARGO_TARGET_DIR/release/examples/v2_phases [--out DIR] [--repeat 2] [--threads 2]

Run the whole script under `chrt -f 10` on a shared machine (children inherit the real-time priority).
Versions: Python 3.11, torch 2.15.0 (CPU), nnunetv2 2.8.1, dynamic-network-architectures 0.4.4, SimpleITK.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from compare import log, median, sh, timed  # noqa: E402

DATASET = "Dataset990_LiverBench"
FOLDER = f"{DATASET}/nnUNetTrainer__nnUNetPlans__3d_fullres"


# ------------------------------------------------------------------------------------------------ inputs
def liver_plans(v2):
    features = [4, 8, 16, 16]
    fullres = v2.config(
        "nnUNetPlans_3d_fullres", [128, 128, 128], [1.0, 0.7675780057907104, 0.7675780057907104],
        ["CTNormalization"], [False],
        v2.arch("PlainConvUNet", 3, features, [[3, 3, 3]] * len(features),
                [[1, 1, 1]] + [[2, 2, 2]] * (len(features) - 1), [1] * len(features),
                [1] * (len(features) - 1)))
    fullres["median_image_size_in_voxels"] = [432.0, 512.0, 512.0]
    return {
        "dataset_name": DATASET,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [1.0, 0.7675780057907104, 0.7675780057907104],
        "original_median_shape_after_transp": [432, 512, 512],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": fullres},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        # liver-CT foreground statistics of the order nnU-Net collects on the MSD liver task
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 3071.0, "mean": 99.4, "median": 101.0, "min": -1024.0,
                  "percentile_00_5": -17.0, "percentile_99_5": 201.0, "std": 39.4}},
    }


def make_model(out):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "scripts", "goldens"))
    import v2_make as v2
    folder = os.path.join(out, "model", FOLDER)
    if os.path.isfile(os.path.join(folder, "fold_0", "checkpoint_final.pth")):
        return folder
    plans = liver_plans(v2)
    ds = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
          "numTraining": 131, "file_ending": ".nii.gz"}
    os.makedirs(os.path.join(folder, "fold_0"), exist_ok=True)
    with open(os.path.join(folder, "plans.json"), "w") as f:
        json.dump(plans, f, indent=4)
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(ds, f, indent=4)
    gen = torch.Generator().manual_seed(17)
    torch.manual_seed(17)
    net, cm = v2.build(plans, "3d_fullres", ds, deep_supervision=True)
    v2.randomise(net, gen)
    # the momentum-buffer step of make_checkpoint on a small input (the network is fully convolutional)
    ckpt = v2.make_checkpoint(net, plans, "3d_fullres", 0, ds, (0, 1, 2), gen, [32, 32, 32], 1)
    torch.save(ckpt, os.path.join(folder, "fold_0", "checkpoint_final.pth"))
    log(f"model {folder}: {sum(p.numel() for p in net.parameters())} parameters")
    return folder


def make_ct(a):
    import SimpleITK as sitk
    d = os.path.join(a.out, "input")
    ct = os.path.join(d, "liver_0000.nii.gz")
    if os.path.isfile(ct):
        return d, ct
    tmp = os.path.join(a.out, "phantom")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating the CT phantom {a.ct_shape} at {a.ct_spacing} mm")
    sh([os.path.join(a.bin, "nnu-phantom"), "--out", tmp, "--cases", "1", "--shape", a.ct_shape,
        "--spacing", a.ct_spacing, "--anatomy", "full", "--seed", "17"])
    src = sorted(os.listdir(os.path.join(tmp, "imagesTr")))[0]
    os.makedirs(d, exist_ok=True)
    sitk.WriteImage(sitk.ReadImage(os.path.join(tmp, "imagesTr", src)), ct, useCompression=True)
    shutil.rmtree(tmp)
    return d, ct


# ------------------------------------------------------------------------------------------- ref-phases
def ref_phases(model, image, out_trunc, threads):
    """nnunetv2's phases of one case in this process, each timed; prints one JSON line."""
    import resource
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    torch.set_num_threads(threads)
    res = {}
    t = time.perf_counter()
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                        perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    p.initialize_from_trained_model_folder(model, use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    res["load"] = {"seconds": time.perf_counter() - t, "peak_rss_mib": rss()}
    t = time.perf_counter()
    pre = p.configuration_manager.preprocessor_class(verbose=False)
    data, _, props = pre.run_case([image], None, p.plans_manager, p.configuration_manager, p.dataset_json)
    res["preprocess"] = {"seconds": time.perf_counter() - t, "peak_rss_mib": rss()}
    t = time.perf_counter()
    logits = p.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
    del data
    res["predict"] = {"seconds": time.perf_counter() - t, "peak_rss_mib": rss()}
    t = time.perf_counter()
    export_prediction_from_logits(logits, props, p.configuration_manager, p.plans_manager, p.dataset_json,
                                  out_trunc, False, num_threads_torch=threads)
    res["export"] = {"seconds": time.perf_counter() - t, "peak_rss_mib": rss()}
    print(json.dumps(res))


# ---------------------------------------------------------------------------------------------- compare
def agreement(a_path, b_path):
    import numpy as np
    import SimpleITK as sitk
    a = sitk.GetArrayFromImage(sitk.ReadImage(a_path))
    b = sitk.GetArrayFromImage(sitk.ReadImage(b_path))
    if a.shape != b.shape:
        return {"equal_fraction": None, "shapes": [list(a.shape), list(b.shape)]}
    hist = {int(v): int(n) for v, n in zip(*np.unique(b, return_counts=True))}
    return {"equal_fraction": float((a == b).mean()), "differing_voxels": int((a != b).sum()),
            "labels_of_reference": hist}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    rp = sub.add_parser("ref-phases", help="nnunetv2's phases of one case (used by the run)")
    rp.add_argument("model")
    rp.add_argument("image")
    rp.add_argument("out_trunc")
    rp.add_argument("threads", type=int)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release"))
    ap.add_argument("--example", default=None, help="the v2_phases example binary")
    ap.add_argument("--out", default="/tmp/nnu-v2bench")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ct-shape", default="100,512,512")
    ap.add_argument("--ct-spacing", default="2.5,0.78,0.78")
    ap.add_argument("--skip", default="",
                    help="comma list of runs to leave out (ours_whole, ref_whole, ours_phases, ref_phases)")
    ap.add_argument("--tag", default="", help="results file suffix: OUT/results{TAG}.json and .md")
    a = ap.parse_args()
    if a.cmd == "ref-phases":
        return ref_phases(a.model, a.image, a.out_trunc, a.threads)
    a.out = os.path.abspath(a.out)
    a.example = a.example or os.path.join(a.bin, "examples", "v2_phases")
    os.makedirs(a.out, exist_ok=True)
    model = make_model(a.out)
    in_dir, ct = make_ct(a)
    py = sys.executable
    venv_bin = os.path.dirname(py)
    T = str(a.threads)
    runs_dir = os.path.join(a.out, "runs")

    def cmd(side, i):
        d = os.path.join(runs_dir, f"{side}_{i}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        seg = os.path.join(d, "liver.nii.gz")
        if side == "ours_whole":
            c = [os.path.join(a.bin, "nnu-predict"), "--model", model, "-i", in_dir, "-o", d, "--disable-tta",
                 "--folds", "0", "--threads", T]
        elif side == "ref_whole":
            c = [os.path.join(venv_bin, "nnUNetv2_predict_from_modelfolder"), "-m", model, "-i", in_dir,
                 "-o", d, "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1",
                 "--disable_progress_bar"]
        elif side == "ours_phases":
            c = [a.example, model, ct, seg, T]
        else:
            c = [py, "-W", "ignore", os.path.abspath(__file__), "ref-phases", model, ct, seg[:-7], T]
        return c, seg

    sides = [s for s in ("ours_whole", "ref_whole", "ours_phases", "ref_phases") if s not in a.skip.split(",")]
    res = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "sched": subprocess.run(["chrt", "-p", str(os.getpid())], capture_output=True,
                                               text=True).stdout.strip()},
           "inputs": {"ct": ct, "ct_shape": a.ct_shape, "ct_spacing": a.ct_spacing, "model": model},
           "threads": a.threads, "runs": {s: [] for s in sides}}
    env = dict(os.environ, nnUNet_raw="/tmp", nnUNet_preprocessed="/tmp", nnUNet_results="/tmp")
    for i in range(a.repeat):
        for side in sides:
            c, seg = cmd(side, i)
            log(f"[{side} {i + 1}/{a.repeat}] {' '.join(c)}")
            r = timed(c, env=env)
            r["seg"] = seg
            log(f"  wall {r['wall_s']:.1f} s, peak RSS {r['rss_mib']:.0f} MiB, load {r['load1_before']:.2f}, "
                f"step {r['step']}")
            res["runs"][side].append(r)
            with open(os.path.join(a.out, f"results{a.tag}.json"), "w") as f:
                json.dump(res, f, indent=1, default=str)
    # the reference segmentation: this run's first nnUNetv2_predict output, else an earlier run's, else
    # the first of nnunetv2's phases
    ref_seg = os.path.join(runs_dir, "ref_whole_0", "liver.nii.gz")
    if not os.path.isfile(ref_seg):
        ref_seg = res["runs"]["ref_phases"][0]["seg"]
    res["agreement_reference"] = ref_seg
    for side in sides:
        for r in res["runs"][side]:
            r["agreement_vs_ref"] = agreement(r["seg"], ref_seg)
    summary = {}
    for side in sides:
        rs = res["runs"][side]
        summary[side] = {"wall_s": median(r["wall_s"] for r in rs), "rss_mib": median(r["rss_mib"] for r in rs),
                         "load1": [round(r["load1_before"], 2) for r in rs]}
        if side.endswith("phases"):
            for ph in ("load", "preprocess", "predict", "export"):
                summary[side][ph + "_s"] = median(r["step"][ph]["seconds"] for r in rs)
                summary[side][ph + "_peak_rss_mib"] = median(r["step"][ph]["peak_rss_mib"] for r in rs)
    res["summary"] = summary
    with open(os.path.join(a.out, f"results{a.tag}.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    lines = ["| run | wall s (median) | peak RSS MiB | load1 before each | equal voxels vs theirs (first `nnUNetv2_predict`) |", "|---|---|---|---|---|"]
    for side in sides:
        s = summary[side]
        eq = [r["agreement_vs_ref"]["equal_fraction"] for r in res["runs"][side]]
        lines.append(f"| {side} | {s['wall_s']:.1f} | {s['rss_mib']:.0f} | {s['load1']} | {eq} |")
    if "ours_phases" in summary and "ref_phases" in summary:
        o, f = summary["ours_phases"], summary["ref_phases"]
        lines += ["", "| phase | ours s | theirs s | theirs / ours | ours peak RSS after | theirs peak RSS after |",
                  "|---|---|---|---|---|---|"]
        for ph in ("load", "preprocess", "predict", "export"):
            lines.append(f"| {ph} | {o[ph + '_s']:.2f} | {f[ph + '_s']:.2f} | {f[ph + '_s'] / o[ph + '_s']:.1f}x | "
                         f"{o[ph + '_peak_rss_mib']:.0f} | {f[ph + '_peak_rss_mib']:.0f} |")
        po = o["preprocess_s"] + o["export_s"]
        pf = f["preprocess_s"] + f["export_s"]
        lines.append(f"| pre + post | {po:.2f} | {pf:.2f} | {pf / po:.1f}x | | |")
    md = "\n".join(lines)
    with open(os.path.join(a.out, f"results{a.tag}.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()

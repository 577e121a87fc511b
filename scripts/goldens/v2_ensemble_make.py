"""Goldens and a record for `nnUNetv2_ensemble` on nnu-predict's `--save-probabilities` outputs
(fixtures/v2/ensemble/).

Members (the phantom `plain_a` of fixtures/v2/cases, models of fixtures/v2/models made by v2_make.py):
  3d_fullres_f0   Dataset901_Plain 3d_fullres, fold 0
  3d_fullres_f1   Dataset901_Plain 3d_fullres, fold 1
  2d_f0           Dataset901_Plain 2d, fold 0
Ensembles: `folds` = 3d_fullres_f0 + 3d_fullres_f1, `configurations` = 3d_fullres_f0 + 2d_f0.

Step `theirs`: `nnUNetv2_predict_from_modelfolder -f K --save_probabilities -device cpu` per member, kept as
theirs/MEMBER/plain_a.{npz,pkl,nii.gz} with meta.json (`fp16_vs_fp32_logits_max_abs`: the largest change
nnunetv2's fp16 accumulators make to the member's logits, computed as v2_make.py does), and
`nnUNetv2_ensemble` of each ensemble's member folders: theirs_ENSEMBLE.nii.gz.

Step `ours` (needs NNU_PREDICT=path/to/nnu-predict): `nnu-predict --folds K --save-probabilities` per member
(in a temporary folder), with the model's dataset.json and plans.json beside them, which nnu-predict writes
there as nnUNetv2_predict does (checked; nnUNetv2_ensemble reads them from its first input folder), the same
`nnUNetv2_ensemble` on our folders: ours_ENSEMBLE.nii.gz, and record.json: per member the largest
difference of our probabilities to nnunetv2's, per ensemble the voxels where the two ensembles' labels
differ and how many of them are near-ties (the two largest of nnunetv2's averaged probabilities within
twice the largest difference of the two averaged probability arrays: only there can the argmax differ).

Run (from the repository root):
  /work/venv/bin/python scripts/goldens/v2_ensemble_make.py theirs
  NNU_PREDICT=target/debug/nnu-predict /work/venv/bin/python scripts/goldens/v2_ensemble_make.py ours
Versions: Python 3.11, torch 2.15.0 (CPU), numpy, nnunetv2 2.8.1, SimpleITK.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

OUT = "fixtures/v2/ensemble"
MODELS = "fixtures/v2/models/Dataset901_Plain"
CASE = "plain_a"
MEMBERS = {
    "3d_fullres_f0": ("nnUNetTrainer__nnUNetPlans__3d_fullres", 0),
    "3d_fullres_f1": ("nnUNetTrainer__nnUNetPlans__3d_fullres", 1),
    "2d_f0": ("nnUNetTrainer__nnUNetPlans__2d", 0),
}
ENSEMBLES = {
    "folds": ["3d_fullres_f0", "3d_fullres_f1"],
    "configurations": ["3d_fullres_f0", "2d_f0"],
}
VENV_BIN = os.path.dirname(sys.executable)


def input_folder(tmp):
    d = os.path.join(tmp, "in")
    os.makedirs(d, exist_ok=True)
    shutil.copy(f"fixtures/v2/cases/{CASE}_0000.nii.gz", d)
    return d


def fp16_delta(model, fold):
    """max |logits with fp16 accumulators - logits with fp32 ones| of one fold (v2_make.predict_goldens)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    torch.set_num_threads(1)
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                           perform_everything_on_device=False, device=torch.device("cpu"),
                           verbose=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(model, use_folds=(fold,), checkpoint_name="checkpoint_final.pth")
    data, _, _ = DefaultPreprocessor(verbose=False).run_case(
        [f"fixtures/v2/cases/{CASE}_0000.nii.gz"], None, pred.plans_manager, pred.configuration_manager,
        pred.dataset_json)
    x = torch.from_numpy(data)
    l16 = pred.predict_logits_from_preprocessed_data(x).float().numpy()
    half = torch.half
    try:
        torch.half = torch.float32
        l32 = pred.predict_logits_from_preprocessed_data(x).float().numpy()
    finally:
        torch.half = half
    return float(np.abs(l16 - l32).max()), [int(a) for a in pred.allowed_mirroring_axes or ()]


def ensemble(folders, out, model):
    """nnUNetv2_ensemble as a user runs it; dataset.json and plans.json of `model` beside the first folder's
    predictions when they are missing (nnunetv2's own outputs have them)."""
    for name in ("dataset.json", "plans.json"):
        if not os.path.exists(os.path.join(folders[0], name)):
            shutil.copy(os.path.join(model, name), folders[0])
    subprocess.run([f"{VENV_BIN}/nnUNetv2_ensemble", "-i", *folders, "-o", out, "-np", "1"], check=True)


def theirs():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    with tempfile.TemporaryDirectory() as tmp:
        inp = input_folder(tmp)
        for member, (cfg, fold) in MEMBERS.items():
            model = f"{MODELS}/{cfg}"
            out = f"{OUT}/theirs/{member}"
            subprocess.run([f"{VENV_BIN}/nnUNetv2_predict_from_modelfolder", "-i", inp, "-o", out, "-m", model,
                            "-f", str(fold), "--save_probabilities", "-device", "cpu", "-npp", "1", "-nps", "1",
                            "--disable_progress_bar"], check=True)
            delta, axes = fp16_delta(model, fold)
            json.dump({"case": CASE, "model": model[len("fixtures/v2/"):], "fold": fold,
                       "configuration": cfg.split("__")[-1], "fp16_vs_fp32_logits_max_abs": delta,
                       "mirror_axes": axes}, open(f"{out}/meta.json", "w"), indent=1)
            print("predicted", member, "fp16 vs fp32 logits max abs", delta)
        for name, members in ENSEMBLES.items():
            folders = [f"{OUT}/theirs/{m}" for m in members]
            e = os.path.join(tmp, f"ens_{name}")
            ensemble(folders, e, f"{MODELS}/{MEMBERS[members[0]][0]}")
            shutil.copy(f"{e}/{CASE}.nii.gz", f"{OUT}/theirs_{name}.nii.gz")
        for member in MEMBERS:
            for extra in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
                p = f"{OUT}/theirs/{member}/{extra}"
                if os.path.exists(p):
                    os.remove(p)


def labels(path):
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def probabilities(path):
    with np.load(path) as z:
        assert list(z.keys()) == ["probabilities"], (path, list(z.keys()))
        return z["probabilities"]


def ours():
    exe = os.environ["NNU_PREDICT"]
    record = {"nnu_predict": exe, "members": {}, "ensembles": {}}
    with tempfile.TemporaryDirectory() as tmp:
        inp = input_folder(tmp)
        for member, (cfg, fold) in MEMBERS.items():
            out = os.path.join(tmp, "ours", member)
            subprocess.run([exe, "-m", f"{MODELS}/{cfg}", "-i", inp, "-o", out, "--folds", str(fold),
                            "--save-probabilities", "--threads", "2"], check=True)
            for name in ("dataset.json", "plans.json"):  # nnu-predict copies them as nnunetv2 does
                with open(f"{out}/{name}", "rb") as f, open(f"{MODELS}/{cfg}/{name}", "rb") as g:
                    assert f.read() == g.read(), (out, name)
            a = probabilities(f"{out}/{CASE}.npz")
            b = probabilities(f"{OUT}/theirs/{member}/{CASE}.npz")
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape, (a.dtype, a.shape, b.shape)
            record["members"][member] = {"shape": list(a.shape),
                                         "probabilities_max_abs_diff": float(np.abs(a - b).max())}
        for name, members in ENSEMBLES.items():
            e = os.path.join(tmp, f"ens_{name}")
            ensemble([os.path.join(tmp, "ours", m) for m in members], e, f"{MODELS}/{MEMBERS[members[0]][0]}")
            shutil.copy(f"{e}/{CASE}.nii.gz", f"{OUT}/ours_{name}.nii.gz")
            mine, theirs_seg = labels(f"{e}/{CASE}.nii.gz"), labels(f"{OUT}/theirs_{name}.nii.gz")
            p_ours = np.mean([probabilities(os.path.join(tmp, "ours", m, f"{CASE}.npz")) for m in members], 0)
            p_theirs = np.mean([probabilities(f"{OUT}/theirs/{m}/{CASE}.npz") for m in members], 0)
            m = float(np.abs(p_ours - p_theirs).max())
            top = np.sort(p_theirs, axis=0)
            tie = (top[-1] - top[-2]) <= 2 * m
            differ = mine != theirs_seg
            record["ensembles"][name] = {
                "members": members, "voxels": int(mine.size), "foreground_theirs": int((theirs_seg > 0).sum()),
                "averaged_probabilities_max_abs_diff": m, "near_ties": int(tie.sum()),
                "differ": int(differ.sum()), "differ_not_near_tie": int((differ & ~tie).sum())}
            print(name, record["ensembles"][name])
    json.dump(record, open(f"{OUT}/record.json", "w"), indent=1)


if __name__ == "__main__":
    steps = sys.argv[1:] or ["theirs"]
    if "theirs" in steps:
        theirs()
    if "ours" in steps:
        ours()

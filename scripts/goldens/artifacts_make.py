"""Goldens for crates/nnu-artifacts: nnU-Net 1.7.1 plans from its own planner, pickles of every kind the
reader must handle, small torch checkpoints, and JSON dumps of what Python reads from each of them.

Produces, in fixtures/artifacts/ (all small):
  planner/Task501_PhantomCT/{nnUNetPlansv2.1_plans_3D.pkl, nnUNetPlansv2.1_plans_2D.pkl, splits_final.pkl}
  planner/Task502_PhantomMR/{...same...}     two non-CT channels (intensityproperties None, nonCT schemes)
      made by running nnU-Net 1.7.1's planning pipeline (the steps of nnUNet_plan_and_preprocess -no_pp:
      crop, DatasetAnalyzer.analyze_dataset, ExperimentPlanner3D_v21 / ExperimentPlanner2D_v21.plan_experiment)
      on tiny synthetic phantoms written with SimpleITK in nnU-Net's raw layout in a temp dir; splits_final.pkl is
      built as nnUNetTrainer.do_split builds it (sklearn KFold(5, shuffle=True, random_state=12345) over the
      sorted case ids, OrderedDict of numpy string arrays), saved with nnU-Net's save_pickle.
  planner/Task501_PhantomCT/plans_3D.json    a JSON copy of the 3D plans (int keys as strings, arrays as lists),
      the "plans.json" variant some model folders ship.
  zoo/*.pkl                                   values pickled with protocols 0-5 (numpy arrays C/F order, big
      endian, f16, strings, object arrays, scalars, shared references, long ints, sets, OrderedDicts, ...).
  checkpoints/dtypes.model                    torch.save (zip) of a trainer-style dict whose state_dict holds
      f32/f16/bf16/f64/i64/i32/u8/bool tensors, non-contiguous views, storage offsets, a shared storage, 0-d.
  checkpoints/bare_state_dict.model           torch.save of a bare OrderedDict state_dict.
  checkpoints/legacy.model                    the pre-1.6 (non-zip) torch.save format (must be refused clearly).
  *.json next to every .pkl / .model          what Python reads (encoding below), and
  reference_state_dicts.json                  per tensor of fixtures/reference/*/fold_0/model_final_checkpoint.model:
      name, dtype, shape, sha256 of the raw little-endian bytes and of the float32 little-endian bytes.

JSON encoding of a Python value (exact, so tests compare identically):
  None/bool -> null/bool; int -> {"int": "<decimal>"}; float -> {"float": "<16 hex digits of the f64 bits>"};
  str -> {"str": s}; bytes/bytearray -> {"bytes": "<hex>"}; list/tuple/set -> {"list"|"tuple"|"set": [...]};
  dict/OrderedDict -> {"dict"|"odict": [[k, v], ...]};
  ndarray -> {"ndarray": {"dtype": dtype.str, "shape": [...], "fortran": bool, "data": [...C order...]}} with
      items encoded as above (floats through float64 bits; f16/f32 widen exactly), objects recursively;
  numpy scalar -> {"scalar": {"dtype": dtype.str, "data": item}}; numpy dtype -> {"dtype": dtype.str};
  torch tensor -> {"tensor": {"dtype", "shape"}}; anything else -> {"object": "module.qualname"}.

Pinned versions (the venv at /work/venv): Python 3.11.7, nnunet 1.7.1 (--no-deps), numpy 2.4.6,
SimpleITK 2.5.7, scikit-learn (for KFold, as nnU-Net uses it), torch 2.15.0 (CPU), batchgenerators 0.25.5.

Run: /work/venv/bin/python scripts/goldens/artifacts_make.py   (from the repository root; about a minute)
     /work/venv/bin/python scripts/goldens/artifacts_make.py --reference-only   (only reference/*.json, after
     scripts/goldens/reference_make.py remade fixtures/reference)
"""
import collections
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures" / "artifacts"
REFERENCE = ROOT / "fixtures" / "reference"  # made by reference_make.py

# ---------------------------------------------------------------------------------------------- numpy 2 shims
# nnunet 1.7.1 still uses aliases numpy removed in 1.24; restore them in this process only.
import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _name, _typ in (("int", int), ("float", float), ("bool", bool), ("object", object), ("long", int)):
        if not hasattr(np, _name):
            setattr(np, _name, _typ)


def _stub_modules(*names):
    """nnunet imports plotting modules at import time that planning never uses; stub them if absent."""
    import importlib.util
    import types

    for name in names:
        top = name.split(".")[0]
        if top in sys.modules or importlib.util.find_spec(top) is None:
            for part in range(1, name.count(".") + 2):
                mod = ".".join(name.split(".")[:part])
                sys.modules.setdefault(mod, types.ModuleType(mod))
    if "matplotlib" in sys.modules and not hasattr(sys.modules["matplotlib"], "use"):
        sys.modules["matplotlib"].use = lambda *a, **k: None


_stub_modules("matplotlib", "matplotlib.pyplot")


# ---------------------------------------------------------------------------------------------- JSON encoding
def f64_hex(x):
    return struct.pack(">d", float(x)).hex()


def enc_item(x, dtype):
    k = dtype.kind
    if k == "b":
        return bool(x)
    if k in "iu":
        return {"int": str(int(x))}
    if k == "f":
        return {"float": f64_hex(x)}
    if k == "U":
        return {"str": str(x)}
    if k == "S":
        return {"bytes": bytes(x).hex()}
    if k == "O":
        return enc(x)
    return {"raw": np.asarray(x).tobytes().hex()}


def enc(v):
    import torch

    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, np.ndarray):
        flat = v.reshape(-1, order="C") if v.size else v.reshape(-1)
        return {"ndarray": {"dtype": v.dtype.str, "shape": list(v.shape),
                            "fortran": bool(v.flags.f_contiguous and not v.flags.c_contiguous),
                            "data": [enc_item(x, v.dtype) for x in flat]}}
    if isinstance(v, np.generic):
        return {"scalar": {"dtype": v.dtype.str, "data": enc_item(v, v.dtype)}}
    if isinstance(v, np.dtype):
        return {"dtype": v.str}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": f64_hex(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, list):
        return {"list": [enc(x) for x in v]}
    if isinstance(v, tuple):
        return {"tuple": [enc(x) for x in v]}
    if isinstance(v, (set, frozenset)):
        return {"set": [enc(x) for x in v]}
    if isinstance(v, collections.OrderedDict):
        return {"odict": [[enc(k), enc(x)] for k, x in v.items()]}
    if isinstance(v, dict):
        return {"dict": [[enc(k), enc(x)] for k, x in v.items()]}
    if isinstance(v, torch.Tensor):
        return {"tensor": {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}}
    t = type(v)
    return {"object": f"{t.__module__}.{t.__qualname__}"}


def dump_json(path, obj):
    path.write_text(json.dumps(obj, indent=None, separators=(",", ":")) + "\n")


def dump_pickle_and_json(pkl_path):
    with open(pkl_path, "rb") as f:
        value = pickle.load(f)
    dump_json(pkl_path.with_suffix(pkl_path.suffix + ".json"), enc(value))


# ---------------------------------------------------------------------------------------------- phantoms
def make_task(raw_base, task, modalities, n_cases, seed, shape_base, spacing_xyz):
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    d = raw_base / "nnUNet_raw_data" / task
    (d / "imagesTr").mkdir(parents=True)
    (d / "labelsTr").mkdir()
    training = []
    for i in range(n_cases):
        shape = tuple(int(s + rng.integers(-3, 4)) for s in shape_base)
        z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
        body = (y / 0.9) ** 2 + (x / 0.9) ** 2 < 1
        organ = ((z - 0.1) / 0.6) ** 2 + ((y - 0.1) / 0.4) ** 2 + ((x + 0.2) / 0.45) ** 2 < 1
        lesion = (z / 0.2) ** 2 + ((y - 0.1) / 0.15) ** 2 + ((x + 0.2) / 0.15) ** 2 < 1
        seg = np.zeros(shape, np.uint8)
        seg[organ] = 1
        seg[organ & lesion] = 2
        case = f"case_{i:03d}"
        for m, name in modalities.items():
            if name == "CT":
                img = np.full(shape, -1000.0)
                img[body] = 40
                img[seg == 1] = 60
                img[seg == 2] = 110
                img += rng.normal(0, 15, shape)
                img = img.astype(np.int16)
            else:
                img = np.zeros(shape)
                img[body] = 300 + 100 * int(m)
                img[seg == 1] = 500 - 50 * int(m)
                img[seg == 2] = 700
                img = (img + rng.normal(0, 20, shape)).clip(0).astype(np.float32)
            im = sitk.GetImageFromArray(img)
            im.SetSpacing(spacing_xyz)
            sitk.WriteImage(im, str(d / "imagesTr" / f"{case}_{int(m):04d}.nii.gz"))
        lab = sitk.GetImageFromArray(seg)
        lab.SetSpacing(spacing_xyz)
        sitk.WriteImage(lab, str(d / "labelsTr" / f"{case}.nii.gz"))
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    ds = {"name": task, "description": "synthetic phantom", "tensorImageSize": "4D", "reference": "none",
          "licence": "CC0", "release": "0.0", "modality": modalities,
          "labels": {"0": "background", "1": "organ", "2": "lesion"},
          "numTraining": n_cases, "numTest": 0, "training": training, "test": []}
    (d / "dataset.json").write_text(json.dumps(ds, indent=2))


def plan_task(task, out_dir):
    """The steps of nnUNet_plan_and_preprocess -no_pp for one task, with nnU-Net's own classes."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunet.experiment_planning.DatasetAnalyzer import DatasetAnalyzer
    from nnunet.experiment_planning.experiment_planner_baseline_2DUNet_v21 import ExperimentPlanner2D_v21
    from nnunet.experiment_planning.experiment_planner_baseline_3DUNet_v21 import ExperimentPlanner3D_v21
    from nnunet.experiment_planning.utils import crop
    from nnunet.paths import nnUNet_cropped_data, nnUNet_raw_data, preprocessing_output_dir
    from nnunet.training.model_restore import load_pickle

    crop(task, False, 2)
    cropped = os.path.join(nnUNet_cropped_data, task)
    pre = os.path.join(preprocessing_output_dir, task)
    modalities = list(load_json(os.path.join(cropped, "dataset.json"))["modality"].values())
    collect = ("CT" in modalities) or ("ct" in modalities)
    DatasetAnalyzer(cropped, overwrite=False, num_processes=2).analyze_dataset(collect)
    os.makedirs(pre, exist_ok=True)
    shutil.copy(os.path.join(cropped, "dataset_properties.pkl"), pre)
    shutil.copy(os.path.join(nnUNet_raw_data, task, "dataset.json"), pre)
    ExperimentPlanner3D_v21(cropped, pre).plan_experiment()
    ExperimentPlanner2D_v21(cropped, pre).plan_experiment()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("nnUNetPlansv2.1_plans_3D.pkl", "nnUNetPlansv2.1_plans_2D.pkl"):
        shutil.copy(os.path.join(pre, name), out_dir / name)
    return load_pickle(os.path.join(pre, "nnUNetPlansv2.1_plans_3D.pkl"))


def make_splits(case_ids, path):
    """As nnUNetTrainer.do_split (nnU-Net 1.7.1) builds splits_final.pkl."""
    from batchgenerators.utilities.file_and_folder_operations import save_pickle
    from sklearn.model_selection import KFold

    keys = np.sort(np.array(case_ids))
    splits = []
    for tr, val in KFold(n_splits=5, shuffle=True, random_state=12345).split(keys):
        splits.append(collections.OrderedDict())
        splits[-1]["train"] = np.array(keys[tr])
        splits[-1]["val"] = np.array(keys[val])
    save_pickle(splits, str(path))


def plans_to_json(v):
    """The plans.json variant: JSON-native values, int keys as strings, arrays and numpy scalars unwrapped."""
    if isinstance(v, dict):
        return {str(k): plans_to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plans_to_json(x) for x in v]
    if isinstance(v, np.ndarray):
        return plans_to_json(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------------------------------------- pickle zoo
def zoo_values():
    shared = [1, 2, 3]
    shared_arr = np.arange(4, dtype=np.int16)
    return {
        "scalars": [None, True, False, 0, 1, -1, 255, 256, 65535, 65536, -129, 2**31 - 1, -2**31, 2**31,
                    2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**100, -(2**100) + 7, 0.0, -0.0, 1.5, 1e-310,
                    float("inf"), float("-inf"), 3.141592653589793, "", "é€😀", "quote'\"\n", b"", b"\x00\xff"],
        "containers": {"list": [1, [2, [3, []]]], "tuple": (1, (2,), ()), "set": {1, 2, 3},
                       "frozenset": frozenset(["a"]), (1, "k"): "tuple key", 7: "int key", 2.5: "float key",
                       "odict": collections.OrderedDict([("b", 1), ("a", 2)]), "bytearray": bytearray(b"ab\x00")},
        "shared": {"a": shared, "b": shared, "c": (shared, shared), "arr1": shared_arr, "arr2": shared_arr},
        "arrays": {
            "f32_c": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
            "f64_f": np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4) * 1.1),
            "i64_f2d": np.asfortranarray(np.arange(6).reshape(2, 3)),
            "i32_be": np.arange(-3, 3, dtype=">i4"),
            "f64_be": np.array([1.5, -2.25, np.pi], dtype=">f8"),
            "u16_be_f": np.asfortranarray(np.arange(6, dtype=">u2").reshape(3, 2)),
            "f16": np.array([0.5, -1, 65504, 6e-8, np.inf], dtype=np.float16),
            "bool": np.array([True, False, True]),
            "u8": np.arange(5, dtype=np.uint8),
            "i8": np.array([-128, 127], dtype=np.int8),
            "u64": np.array([2**64 - 1, 0], dtype=np.uint64),
            "unicode": np.array(["liver_3", "liver_12", "é"]),
            "bytes": np.array([b"ab", b"c\x00d", b""]),
            "object": np.array([1, "two", None, [3]], dtype=object),
            "empty": np.zeros((0, 3), dtype=np.float32),
            "zero_d": np.array(5.0),
            "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
            "complex": np.array([1 + 2j]),
        },
        "numpy_scalars": [np.float32(99.4), np.float64(0.7676), np.int64(-5), np.int32(7), np.uint8(200),
                          np.bool_(True), np.float16(0.1), np.str_("abc")],
        "dtypes": [np.dtype("<f4"), np.dtype(">i8"), np.dtype("U9")],
    }


def make_zoo(zoo_dir):
    zoo_dir.mkdir(parents=True, exist_ok=True)
    values = zoo_values()
    for proto in range(0, 6):
        path = zoo_dir / f"zoo_p{proto}.pkl"
        with open(path, "wb") as f:
            pickle.dump(values, f, protocol=proto)
        dump_pickle_and_json(path)
    # protocol 5 with numpy's in-band PickleBuffer path (_frombuffer), in a separate small file
    arrs = {"c": np.arange(6, dtype=np.float32).reshape(2, 3), "f": np.asfortranarray(np.arange(6.0).reshape(2, 3))}
    path = zoo_dir / "frombuffer_p5.pkl"
    path.write_bytes(pickle.dumps(arrs, protocol=5))
    dump_pickle_and_json(path)


# ---------------------------------------------------------------------------------------------- checkpoints
def make_checkpoints(ck_dir):
    import torch

    ck_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 5, generator=g)
    big = torch.randn(30, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(2, 3, 3, generator=g)
    sd["f16"] = torch.randn(7, generator=g).half()
    sd["bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["f64"] = torch.randn(2, 2, generator=g).double()
    sd["i64"] = torch.tensor([-(2**40), 0, 2**40 + 3])
    sd["i32"] = torch.tensor([-7, 9], dtype=torch.int32)
    sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False])
    sd["transposed"] = base.t()                      # non-contiguous strides (1, 5)
    sd["offset_view"] = big[10:16].view(2, 3)        # storage offset 10, shares big's storage
    sd["strided_view"] = big[::3]                    # stride 3
    sd["num_batches_tracked"] = torch.tensor(17)     # 0-d
    sd["empty"] = torch.zeros(0, 4)
    ckpt = {"epoch": 3, "state_dict": sd, "optimizer_state_dict": None, "lr_scheduler_state_dict": None,
            "plot_stuff": ([0.5], [0.4], [], [0.8]), "best_stuff": (2, 0.4, 0.8, 0.8)}
    torch.save(ckpt, ck_dir / "dtypes.model")
    torch.save(collections.OrderedDict([("w", torch.arange(6.0).view(2, 3)), ("b", torch.ones(2))]),
               ck_dir / "bare_state_dict.model")
    torch.save({"state_dict": collections.OrderedDict([("w", torch.ones(2))])}, ck_dir / "legacy.model",
               _use_new_zipfile_serialization=False)
    for name in ("dtypes.model", "bare_state_dict.model"):
        loaded = torch.load(ck_dir / name, map_location="cpu", weights_only=False)
        state = loaded["state_dict"] if "state_dict" in loaded else loaded
        dump_json(ck_dir / f"{name}.json", {
            "epoch": loaded.get("epoch") if isinstance(loaded, dict) and "state_dict" in loaded else None,
            "tensors": [tensor_golden(k, t) for k, t in state.items()],
            "values": [tensor_values(k, t) for k, t in state.items()]})


def tensor_golden(name, t):
    import torch

    t = t.detach().contiguous().cpu()
    raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
    f32 = t.float().numpy().astype("<f4").tobytes()
    return {"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
            "sha256_raw": hashlib.sha256(raw).hexdigest(), "sha256_f32": hashlib.sha256(f32).hexdigest()}


def tensor_values(name, t):
    return {"name": name, "f32_bits": [struct.pack(">f", x).hex() for x in t.detach().float().reshape(-1).tolist()]}


def reference_goldens():
    import torch

    out = {}
    for model in ("unet-small", "unetpp-small"):
        d = REFERENCE / model
        ck = torch.load(d / "fold_0" / "model_final_checkpoint.model", map_location="cpu", weights_only=False)
        out[model] = {"epoch": ck["epoch"],
                      "tensors": [tensor_golden(k, t) for k, t in ck["state_dict"].items()]}
        with open(d / "plans.pkl", "rb") as f:
            dump_json(OUT / "reference" / f"{model}.plans.pkl.json", enc(pickle.load(f)))
        with open(d / "fold_0" / "model_final_checkpoint.model.pkl", "rb") as f:
            dump_json(OUT / "reference" / f"{model}.model_final_checkpoint.model.pkl.json", enc(pickle.load(f)))
    dump_json(OUT / "reference" / "reference_state_dicts.json", out)


# ---------------------------------------------------------------------------------------------- main
def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reference").mkdir(exist_ok=True)
    if sys.argv[1:] == ["--reference-only"]:
        reference_goldens()
        return 0
    # A fixed scratch path: nnU-Net stores absolute paths in the plans, and fixed ones keep reruns identical.
    tmp = Path(tempfile.gettempdir()) / "nnu_artifacts_goldens"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        os.environ["nnUNet_raw_data_base"] = str(tmp / "raw")
        os.environ["nnUNet_preprocessed"] = str(tmp / "preprocessed")
        os.environ["RESULTS_FOLDER"] = str(tmp / "results")
        make_task(tmp / "raw", "Task501_PhantomCT", {"0": "CT"}, 6, 501, (36, 56, 56), (0.8, 0.8, 2.5))
        make_task(tmp / "raw", "Task502_PhantomMR", {"0": "T1", "1": "T2"}, 5, 502, (40, 40, 40), (1.0, 1.0, 1.0))
        for task, n in (("Task501_PhantomCT", 6), ("Task502_PhantomMR", 5)):
            out_dir = OUT / "planner" / task
            plans3d = plan_task(task, out_dir)
            make_splits([f"case_{i:03d}" for i in range(n)], out_dir / "splits_final.pkl")
            for p in sorted(out_dir.glob("*.pkl")):
                dump_pickle_and_json(p)
            if task == "Task501_PhantomCT":
                (out_dir / "plans_3D.json").write_text(json.dumps(plans_to_json(plans3d), indent=1) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    make_zoo(OUT / "zoo")
    make_checkpoints(OUT / "checkpoints")
    reference_goldens()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    sys.exit(main())

"""Goldens for nnunetv2 (2.x) model support: small random-weight v2 model folders and what nnunetv2 computes
with them.

Each model folder is laid out as nnunetv2 2.8.1 leaves a trained model (`nnUNetv2_predict_from_modelfolder`
takes it): `dataset.json`, `plans.json` (the keys `ExperimentPlanner.plan_experiment` writes, written by hand
for small networks), `fold_K/checkpoint_final.pth` in the dict layout of `nnUNetTrainer.save_checkpoint`
(`network_weights`, `optimizer_state` of an SGD after one step so momentum buffers exist, `grad_scaler_state`
None, `logging`, `_best_ema`, `current_epoch`, `init_args` with the plans, configuration, fold, dataset_json and
`torch.device('cpu')`, `trainer_name`, `inference_allowed_mirroring_axes`). Networks come from nnunetv2's
`get_network_from_plans` (dynamic_network_architectures), He-initialised, then given seeded random conv/
transposed-conv/head biases and norm affine parameters so that every tensor matters.

Models (fixtures/v2/models/):
  Dataset901_Plain/nnUNetTrainer__nnUNetPlans__3d_fullres   PlainConvUNet 3-D, anisotropic kernels/strides,
      1 channel CT (CTNormalization), 3 labels, folds 0 and 1; the plans also hold `2d`, `3d_lowres` and a
      `3d_cascade_fullres` that `inherits_from` 3d_fullres; transpose_forward [0, 2, 1].
  Dataset901_Plain/nnUNetTrainer__nnUNetPlans__2d           the same plans' `2d` configuration, fold 0.
  Dataset902_ResEnc/nnUNetTrainer__nnUNetResEncUNetMPlans__3d_fullres   ResidualEncoderUNet (BasicBlockD,
      stem, projection and pool-only skips), 2 channels (ZScoreNormalization with and without the mask),
      mirroring axes (1, 2) only, fold 0.
  Dataset903_Regions/nnUNetTrainer__nnUNetPlans__3d_fullres  PlainConvUNet with region labels
      (`whole` = [1, 2], `core` = 2, regions_class_order [1, 2]): sigmoid outputs; fold 0.

Network goldens (fixtures/v2/net/<case>/): input.npy (seeded normal, (1, C, patch)), output.npy (PyTorch's
forward in eval mode, deep supervision off), meta.json (model folder, fold, configuration).

Run: /work/venv/bin/python scripts/goldens/v2_make.py   (from the repository root)
Versions: Python 3.11, torch 2.15.0 (CPU), numpy, nnunetv2 2.8.1, dynamic-network-architectures 0.4.4.
"""
import copy
import json
import os
import shutil

import numpy as np
import torch

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

OUT = "fixtures/v2"
torch.set_num_threads(1)


def arch(cls, ndim, features, kernels, strides, blocks, decoder):
    conv = f"torch.nn.modules.conv.Conv{ndim}d"
    norm = f"torch.nn.modules.instancenorm.InstanceNorm{ndim}d"
    kw = {
        "n_stages": len(features),
        "features_per_stage": features,
        "conv_op": conv,
        "kernel_sizes": kernels,
        "strides": strides,
        ("n_conv_per_stage" if cls == "PlainConvUNet" else "n_blocks_per_stage"): blocks,
        "n_conv_per_stage_decoder": decoder,
        "conv_bias": True,
        "norm_op": norm,
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return {
        "network_class_name": f"dynamic_network_architectures.architectures.unet.{cls}",
        "arch_kwargs": kw,
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


RESAMPLING = {
    "resampling_fn_data": "resample_data_or_seg_to_shape",
    "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
    "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
    "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
}


def config(ident, patch, spacing, norms, masks, architecture, bs=2):
    c = {
        "data_identifier": ident,
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": bs,
        "patch_size": patch,
        "median_image_size_in_voxels": [float(p) * 2 for p in patch],
        "spacing": spacing,
        "normalization_schemes": norms,
        "use_mask_for_norm": masks,
    }
    c.update(copy.deepcopy(RESAMPLING))
    c["architecture"] = architecture
    c["batch_dice"] = False
    return c


def plans_plain():
    # transpose_forward [0, 2, 1]: the network sees (z, x, y) of the numpy (z, y, x) image.
    fullres = config(
        "nnUNetPlans_3d_fullres", [8, 24, 32], [3.0, 1.1, 0.9], ["CTNormalization"], [False],
        arch("PlainConvUNet", 3, [4, 8, 12, 16], [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]],
             [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], [2, 2, 2, 2], [2, 2, 2]))
    two_d = config(
        "nnUNetPlans_2d", [32, 32], [1.1, 0.9], ["CTNormalization"], [False],
        arch("PlainConvUNet", 2, [4, 8, 16], [[3, 3], [3, 3], [3, 3]], [[1, 1], [2, 2], [2, 2]],
             [2, 2, 2], [2, 2]), bs=12)
    lowres = copy.deepcopy(fullres)
    lowres["data_identifier"] = "nnUNetPlans_3d_lowres"
    lowres["spacing"] = [4.5, 1.65, 1.35]
    lowres["next_stage"] = "3d_cascade_fullres"
    return {
        "dataset_name": "Dataset901_Plain",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [3.0, 0.9, 1.1],
        "original_median_shape_after_transp": [20, 36, 40],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 2, 1],
        "transpose_backward": [0, 2, 1],
        "configurations": {
            "2d": two_d,
            "3d_lowres": lowres,
            "3d_fullres": fullres,
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 310.0, "mean": 101.25, "median": 99.0, "min": -80.0,
                  "percentile_00_5": -40.0, "percentile_99_5": 240.0, "std": 43.5}},
    }


def plans_resenc():
    fullres = config(
        "nnUNetResEncUNetMPlans_3d_fullres", [16, 16, 24], [1.5, 1.2, 1.0],
        ["ZScoreNormalization", "ZScoreNormalization"], [True, False],
        arch("ResidualEncoderUNet", 3, [4, 8, 16, 16], [[3, 3, 3]] * 4,
             [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], [1, 2, 2, 2], [1, 1, 1]))
    return {
        "dataset_name": "Dataset902_ResEnc",
        "plans_name": "nnUNetResEncUNetMPlans",
        "original_median_spacing_after_transp": [1.5, 1.2, 1.0],
        "original_median_shape_after_transp": [24, 30, 30],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": fullres,
            # Preprocessing goldens only: the other normalisation schemes on the same data.
            "3d_fullres_rescale": {"inherits_from": "3d_fullres",
                                   "normalization_schemes": ["RescaleTo01Normalization", "NoNormalization"]},
        },
        "experiment_planner_used": "nnUNetPlannerResEncM",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(c): {"max": 3.0, "mean": 0.5, "median": 0.4, "min": -1.0, "percentile_00_5": -0.9,
                     "percentile_99_5": 2.5, "std": 0.7} for c in range(2)},
    }


def plans_regions():
    fullres = config(
        "nnUNetPlans_3d_fullres", [16, 16, 16], [2.0, 1.0, 1.0], ["ZScoreNormalization"], [False],
        arch("PlainConvUNet", 3, [4, 8, 8], [[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
             [2, 2, 2], [2, 2]))
    return {
        "dataset_name": "Dataset903_Regions",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.0, 1.0, 1.0],
        "original_median_shape_after_transp": [20, 30, 30],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": fullres},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 3.0, "mean": 0.5, "median": 0.4, "min": -1.0, "percentile_00_5": -0.9,
                  "percentile_99_5": 2.5, "std": 0.7}},
    }


DATASETS = {
    "Dataset901_Plain": {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": 10,
        "file_ending": ".nii.gz",
    },
    "Dataset902_ResEnc": {
        "channel_names": {"0": "T1", "1": "T2"},
        "labels": {"background": 0, "organ": 1},
        "numTraining": 10,
        "file_ending": ".nii.gz",
    },
    "Dataset903_Regions": {
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, "whole": [1, 2], "core": 2},
        "regions_class_order": [1, 2],
        "numTraining": 10,
        "file_ending": ".nii.gz",
    },
}

# (dataset, plans, plans name, configuration, folds, mirroring axes, seed)
MODELS = [
    ("Dataset901_Plain", plans_plain, "nnUNetPlans", "3d_fullres", [0, 1], (0, 1, 2), 1),
    ("Dataset901_Plain", plans_plain, "nnUNetPlans", "2d", [0], (0, 1), 2),
    ("Dataset902_ResEnc", plans_resenc, "nnUNetResEncUNetMPlans", "3d_fullres", [0], (1, 2), 3),
    ("Dataset903_Regions", plans_regions, "nnUNetPlans", "3d_fullres", [0], (0, 1, 2), 4),
]


def num_outputs(ds):
    labels = ds["labels"]
    if any(isinstance(v, list) and len(v) > 1 for v in labels.values()):
        return len([v for k, v in labels.items() if v != 0])
    return len(labels)


def build(plans, cfg_name, ds, deep_supervision=False):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    cm = PlansManager(plans).get_configuration(cfg_name)
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, len(ds["channel_names"]),
                                 num_outputs(ds), allow_init=True, deep_supervision=deep_supervision)
    return net, cm


def randomise(net, gen):
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif p.ndim == 1:  # norm weight
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.1)


def make_checkpoint(net, plans, cfg_name, fold, ds, mirror_axes, gen, patch, in_ch):
    opt = torch.optim.SGD(net.parameters(), 1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    net.train()
    x = torch.randn((1, in_ch, *patch), generator=gen)
    out = net(x)
    loss = sum(o.float().pow(2).mean() for o in (out if isinstance(out, (list, tuple)) else [out]))
    loss.backward()
    # Keep the random weights as they are: the step only fills the momentum buffers with zeros of the
    # right shapes (lr 0 for the step).
    for g in opt.param_groups:
        g["lr"] = 0.0
    opt.step()
    opt.zero_grad()
    for g in opt.param_groups:
        g["lr"] = 1e-2
    net.eval()
    return {
        "network_weights": net.state_dict(),
        "optimizer_state": opt.state_dict(),
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [0.1, 0.2], "ema_fg_dice": [0.1, 0.11], "dice_per_class_or_region": [[0.1], [0.2]],
                    "train_losses": [1.0, 0.9], "val_losses": [1.1, 1.0], "lrs": [0.01, 0.0099],
                    "epoch_start_timestamps": [0.0, 1.0], "epoch_end_timestamps": [0.5, 1.5]},
        "_best_ema": 0.11,
        "current_epoch": 2,
        "init_args": {"plans": plans, "configuration": cfg_name, "fold": fold, "dataset_json": ds,
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": mirror_axes,
    }


def main():
    if os.path.isdir(OUT + "/models"):
        shutil.rmtree(OUT + "/models")
    if os.path.isdir(OUT + "/net"):
        shutil.rmtree(OUT + "/net")
    for ds_name, plans_fn, plans_name, cfg_name, folds, mirror_axes, seed in MODELS:
        plans = plans_fn()
        ds = DATASETS[ds_name]
        folder = f"{OUT}/models/{ds_name}/nnUNetTrainer__{plans_name}__{cfg_name}"
        os.makedirs(folder, exist_ok=True)
        with open(f"{folder}/plans.json", "w") as f:
            json.dump(plans, f, indent=4, sort_keys=False)
        with open(f"{folder}/dataset.json", "w") as f:
            json.dump(ds, f, indent=4, sort_keys=False)
        for fold in folds:
            gen = torch.Generator().manual_seed(1000 * seed + fold)
            torch.manual_seed(1000 * seed + fold)
            net, cm = build(plans, cfg_name, ds, deep_supervision=True)
            randomise(net, gen)
            in_ch = len(ds["channel_names"])
            ckpt = make_checkpoint(net, plans, cfg_name, fold, ds, mirror_axes, gen, cm.patch_size, in_ch)
            os.makedirs(f"{folder}/fold_{fold}", exist_ok=True)
            torch.save(ckpt, f"{folder}/fold_{fold}/checkpoint_final.pth")

            # Network golden: the inference network (deep supervision off) with these weights.
            inf, _ = build(plans, cfg_name, ds, deep_supervision=False)
            inf.load_state_dict(ckpt["network_weights"])
            inf.eval()
            x = torch.randn((1, in_ch, *cm.patch_size), generator=torch.Generator().manual_seed(7 + seed))
            with torch.no_grad():
                y = inf(x)
            case = f"{ds_name}_{cfg_name}_fold{fold}"
            d = f"{OUT}/net/{case}"
            os.makedirs(d, exist_ok=True)
            np.save(f"{d}/input.npy", x.numpy().astype(np.float32))
            np.save(f"{d}/output.npy", y.numpy().astype(np.float32))
            with open(f"{d}/meta.json", "w") as f:
                json.dump({"model": folder[len(OUT) + 1:], "fold": fold, "configuration": cfg_name,
                           "network_class_name": cm.network_arch_class_name,
                           "parameters": sum(p.numel() for p in inf.parameters()),
                           "state_dict_keys": len(ckpt["network_weights"])}, f, indent=1)
            print(case, tuple(y.shape), sum(p.numel() for p in inf.parameters()), "parameters")


# ---------------------------------------------------------------------------------------------------------
# Phantoms, preprocessing and prediction goldens
# ---------------------------------------------------------------------------------------------------------

# (case, dataset, shape zyx, spacing zyx, origin xyz, direction row-major, channels)
CASES = [
    ("plain_a", "Dataset901_Plain", (14, 30, 26), (2.5, 1.3, 0.7), (-12.5, 30.25, 101.0),
     (-1, 0, 0, 0, -1, 0, 0, 0, 1), 1),
    ("resenc_a", "Dataset902_ResEnc", (18, 20, 26), (1.2, 0.9, 1.1), (5.0, -7.5, -20.0),
     (1, 0, 0, 0, 0, -1, 0, 1, 0), 2),
    ("regions_a", "Dataset903_Regions", (14, 22, 20), (2.2, 0.8, 1.0), (0.5, 0.25, -3.0),
     (1, 0, 0, 0, -1, 0, 0, 0, -1), 1),
]


def phantom(shape, seed, channels, ct):
    """A body ellipsoid with two blobs inside a zero margin (so that crop to nonzero has work to do)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    body = (z / 0.95) ** 2 + (y / 0.8) ** 2 + (x / 0.75) ** 2 < 1
    organ = ((z - 0.1) / 0.5) ** 2 + ((y + 0.2) / 0.4) ** 2 + ((x - 0.1) / 0.35) ** 2 < 1
    lesion = ((z + 0.1) / 0.3) ** 2 + ((y - 0.25) / 0.25) ** 2 + ((x + 0.2) / 0.2) ** 2 < 1
    out = []
    for c in range(channels):
        if ct:
            img = np.where(body, 40.0, 0.0) + np.where(organ, 60.0, 0.0) + np.where(lesion, 90.0, 0.0)
            img = img + body * rng.normal(0, 25, shape)
            img = np.round(img).astype(np.int16)
            img[~body] = 0
        else:
            img = (body * (1.0 + c) + organ * 0.8 + lesion * (1.5 - c) + body * rng.normal(0, 0.3, shape))
            img = img.astype(np.float32)
            img[~body] = 0
        # An interior voxel of exactly 0 inside the body: filled by binary_fill_holes, so inside the mask.
        img[shape[0] // 2, shape[1] // 2, shape[2] // 2] = 0
        out.append(img)
    return out


def write_cases():
    import SimpleITK as sitk
    d = f"{OUT}/cases"
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for i, (case, ds, shape, spacing, origin, direction, channels) in enumerate(CASES):
        imgs = phantom(shape, 100 + i, channels, ct=(ds == "Dataset901_Plain"))
        for c, a in enumerate(imgs):
            im = sitk.GetImageFromArray(a)
            im.SetSpacing(tuple(float(s) for s in spacing[::-1]))
            im.SetOrigin(tuple(float(o) for o in origin))
            im.SetDirection(tuple(float(v) for v in direction))
            sitk.WriteImage(im, f"{d}/{case}_{c:04d}.nii.gz")


def model_dirs():
    out = {}
    for ds_name, _, plans_name, cfg_name, folds, _, _ in MODELS:
        out[f"{ds_name}_{cfg_name}"] = (f"{OUT}/models/{ds_name}/nnUNetTrainer__{plans_name}__{cfg_name}",
                                        ds_name, cfg_name, folds)
    return out


def files_of(case, channels):
    return [f"{OUT}/cases/{case}_{c:04d}.nii.gz" for c in range(channels)]


def jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(i) for i in v]
    if isinstance(v, dict):
        return {str(k): jsonable(i) for k, i in v.items()}
    return v


def preprocess_goldens():
    """DefaultPreprocessor.run_case on each case with each model of its dataset (and, for the ResEnc plans,
    the extra normalisation schemes of `3d_fullres_rescale`)."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    d = f"{OUT}/preprocess"
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for tag, (folder, ds_name, cfg_name, _) in model_dirs().items():
        plans = json.load(open(f"{folder}/plans.json"))
        ds = json.load(open(f"{folder}/dataset.json"))
        pm = PlansManager(plans)
        cfgs = [cfg_name] + (["3d_fullres_rescale"] if "3d_fullres_rescale" in plans["configurations"] else [])
        for cfg in cfgs:
            cm = pm.get_configuration(cfg)
            for case, cds, *_rest, channels in CASES:
                if cds != ds_name:
                    continue
                data, seg, props = DefaultPreprocessor(verbose=False).run_case(
                    files_of(case, channels), None, pm, cm, ds)
                name = f"{ds_name}_{cfg}_{case}"
                np.save(f"{d}/{name}.npy", data.astype(np.float32))
                keep = {k: props[k] for k in ("spacing", "shape_before_cropping", "bbox_used_for_cropping",
                                              "shape_after_cropping_and_before_resampling")}
                keep["case"] = case
                keep["model"] = folder[len(OUT) + 1:]
                keep["configuration"] = cfg
                keep["shape"] = list(data.shape)
                json.dump(jsonable(keep), open(f"{d}/{name}.json", "w"), indent=1)
                print("preprocessed", name, data.shape)


def predict_goldens():
    """nnUNetPredictor (CPU, step 0.5, Gaussian, mirroring) on each case: the fold-averaged logits of the
    preprocessed data, once as nnunetv2 computes them (fp16 accumulators) and once with the accumulators in fp32
    (torch.half rebound to torch.float32 while predicting; the Gaussian stays fp16 as compute_gaussian's default
    dtype was bound at definition), and predict_from_files' segmentation and probabilities."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    d = f"{OUT}/predict"
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for tag, (folder, ds_name, cfg_name, folds) in model_dirs().items():
        for case, cds, *_rest, channels in CASES:
            if cds != ds_name:
                continue
            pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                   perform_everything_on_device=False, device=torch.device("cpu"),
                                   verbose=False, allow_tqdm=False)
            pred.initialize_from_trained_model_folder(folder, use_folds=tuple(folds),
                                                      checkpoint_name="checkpoint_final.pth")
            data, _, props = DefaultPreprocessor(verbose=False).run_case(
                files_of(case, channels), None, pred.plans_manager, pred.configuration_manager, pred.dataset_json)
            x = torch.from_numpy(data)
            logits16 = pred.predict_logits_from_preprocessed_data(x).float().numpy()
            half = torch.half
            try:
                torch.half = torch.float32
                logits32 = pred.predict_logits_from_preprocessed_data(x).float().numpy()
            finally:
                torch.half = half
            name = f"{ds_name}_{cfg_name}_{case}"
            np.save(f"{d}/{name}_logits.npy", logits32.astype(np.float32))
            diff = float(np.abs(logits16 - logits32).max())
            out = f"{d}/{name}"
            os.makedirs(out, exist_ok=True)
            pred.predict_from_files([files_of(case, channels)], [f"{out}/{case}"], save_probabilities=True,
                                    overwrite=True, num_processes_preprocessing=1,
                                    num_processes_segmentation_export=1)
            for extra in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
                p = f"{out}/{extra}"
                if os.path.exists(p):
                    os.remove(p)
            json.dump({"case": case, "model": folder[len(OUT) + 1:], "folds": folds, "configuration": cfg_name,
                       "logits_shape": list(logits32.shape),
                       "fp16_vs_fp32_logits_max_abs": diff,
                       "mirror_axes": jsonable(pred.allowed_mirroring_axes)},
                      open(f"{out}/meta.json", "w"), indent=1)
            print("predicted", name, logits32.shape, "fp16 vs fp32 logits max abs", diff)


if __name__ == "__main__":
    import sys
    steps = sys.argv[1:] or ["models", "cases", "preprocess", "predict"]
    if "models" in steps:
        main()
    if "cases" in steps:
        write_cases()
    if "preprocess" in steps:
        preprocess_goldens()
    if "predict" in steps:
        predict_goldens()

"""Goldens for cascades (`3d_cascade_fullres` with the `3d_lowres` prediction as extra input), nnunetv2 and
nnU-Net v1. Extends scripts/goldens/v2_make.py (its plans helpers, checkpoint layout and phantom) to a small
cascade; everything is random-weight material, no real data.

nnunetv2 part (fixtures/cascade/v2/):
  models/Dataset904_Cascade/nnUNetTrainer__nnUNetPlans__3d_lowres/          PlainConvUNet, 1 channel (MR-like,
      ZScoreNormalization with use_mask_for_norm, so the `seg >= 0` mask of a cascade matters), 3 labels, fold 0,
      mirroring axes (1, 2).
  models/Dataset904_Cascade/nnUNetTrainer__nnUNetPlans__3d_cascade_fullres/  the same network with 1 + 2 input
      channels (`determine_num_input_channels`: modalities + foreground labels), fold 0, mirroring (0, 1, 2).
      Both folders hold the same plans.json: 3d_lowres (next_stage 3d_cascade_fullres), 3d_fullres and
      3d_cascade_fullres (inherits_from 3d_fullres, previous_stage 3d_lowres); transpose_forward [0, 2, 1].
  cases/casc_a_0000.nii.gz    phantom (v2_make.phantom: body ellipsoid, blobs, zero margin so the crop crops),
      anisotropic (separate z in the resampling of the data and of the segmentation), flipped directions, origin.
  lowres/casc_a.nii.gz        nnUNetPredictor.predict_from_files with 3d_lowres as users run it (fp16
      accumulators); lowres/casc_a_logits.npy the fp32-accumulator logits (preprocessed frame), lowres/meta.json.
  prev/handmade/casc_a.nii.gz a hand-made previous-stage label map (the phantom's blobs as labels 1 and 2, one
      reaching into the zero margin, outside the nonzero mask).
  SOURCE/ for SOURCE in lowres, handmade (the previous stage's segmentation given as
  `folder_with_segs_from_prev_stage`):
    SOURCE/preprocess.npy     DefaultPreprocessor.run_case(images, seg_file) then convert_labelmap_to_one_hot over
                              foreground_labels stacked on the data (what the data iterators feed the network);
    SOURCE/preprocess.json    its properties;
    SOURCE/logits.npy         predict_logits_from_preprocessed_data with fp32 accumulators;
    SOURCE/casc_a.nii.gz      predict_from_files(folder_with_segs_from_prev_stage=...) as users run it;
    SOURCE/meta.json          fp16_vs_fp32_logits_max_abs and the rest.

Region-based nnunetv2 part (fixtures/cascade/v2_regions/, step v2r): the same layout for Dataset906_RegionCascade,
  whose dataset.json gives regions (`whole` = [1, 2], `core` = 2, regions_class_order [1, 2]): 2 sigmoid outputs.

Run: /work/venv/bin/python scripts/goldens/cascade_make.py [v2] [v2r] [v1]   (from the repository root)
Versions: Python 3.11, torch 2.15.0 (CPU), nnunetv2 2.8.1, dynamic-network-architectures 0.4.4, nnunet 1.7.1,
batchgenerators 0.25.5, SimpleITK, numpy.
"""
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v2_make  # noqa: E402

OUT = "fixtures/cascade"
torch.set_num_threads(1)

V2 = f"{OUT}/v2"
DS = "Dataset904_Cascade"
DATASET = {
    "channel_names": {"0": "MR"},
    "labels": {"background": 0, "organ": 1, "lesion": 2},
    "numTraining": 10,
    "file_ending": ".nii.gz",
}
# (case, shape zyx, spacing zyx, origin xyz, direction)
CASE = ("casc_a", (12, 30, 26), (4.0, 0.9, 1.05), (-20.5, 14.0, 60.0), (1, 0, 0, 0, -1, 0, 0, 0, -1))


def plans_cascade():
    arch = v2_make.arch("PlainConvUNet", 3, [4, 8, 12], [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                        [[1, 1, 1], [1, 2, 2], [2, 2, 2]], [2, 2, 2], [2, 2])
    fullres = v2_make.config("nnUNetPlans_3d_fullres", [8, 16, 16], [2.5, 1.0, 0.8], ["ZScoreNormalization"],
                             [True], arch)
    lowres = copy.deepcopy(fullres)
    lowres["data_identifier"] = "nnUNetPlans_3d_lowres"
    lowres["spacing"] = [4.5, 1.7, 1.5]
    lowres["next_stage"] = "3d_cascade_fullres"
    return {
        "dataset_name": DS,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [4.0, 1.05, 0.9],
        "original_median_shape_after_transp": [12, 26, 30],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 2, 1],
        "transpose_backward": [0, 2, 1],
        "configurations": {
            "3d_lowres": lowres,
            "3d_fullres": fullres,
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 3.0, "mean": 0.5, "median": 0.4, "min": -1.0, "percentile_00_5": -0.9,
                  "percentile_99_5": 2.5, "std": 0.7}},
    }


# configuration, mirroring axes, seed
V2_MODELS = [("3d_lowres", (1, 2), 41), ("3d_cascade_fullres", (0, 1, 2), 42)]


def v2_folder(cfg):
    return f"{V2}/models/{DS}/nnUNetTrainer__nnUNetPlans__{cfg}"


def v2_models():
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    if os.path.isdir(f"{V2}/models"):
        shutil.rmtree(f"{V2}/models")
    plans = plans_cascade()
    pm = PlansManager(plans)
    for cfg, axes, seed in V2_MODELS:
        folder = v2_folder(cfg)
        os.makedirs(f"{folder}/fold_0")
        json.dump(plans, open(f"{folder}/plans.json", "w"), indent=4, sort_keys=False)
        json.dump(DATASET, open(f"{folder}/dataset.json", "w"), indent=4, sort_keys=False)
        cm = pm.get_configuration(cfg)
        in_ch = determine_num_input_channels(pm, cm, DATASET)
        gen = torch.Generator().manual_seed(1000 * seed)
        torch.manual_seed(1000 * seed)
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                     cm.network_arch_init_kwargs_req_import, in_ch,
                                     v2_make.num_outputs(DATASET), allow_init=True,
                                     deep_supervision=True)
        v2_make.randomise(net, gen)
        ckpt = v2_make.make_checkpoint(net, plans, cfg, 0, DATASET, axes, gen, cm.patch_size, in_ch)
        torch.save(ckpt, f"{folder}/fold_0/checkpoint_final.pth")
        print("model", cfg, in_ch, "input channels")


def v2_case_files():
    return [f"{V2}/cases/{CASE[0]}_0000.nii.gz"]


def write_image(a, path, spacing, origin, direction):
    import SimpleITK as sitk
    im = sitk.GetImageFromArray(a)
    im.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    im.SetOrigin(tuple(float(o) for o in origin))
    im.SetDirection(tuple(float(v) for v in direction))
    sitk.WriteImage(im, path)


def handmade_labels(shape):
    """The phantom's blobs as labels, the organ pushed out through the body into the zero margin."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    organ = ((z - 0.1) / 0.5) ** 2 + ((y + 0.2) / 0.4) ** 2 + ((x - 0.1) / 0.35) ** 2 < 1
    out_of_body = ((z - 0.1) / 0.3) ** 2 + ((y + 0.85) / 0.3) ** 2 + ((x - 0.1) / 0.3) ** 2 < 1
    lesion = ((z + 0.1) / 0.3) ** 2 + ((y - 0.25) / 0.25) ** 2 + ((x + 0.2) / 0.2) ** 2 < 1
    seg = np.zeros(shape, np.uint8)
    seg[organ | out_of_body] = 1
    seg[lesion] = 2
    return seg


def v2_cases():
    d = f"{V2}/cases"
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    case, shape, spacing, origin, direction = CASE
    img = v2_make.phantom(shape, 904, 1, ct=False)[0]
    write_image(img, f"{d}/{case}_0000.nii.gz", spacing, origin, direction)
    h = f"{V2}/prev/handmade"
    os.makedirs(h, exist_ok=True)
    write_image(handmade_labels(shape), f"{h}/{case}.nii.gz", spacing, origin, direction)


def predictor(cfg):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                           perform_everything_on_device=False, device=torch.device("cpu"),
                           verbose=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(v2_folder(cfg), use_folds=(0,),
                                              checkpoint_name="checkpoint_final.pth")
    return pred


def logits_both(pred, x):
    """The logits with fp16 accumulators (as nnunetv2 runs) and with fp32 ones; returns (fp32, max diff)."""
    l16 = pred.predict_logits_from_preprocessed_data(x).float().numpy()
    half = torch.half
    try:
        torch.half = torch.float32
        l32 = pred.predict_logits_from_preprocessed_data(x).float().numpy()
    finally:
        torch.half = half
    return l32.astype(np.float32), float(np.abs(l16 - l32).max())


def clean(folder):
    for extra in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
        p = f"{folder}/{extra}"
        if os.path.exists(p):
            os.remove(p)


def v2_predict():
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot
    case = CASE[0]
    files = v2_case_files()
    # the previous stage, as users run it
    low = predictor("3d_lowres")
    d = f"{V2}/lowres"
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    data, _, _ = DefaultPreprocessor(verbose=False).run_case(files, None, low.plans_manager,
                                                             low.configuration_manager, low.dataset_json)
    l32, diff = logits_both(low, torch.from_numpy(data))
    np.save(f"{d}/{case}_logits.npy", l32)
    low.predict_from_files([files], [f"{d}/{case}"], save_probabilities=False, overwrite=True,
                           num_processes_preprocessing=1, num_processes_segmentation_export=1)
    clean(d)
    seg = __import__("SimpleITK").GetArrayFromImage(__import__("SimpleITK").ReadImage(f"{d}/{case}.nii.gz"))
    json.dump({"case": case, "configuration": "3d_lowres", "model": v2_folder("3d_lowres")[len(V2) + 1:],
               "folds": [0], "logits_shape": list(l32.shape), "fp16_vs_fp32_logits_max_abs": diff,
               "labels_present": sorted(int(v) for v in np.unique(seg))},
              open(f"{d}/meta.json", "w"), indent=1)
    print("lowres", l32.shape, "fp16 vs fp32", diff, "labels", np.unique(seg))
    # the cascade stage with each previous-stage source
    casc = predictor("3d_cascade_fullres")
    fg = casc.label_manager.foreground_labels
    for source, prev_dir in (("lowres", f"{V2}/lowres"), ("handmade", f"{V2}/prev/handmade")):
        o = f"{V2}/{source}_cascade"
        if os.path.isdir(o):
            shutil.rmtree(o)
        os.makedirs(o)
        seg_file = f"{prev_dir}/{case}.nii.gz"
        data, seg, props = DefaultPreprocessor(verbose=False).run_case(
            files, seg_file, casc.plans_manager, casc.configuration_manager, casc.dataset_json)
        onehot = convert_labelmap_to_one_hot(seg[0], fg, data.dtype)
        x = np.vstack((data, onehot)).astype(np.float32)
        np.save(f"{o}/preprocess.npy", x)
        keep = {k: props[k] for k in ("spacing", "shape_before_cropping", "bbox_used_for_cropping",
                                      "shape_after_cropping_and_before_resampling")}
        keep["shape"] = list(x.shape)
        json.dump(v2_make.jsonable(keep), open(f"{o}/preprocess.json", "w"), indent=1)
        l32, diff = logits_both(casc, torch.from_numpy(x))
        np.save(f"{o}/logits.npy", l32)
        casc.predict_from_files([files], [f"{o}/{case}"], save_probabilities=False, overwrite=True,
                                num_processes_preprocessing=1, num_processes_segmentation_export=1,
                                folder_with_segs_from_prev_stage=prev_dir)
        clean(o)
        json.dump({"case": case, "configuration": "3d_cascade_fullres",
                   "model": v2_folder("3d_cascade_fullres")[len(V2) + 1:], "folds": [0],
                   "prev_stage": prev_dir[len(V2) + 1:], "logits_shape": list(l32.shape),
                   "fp16_vs_fp32_logits_max_abs": diff,
                   "mirror_axes": v2_make.jsonable(casc.allowed_mirroring_axes),
                   "onehot_voxels_per_label": [int(c.sum()) for c in onehot]},
                  open(f"{o}/meta.json", "w"), indent=1)
        print("cascade", source, x.shape, "fp16 vs fp32", diff, "one-hot voxels",
              [int(c.sum()) for c in onehot])


# ---------------------------------------------------------------------------------------------------------
# nnU-Net v1 (1.7.1)
# ---------------------------------------------------------------------------------------------------------

V1 = f"{OUT}/v1"
V1_TASK = "Task905_Cascade"
# (case, shape zyx, spacing zyx, origin xyz, direction)
V1_CASE = ("cascv1_a", (12, 30, 26), (3.0, 1.0, 0.9), (30.0, -12.5, 7.25), (-1, 0, 0, 0, 1, 0, 0, 0, -1))


def v1_plans():
    from collections import OrderedDict
    f32 = np.float32
    props = OrderedDict([(0, OrderedDict([
        ("median", f32(60.0)), ("mean", f32(70.0)), ("sd", f32(40.0)), ("mn", f32(-50.0)),
        ("mx", f32(250.0)), ("percentile_99_5", f32(200.0)), ("percentile_00_5", f32(-20.0)),
        ("local_props", OrderedDict())]))])

    def stage(spacing):
        return {
            "batch_size": 2, "num_pool_per_axis": [1, 2, 2], "patch_size": np.array([8, 16, 16]),
            "median_patient_size_in_voxels": np.array([12, 26, 30]), "current_spacing": np.array(spacing),
            "original_spacing": np.array([3.0, 0.9, 1.0]), "do_dummy_2D_data_aug": False,
            "pool_op_kernel_sizes": [[1, 2, 2], [2, 2, 2]],
            "conv_kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
        }
    return {
        "num_stages": 2, "num_modalities": 1, "modalities": {0: "CT"},
        "normalization_schemes": OrderedDict([(0, "CT")]),
        "dataset_properties": {"modalities": {0: "CT"}, "intensityproperties": props, "all_classes": [1, 2]},
        "num_classes": 2, "all_classes": [1, 2], "base_num_features": 4,
        "use_mask_for_norm": OrderedDict([(0, False)]),
        "keep_only_largest_region": None, "min_region_size_per_class": None, "min_size_per_class": None,
        # the network sees (z, x, y) of the numpy (z, y, x) image
        "transpose_forward": [0, 2, 1], "transpose_backward": [0, 2, 1],
        "data_identifier": "nnUNetData_plans_v2.1",
        "plans_per_stage": {0: stage([4.5, 1.6, 1.8]), 1: stage([2.0, 0.9, 1.0])},
        "preprocessor_name": "GenericPreprocessor", "conv_per_stage": 2,
    }


# folder (configuration/task/trainer__plans), trainer, stage, input channels, seed
V1_MODELS = [
    (f"3d_lowres/{V1_TASK}/nnUNetTrainerV2__nnUNetPlansv2.1", "nnUNetTrainerV2", 0, 1, 51),
    (f"3d_cascade_fullres/{V1_TASK}/nnUNetTrainerV2CascadeFullRes__nnUNetPlansv2.1",
     "nnUNetTrainerV2CascadeFullRes", 1, 3, 52),
]


def v1_net(plans, stage, in_ch):
    from nnunet.network_architecture.generic_UNet import Generic_UNet
    from nnunet.network_architecture.initialization import InitWeights_He
    st = plans["plans_per_stage"][stage]
    return Generic_UNet(in_ch, plans["base_num_features"], plans["num_classes"] + 1,
                        len(st["pool_op_kernel_sizes"]), plans["conv_per_stage"], 2, torch.nn.Conv3d,
                        torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, torch.nn.Dropout3d,
                        {"p": 0, "inplace": True}, torch.nn.LeakyReLU, {"negative_slope": 1e-2, "inplace": True},
                        True, False, lambda x: x, InitWeights_He(1e-2), st["pool_op_kernel_sizes"],
                        st["conv_kernel_sizes"], False, True, True)


def v1_models():
    import pickle
    from collections import OrderedDict
    if os.path.isdir(f"{V1}/models"):
        shutil.rmtree(f"{V1}/models")
    plans = v1_plans()
    nets = {}
    for folder, trainer, stage, in_ch, seed in V1_MODELS:
        d = f"{V1}/models/{folder}"
        os.makedirs(f"{d}/fold_0")
        torch.manual_seed(seed)
        net = v1_net(plans, stage, in_ch)
        g = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for _, m in net.named_modules():
                if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                if isinstance(m, torch.nn.InstanceNorm3d):
                    m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        with open(f"{d}/plans.pkl", "wb") as f:
            pickle.dump(plans, f)
        sd = OrderedDict((k, v.detach().clone()) for k, v in net.state_dict().items())
        torch.save({"epoch": 1000, "state_dict": sd, "optimizer_state_dict": None,
                    "lr_scheduler_state_dict": None, "plot_stuff": ([0.5], [0.45], [], [0.8]),
                    "best_stuff": (999, 0.4, 0.82, 0.82)}, f"{d}/fold_0/model_final_checkpoint.model")
        module = "nnUNetTrainerV2" if stage == 0 else "nnUNetTrainerV2_CascadeFullRes"
        init = ("plans.pkl", 0, "out", "data", True, stage, True, True)
        init = init + (("nnUNetTrainerV2", True) if trainer.startswith("nnUNetTrainerV2Cascade") else (True,))
        info = {"init": init, "name": trainer,
                "class": f"<class 'nnunet.training.network_training.{module}.{trainer}'>", "plans": plans}
        with open(f"{d}/fold_0/model_final_checkpoint.model.pkl", "wb") as f:
            pickle.dump(info, f)
        net.eval()
        net.do_ds = False
        from nnunet.utilities.nd_softmax import softmax_helper
        net.inference_apply_nonlin = softmax_helper
        nets[stage] = net
        print("v1 model", folder, in_ch, "input channels")
    return plans, nets


def v1_predict(plans, nets):
    """nnU-Net 1.7.1's predict_cases, step by step on the CPU (its trainer restore needs CUDA): the
    trainer's preprocess_patient (GenericPreprocessor with the stage's current_spacing), for the cascade
    stage preprocess_save_to_queue itself (with a list for a queue) so that the previous stage's
    segmentation is stacked exactly as nnU-Net does; predict_3D (8 mirrors, step 0.5, Gaussian); then
    transpose_backward and save_segmentation_nifti_from_softmax(order 1)."""
    for _name, _t in (("int", int), ("float", float), ("bool", bool), ("object", object)):
        if not hasattr(np, _name):
            setattr(np, _name, _t)
    from nnunet.inference.predict import preprocess_save_to_queue
    from nnunet.inference.segmentation_export import save_segmentation_nifti_from_softmax
    from nnunet.preprocessing.preprocessing import GenericPreprocessor
    case, shape, spacing, origin, direction = V1_CASE
    for d in ("cases", "lowres", "prev", "lowres_cascade", "handmade_cascade"):
        if os.path.isdir(f"{V1}/{d}"):
            shutil.rmtree(f"{V1}/{d}")
        os.makedirs(f"{V1}/{d}")
    ct = v2_make.phantom(shape, 905, 1, ct=True)[0]
    image = f"{V1}/cases/{case}_0000.nii.gz"
    write_image(ct, image, spacing, origin, direction)
    write_image(handmade_labels(shape), f"{V1}/prev/{case}.nii.gz", spacing, origin, direction)

    def preprocess(stage):
        pp = GenericPreprocessor(plans["normalization_schemes"], plans["use_mask_for_norm"],
                                 plans["transpose_forward"], plans["dataset_properties"]["intensityproperties"])
        return lambda files: pp.preprocess_test_case(files, plans["plans_per_stage"][stage]["current_spacing"])

    def predict(stage, d):
        with torch.no_grad():
            _, softmax = nets[stage].predict_3D(
                d, do_mirroring=True, mirror_axes=(0, 1, 2), use_sliding_window=True, step_size=0.5,
                patch_size=tuple(int(p) for p in plans["plans_per_stage"][stage]["patch_size"]),
                use_gaussian=True, all_in_gpu=False, mixed_precision=False, verbose=False)
        return softmax.astype(np.float32)

    def export(softmax, out, dct):
        tb = plans["transpose_backward"]
        save_segmentation_nifti_from_softmax(softmax.transpose([0] + [i + 1 for i in tb]), out, dct, 1, None,
                                             None, None, None, None, None, 0)

    d, _, dct = preprocess(0)([image])
    softmax = predict(0, d)
    np.save(f"{V1}/lowres/{case}_probabilities_pre.npy", softmax)
    export(softmax, f"{V1}/lowres/{case}.nii.gz", dct)
    print("v1 lowres", d.shape, "labels", np.unique(softmax.argmax(0)))

    class ListQueue(list):
        def put(self, item):
            self.append(item)

    classes = list(range(1, plans["num_classes"] + 1))
    for source, prev in (("lowres", f"{V1}/lowres/{case}.nii.gz"), ("handmade", f"{V1}/prev/{case}.nii.gz")):
        q = ListQueue()
        preprocess_save_to_queue(preprocess(1), q, [[image]], [f"{V1}/{source}_cascade/{case}.nii.gz"], [prev],
                                 classes, plans["transpose_forward"])
        (_, (d, dct)), end = q
        assert end == "end"
        o = f"{V1}/{source}_cascade"
        np.save(f"{o}/preprocess.npy", d.astype(np.float32))
        softmax = predict(1, d)
        np.save(f"{o}/{case}_probabilities_pre.npy", softmax)
        export(softmax, f"{o}/{case}.nii.gz", dct)
        json.dump({"case": case, "prev": prev[len(V1) + 1:], "shape": list(d.shape),
                   "crop_bbox": v2_make.jsonable(dct["crop_bbox"]),
                   "onehot_voxels_per_class": [int(c.sum()) for c in d[1:]]},
                  open(f"{o}/meta.json", "w"), indent=1)
        print("v1 cascade", source, d.shape, "one-hot voxels", [int(c.sum()) for c in d[1:]])


# The region-based variant (step v2r, fixtures/cascade/v2_regions/): the same plans, phantom and previous-stage
# sources, with dataset.json's labels as regions (`whole` = [1, 2], `core` = 2, regions_class_order [1, 2]):
# the networks have 2 sigmoid outputs, the cascade stage 1 + 2 input channels (one-hot over the foreground
# labels 1, 2 that the lowres stage's regions are written as).
DATASET_REGIONS = {
    "channel_names": {"0": "MR"},
    "labels": {"background": 0, "whole": [1, 2], "core": 2},
    "regions_class_order": [1, 2],
    "numTraining": 10,
    "file_ending": ".nii.gz",
}


def v2_regions():
    global V2, DS, DATASET
    saved = (V2, DS, DATASET)
    V2, DS, DATASET = f"{OUT}/v2_regions", "Dataset906_RegionCascade", DATASET_REGIONS
    try:
        v2_models()
        v2_cases()
        v2_predict()
    finally:
        V2, DS, DATASET = saved


if __name__ == "__main__":
    steps = sys.argv[1:] or ["v2", "v2r", "v1"]
    if "v2" in steps:
        v2_models()
        v2_cases()
        v2_predict()
    if "v2r" in steps:
        v2_regions()
    if "v1" in steps:
        v1_predict(*v1_models())

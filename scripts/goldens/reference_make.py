"""Small nnU-Net v1 model folders with random weights and PyTorch's outputs: the reference networks of the
tests, made offline so that every test runs on a fresh clone. Never needed at build, test or run time.

For each of two networks (same shapes as the team's `../shared/reference`, other random weights):
  unet-small    nnU-Net 1.7.1's Generic_UNet (nnunet/network_architecture/generic_UNet.py, the pip package)
  unetpp-small  Generic_UNetPlusPlus (MrGiovanni/UNetPlusPlus pytorch/nnunet/network_architecture/
                generic_UNetPlusPlus.py at e145ba6, loaded from --unetpp-src at run time, never committed)
both built with the arguments nnUNetTrainerV2 / nnUNetPlusPlusTrainerV2 `initialize_network` pass (Conv3d,
InstanceNorm3d eps 1e-5 affine, Dropout3d p 0, LeakyReLU 0.01, deep supervision on, convolutional pooling and
upsampling, InitWeights_He(1e-2)) but max_num_features 32 and base_num_features 4, then conv biases and
norm affine parameters drawn from a seeded normal (He init leaves them 0 / 1, which would hide mistakes in
their handling). Eval mode. Written into fixtures/reference/NAME/:

  plans.pkl                                   a plans dict laid out as nnU-Net v1 writes it (OrderedDicts,
                                              numpy arrays, numpy float32 intensity statistics)
  fold_0/model_final_checkpoint.model         torch.save (zip) of {epoch, state_dict, optimizer_state_dict,
                                              lr_scheduler_state_dict, plot_stuff, best_stuff} as the trainer
  fold_0/model_final_checkpoint.model.pkl     {init, name, class, plans} as the trainer
  model_ds.onnx                               torch.onnx.export (TorchScript exporter, opset 11, deep
                                              supervision on): input `image`, outputs `class`, `head_1`, ..
  input.npy, input.bin                        seeded standard-normal input (1, 1, 32, 32, 32), f32
  output_K.npy, output_class.bin              PyTorch's outputs for it (K = 0 the final head; raw f32 LE)
  meta.json                                   configuration and shapes

Versions: Python 3.11.7, torch 2.15.0 (CPU), numpy 2.4.6, onnx 1.23.2, nnunet 1.7.1 (pip --no-deps), with
numpy-2 aliases shimmed below.

Usage:
  git -C UNETPP_MIRROR show e145ba6:pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py > /tmp/gunetpp.py
  # or: curl -L https://raw.githubusercontent.com/MrGiovanni/UNetPlusPlus/e145ba63862982bf1099cf2ec11d5466b434ae0b/pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py -o /tmp/gunetpp.py
  python scripts/goldens/reference_make.py --unetpp-src /tmp/gunetpp.py
Then remake the goldens that depend on these weights:
  python scripts/goldens/artifacts_make.py --reference-only
  python scripts/goldens/predict_make.py --unetpp-src /tmp/gunetpp.py --reference fixtures/reference/unetpp-small
"""
import argparse
import importlib.util
import json
import os
import pickle
import shutil
from collections import OrderedDict

import numpy as np

for _name, _t in (("int", int), ("float", float), ("bool", bool), ("object", object)):
    if not hasattr(np, _name):
        setattr(np, _name, _t)

import torch  # noqa: E402
from nnunet.network_architecture.generic_UNet import Generic_UNet  # noqa: E402
from nnunet.network_architecture.initialization import InitWeights_He  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "fixtures", "reference")

PATCH = [32, 32, 32]
SPACING = [1.0, 0.7676, 0.7676]
MEDIAN = [120, 128, 128]
# CT intensity statistics: mean, sd, percentile_00_5, percentile_99_5
CT = (99.4, 39.36, -17.0, 201.0)

NETS = {
    # name: family, trainer, pool kernels, seed
    "unet-small": ("unet", "nnUNetTrainerV2", [[2, 2, 2]] * 3, 21),
    # Generic_UNetPlusPlus hard-codes five resolution levels in its forward pass: stride-1 levels after the
    # third, as nnU-Net does for axes that stop being pooled.
    "unetpp-small": ("unetpp", "nnUNetPlusPlusTrainerV2", [[2, 2, 2]] * 3 + [[1, 1, 1]] * 2, 22),
}


def plans_for(pools):
    f32 = np.float32
    props = OrderedDict([(0, OrderedDict([
        ("median", f32(102.9)), ("mean", f32(CT[0])), ("sd", f32(CT[1])), ("mn", f32(-1024.0)),
        ("mx", f32(3071.0)), ("percentile_99_5", f32(CT[3])), ("percentile_00_5", f32(CT[2])),
        ("local_props", OrderedDict())]))])
    stage = {
        "batch_size": 2,
        "num_pool_per_axis": [3, 3, 3],
        "patch_size": np.array(PATCH),
        "median_patient_size_in_voxels": np.array(MEDIAN),
        "current_spacing": np.array(SPACING),
        "original_spacing": np.array(SPACING),
        "do_dummy_2D_data_aug": False,
        "pool_op_kernel_sizes": [list(p) for p in pools],
        "conv_kernel_sizes": [[3, 3, 3] for _ in range(len(pools) + 1)],
    }
    return {
        "num_stages": 1, "num_modalities": 1, "modalities": {0: "CT"},
        "normalization_schemes": OrderedDict([(0, "CT")]),
        "dataset_properties": {"modalities": {0: "CT"}, "intensityproperties": props, "all_classes": [1, 2]},
        "num_classes": 2, "all_classes": [1, 2], "base_num_features": 4,
        "use_mask_for_norm": OrderedDict([(0, False)]),
        "keep_only_largest_region": None, "min_region_size_per_class": None, "min_size_per_class": None,
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "data_identifier": "nnUNetData_plans_v2.1", "plans_per_stage": {0: stage},
        "preprocessor_name": "GenericPreprocessor", "conv_per_stage": 2,
    }


def build(family, plans, unetpp_cls):
    stage = plans["plans_per_stage"][0]
    args = (1, plans["base_num_features"], plans["num_classes"] + 1, len(stage["pool_op_kernel_sizes"]),
            plans["conv_per_stage"], 2, torch.nn.Conv3d, torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True},
            torch.nn.Dropout3d, {"p": 0, "inplace": True}, torch.nn.LeakyReLU,
            {"negative_slope": 1e-2, "inplace": True}, True, False, lambda x: x, InitWeights_He(1e-2),
            stage["pool_op_kernel_sizes"], stage["conv_kernel_sizes"], False, True, True)
    cls = Generic_UNet if family == "unet" else unetpp_cls
    return cls(*args, max_num_features=32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unetpp-src", required=True,
                    help="generic_UNetPlusPlus.py of MrGiovanni/UNetPlusPlus at e145ba6 (see the docstring)")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("gunetpp", a.unetpp_src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, (family, trainer, pools, seed) in NETS.items():
        d = os.path.join(a.out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "fold_0"))
        plans = plans_for(pools)
        torch.manual_seed(seed)
        net = build(family, plans, mod.Generic_UNetPlusPlus)
        g = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for mname, m in net.named_modules():
                if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                if isinstance(m, torch.nn.InstanceNorm3d):
                    m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        net.eval()
        net.do_ds = True
        with open(os.path.join(d, "plans.pkl"), "wb") as f:
            pickle.dump(plans, f)
        sd = OrderedDict((k, v.detach().clone()) for k, v in net.state_dict().items())
        ckpt = {"epoch": 1000, "state_dict": sd, "optimizer_state_dict": None, "lr_scheduler_state_dict": None,
                "plot_stuff": ([0.5, 0.4], [0.45, 0.41], [], [0.8, 0.82]), "best_stuff": (999, 0.4, 0.82, 0.82)}
        torch.save(ckpt, os.path.join(d, "fold_0", "model_final_checkpoint.model"))
        module = "nnUNetTrainerV2" if family == "unet" else "nnUNetPlusPlusTrainerV2"
        info = {"init": ("plans.pkl", 0, "out", "data", True, None, True, True, True), "name": trainer,
                "class": f"<class 'nnunet.training.network_training.{module}.{trainer}'>", "plans": plans}
        with open(os.path.join(d, "fold_0", "model_final_checkpoint.model.pkl"), "wb") as f:
            pickle.dump(info, f)

        rng = np.random.default_rng(seed)
        x = rng.standard_normal((1, 1, *PATCH)).astype(np.float32)
        np.save(os.path.join(d, "input.npy"), x)
        x.astype("<f4").tofile(os.path.join(d, "input.bin"))
        with torch.no_grad():
            outs = net(torch.from_numpy(x))
        outs = [o.numpy().astype(np.float32) for o in outs]
        for k, o in enumerate(outs):
            np.save(os.path.join(d, f"output_{k}.npy"), o)
        outs[0].astype("<f4").tofile(os.path.join(d, "output_class.bin"))
        names = ["class"] + [f"head_{k}" for k in range(1, len(outs))]
        torch.onnx.export(net, torch.from_numpy(x), os.path.join(d, "model_ds.onnx"), dynamo=False,
                          opset_version=11, input_names=["image"], output_names=names, do_constant_folding=False,
                          dynamic_axes={n: {0: "batch"} for n in ["image"] + names})
        meta = {"family": family, "base": 4, "maxf": 32, "classes": 3, "pools": pools,
                "convs": plans["plans_per_stage"][0]["conv_kernel_sizes"], "patch": PATCH, "spacing": SPACING,
                "median": MEDIAN, "ct": list(CT), "params": sum(p.numel() for p in net.parameters()),
                "seed": seed, "torch": torch.__version__, "outputs": [list(o.shape) for o in outs],
                "state_dict_keys": len(sd)}
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        size = sum(os.path.getsize(os.path.join(r, n)) for r, _, fs in os.walk(d) for n in fs)
        print(f"{name}: {meta['params']} parameters, {len(outs)} outputs, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

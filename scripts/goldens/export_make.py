"""Goldens for nnu-onnx-export: the modules' state_dict layouts and PyTorch outputs of small networks with
non-default plans (anisotropic pool and conv kernels, 2D, conv_per_stage 1 and 3).

The networks are built exactly as the V2 trainers build them (`nnUNetTrainerV2.initialize_network` for nnU-Net
1.7.1's `Generic_UNet`, `nnUNetPlusPlusTrainerV2.initialize_network` for MrGiovanni/UNetPlusPlus e145ba6's
`Generic_UNetPlusPlus`): Conv, InstanceNorm(eps 1e-5, affine), Dropout p=0, LeakyReLU(0.01), deep supervision on,
dropout_in_localization False, final_nonlin identity, InitWeights_He(1e-2), convolutional pooling and
upsampling; small ones also pass max_num_features. UNetPlusPlus is not installed: its module file is read from
the git mirror (`git show HEAD:pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py`) into a temporary
directory and imported from there (nothing of it lands in the repository).

Outputs (fixtures/export/):
  layouts.json      per configuration: the plans values, constructor arguments, parameter count and the
                    state_dict as [key, shape] in state_dict order. Includes the full Task003 3d_fullres
                    networks (patch 128^3, 5 x [2,2,2], base 32, max 320 (the trainers' default), 3 classes).
  <case>/model.onnx torch.onnx.export (legacy exporter, opset 11) of the small network with random He weights,
                    seeded random conv biases and norm affine parameters, eval mode, deep supervision on:
                    input `image`, outputs `class`, `head_1`, ... (the source of the weights in the tests:
                    its initializers are the state_dict, names unchanged)
  <case>/input.npy  seeded standard-normal input (1, C, patch), float32
  <case>/output_K.npy  PyTorch's K-th deep-supervision output for that input (K = 0 the final head), float32
  <case>/meta.json  the configuration

Run: /work/venv/bin/python scripts/goldens/export_make.py   (from the repository root)
Pinned versions used: Python 3.11, torch 2.15.0 (CPU), numpy 2.4.6, onnx 1.23.2, nnunet 1.7.1,
UNetPlusPlus e145ba6 (the mirror's HEAD).
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

for _alias, _type in (("int", int), ("float", float)):  # nnunet 1.7.1 under numpy 2
    if not hasattr(np, _alias):
        setattr(np, _alias, _type)

import torch
from torch import nn

from nnunet.network_architecture.generic_UNet import Generic_UNet
from nnunet.network_architecture.initialization import InitWeights_He

MIRROR = "/work/.mirror/MrGiovanni+UNetPlusPlus/repo"
OUT = "fixtures/export"


def load_unetpp():
    src = subprocess.run(
        ["git", "-C", MIRROR, "show", "HEAD:pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py"],
        check=True, capture_output=True, text=True).stdout
    d = tempfile.mkdtemp()
    p = os.path.join(d, "generic_UNetPlusPlus_e145ba6.py")
    with open(p, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("generic_UNetPlusPlus_e145ba6", p)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Generic_UNetPlusPlus


Generic_UNetPlusPlus = load_unetpp()


def build(cfg):
    three_d = len(cfg["patch"]) == 3
    conv_op, dropout_op, norm_op = ((nn.Conv3d, nn.Dropout3d, nn.InstanceNorm3d) if three_d
                                    else (nn.Conv2d, nn.Dropout2d, nn.InstanceNorm2d))
    cls = Generic_UNetPlusPlus if cfg["family"] == "unetpp" else Generic_UNet
    kwargs = {} if cfg["max"] is None else {"max_num_features": cfg["max"]}
    net = cls(cfg["in_channels"], cfg["base"], cfg["classes"], len(cfg["pools"]), cfg["conv_per_stage"], 2,
              conv_op, norm_op, {"eps": 1e-5, "affine": True}, dropout_op, {"p": 0, "inplace": True},
              nn.LeakyReLU, {"negative_slope": 1e-2, "inplace": True}, True, False, lambda x: x,
              InitWeights_He(1e-2), cfg["pools"], cfg["convs"], False, True, True, **kwargs)
    return net


def layout(cfg):
    net = build(cfg)
    sd = net.state_dict()
    return dict(cfg, params=int(sum(v.numel() for v in sd.values())),
                state_dict=[[k, list(v.shape)] for k, v in sd.items()])


LAYOUTS = [
    dict(name="task003_unetpp", family="unetpp", patch=[128, 128, 128], pools=[[2, 2, 2]] * 5,
         convs=[[3, 3, 3]] * 6, conv_per_stage=2, base=32, max=None, classes=3, in_channels=1),
    dict(name="task003_unet", family="unet", patch=[128, 128, 128], pools=[[2, 2, 2]] * 5,
         convs=[[3, 3, 3]] * 6, conv_per_stage=2, base=32, max=None, classes=3, in_channels=1),
]

# Small networks with PyTorch outputs; kernels chosen so that the decoder's conv_kernel_sizes[l + 1]
# indexing differs from the encoder's conv_kernel_sizes[l].
CASES = [
    dict(name="unet_aniso_3conv", family="unet", patch=[8, 16, 16], pools=[[1, 2, 2], [2, 2, 2], [2, 2, 2]],
         convs=[[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]], conv_per_stage=3, base=3, max=12, classes=2,
         in_channels=2, seed=21),
    dict(name="unetpp_aniso_1conv", family="unetpp", patch=[8, 32, 16],
         pools=[[1, 2, 2], [2, 2, 2], [2, 2, 1], [1, 2, 2], [1, 1, 1]],
         convs=[[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [1, 3, 3], [3, 3, 3]], conv_per_stage=1, base=2,
         max=8, classes=2, in_channels=1, seed=22),
    dict(name="unetpp_2d", family="unetpp", patch=[32, 64], pools=[[2, 2]] * 4 + [[1, 2]], convs=[[3, 3]] * 6,
         conv_per_stage=2, base=2, max=16, classes=3, in_channels=1, seed=23),
]


def randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "instnorm.weight" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)


def make_case(cfg):
    torch.manual_seed(cfg["seed"])
    net = build(cfg)
    randomise(net, cfg["seed"])
    net.eval()
    d = os.path.join(OUT, cfg["name"])
    os.makedirs(d, exist_ok=True)
    x = torch.from_numpy(np.random.default_rng(cfg["seed"]).standard_normal(
        (1, cfg["in_channels"], *cfg["patch"])).astype(np.float32))
    with torch.no_grad():
        outs = net(x)
    names = ["class"] + [f"head_{k}" for k in range(1, len(outs))]
    torch.onnx.export(net, x, os.path.join(d, "model.onnx"), opset_version=11, input_names=["image"],
                      output_names=names, dynamo=False)
    np.save(os.path.join(d, "input.npy"), x.numpy())
    for k, o in enumerate(outs):
        np.save(os.path.join(d, f"output_{k}.npy"), o.numpy().astype(np.float32))
    meta = dict(cfg, outputs=[list(o.shape) for o in outs],
                params=int(sum(v.numel() for v in net.state_dict().values())), torch=torch.__version__)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main():
    os.makedirs(OUT, exist_ok=True)
    layouts = [layout(c) for c in LAYOUTS + CASES]
    with open(os.path.join(OUT, "layouts.json"), "w") as f:
        json.dump(layouts, f, indent=0)
    for c in CASES:
        make_case(c)
    for l in layouts:
        print(l["name"], l["params"], len(l["state_dict"]))


if __name__ == "__main__":
    sys.exit(main())

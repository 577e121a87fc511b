"""Train the small demo UNet++ shipped in crates/nnu-demo/data/model (offline; never needed at run time).

What it does
  1. Reads phantom cases written by `nnu-phantom` (nnU-Net raw layout: imagesTr/NAME_0000.nii.gz,
     labelsTr/NAME.nii.gz). The phantoms are generated at the plan's target spacing, so training data needs
     no resampling; the demo cases themselves use another spacing so that the pipeline resamples.
  2. Computes nnU-Net v1's CT intensity properties over foreground voxels (mean, sd, percentile_00_5,
     percentile_99_5 of voxels with label > 0) and normalises as GenericPreprocessor does for 'CT'.
  3. Instantiates the real Generic_UNetPlusPlus (MrGiovanni/UNetPlusPlus, pytorch/nnunet/network_architecture/
     generic_UNetPlusPlus.py at commit e145ba6; this script imports it from --unetpp-src, it is not part of this
     repository) with the arguments nnUNetPlusPlusTrainerV2.initialize_network passes, but few features.
  4. Trains it on random patches (foreground oversampling, random mirroring, and with --augment nnU-Net-like
     intensity augmentation: Gaussian noise, Gaussian blur, multiplicative brightness, contrast) with
     cross-entropy + soft Dice (batch Dice over the foreground classes, as nnU-Net's DC_and_CE_loss) on
     every head of the UNet++ (all of its heads are at full resolution; weights 1, 1/2, 1/4, ... normalised,
     as nnU-Net's deep supervision), with Adam and nnU-Net's poly learning rate
     (lr * (1 - it / iterations)^0.9), on CPU with --threads torch threads, for --iterations steps.
  5. Writes an nnU-Net v1 model folder: plans.pkl, fold_0/model_final_checkpoint.model (torch.save dict like
     the trainer's) and fold_0/model_final_checkpoint.model.pkl (init, name, class, plans); also every
     --checkpoint-every iterations, so an interrupted run leaves its latest state as a usable model folder.
     With --val DIR it prints, at each checkpoint, the final head's Dice per class on those cases (whole
     volume in one forward pass: a training monitor, not the pipeline's sliding-window prediction).

Pinned versions (the venv described in crates/nnu-demo/data/README.md): torch 2.15.0 (CPU), numpy 2.4.6,
SimpleITK 2.5.7, scipy 1.17.1 (--augment), nnunet 1.7.1 (--no-deps; only its network_architecture helpers are
imported).

Usage (scripts/demo/make_demo.sh runs the whole recipe: phantoms, training, export, demo cases):
  git -C UNETPP_MIRROR show e145ba6:pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py > /tmp/gunetpp.py
  nnu-phantom --out /tmp/demo-train --anatomy full --cases 16 --shape 48,96,96 --spacing 2.5,2.0,2.0 --seed 100
  OMP_NUM_THREADS=1 python scripts/demo/train_demo.py --unetpp-src /tmp/gunetpp.py --data /tmp/demo-train \
      --out /tmp/demo-model --iterations 3000 --patch 32 --batch 4 --augment
"""
import argparse
import importlib.util
import os
import pickle
import sys
import time
from collections import OrderedDict

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F


def load_unetpp(path):
    spec = importlib.util.spec_from_file_location("generic_UNetPlusPlus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Generic_UNetPlusPlus


def build_network(cls, base, max_features, num_classes, pools, convs):
    from nnunet.network_architecture.initialization import InitWeights_He
    return cls(1, base, num_classes, len(pools), 2, 2, torch.nn.Conv3d, torch.nn.InstanceNorm3d,
               {'eps': 1e-5, 'affine': True}, torch.nn.Dropout3d, {'p': 0, 'inplace': True},
               torch.nn.LeakyReLU, {'negative_slope': 1e-2, 'inplace': True}, True, False, lambda x: x,
               InitWeights_He(1e-2), pools, convs, False, True, True, max_num_features=max_features)


def read_cases(data):
    cases = []
    names = sorted(f[:-len("_0000.nii.gz")] for f in os.listdir(os.path.join(data, "imagesTr"))
                   if f.endswith("_0000.nii.gz"))
    for n in names:
        img = sitk.ReadImage(os.path.join(data, "imagesTr", n + "_0000.nii.gz"))
        lab = sitk.ReadImage(os.path.join(data, "labelsTr", n + ".nii.gz"))
        cases.append((n, sitk.GetArrayFromImage(img).astype(np.float32),
                      sitk.GetArrayFromImage(lab).astype(np.int64), np.array(img.GetSpacing())[::-1]))
    return cases


def intensity_properties(cases):
    # nnU-Net v1 DatasetAnalyzer: voxels under the foreground mask, subsampled every 10th; we take all.
    fg = np.concatenate([img[lab > 0] for _, img, lab, _ in cases])
    return OrderedDict([
        ('median', np.float32(np.median(fg))), ('mean', np.float32(np.mean(fg))),
        ('sd', np.float32(np.std(fg))), ('mn', np.float32(np.min(fg))), ('mx', np.float32(np.max(fg))),
        ('percentile_99_5', np.float32(np.percentile(fg, 99.5))),
        ('percentile_00_5', np.float32(np.percentile(fg, 0.5))), ('local_props', OrderedDict())])


def ct_normalize(img, p):
    img = np.clip(img, p['percentile_00_5'], p['percentile_99_5'])
    return ((img - p['mean']) / p['sd']).astype(np.float32)


def random_patch(img, lab, patch, rng, force_fg, tumour_prob):
    shape = np.array(img.shape)
    pad = np.maximum(patch - shape, 0)
    if pad.any():
        img = np.pad(img, [(p // 2, p - p // 2) for p in pad], constant_values=img.min())
        lab = np.pad(lab, [(p // 2, p - p // 2) for p in pad])
        shape = np.array(img.shape)
    if force_fg and (lab > 0).any():
        cls = 2 if (lab == 2).any() and rng.random() < tumour_prob else 1
        idx = np.argwhere(lab == cls)
        c = idx[rng.integers(len(idx))]
        lo = np.clip(c - patch // 2, 0, shape - patch)
    else:
        lo = np.array([rng.integers(0, s - p + 1) for s, p in zip(shape, patch)])
    sl = tuple(slice(a, a + p) for a, p in zip(lo, patch))
    x, y = img[sl], lab[sl]
    for ax in range(3):
        if rng.random() < 0.5:
            x, y = np.flip(x, ax), np.flip(y, ax)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def augment(x, rng):
    """nnU-Net-like intensity augmentation of one normalised patch (probabilities as nnU-Net v1's
    default augmentation parameters, magnitudes a little smaller)."""
    from scipy.ndimage import gaussian_filter
    if rng.random() < 0.15:
        x = x + rng.normal(0, np.sqrt(rng.uniform(0, 0.1)), x.shape).astype(np.float32)
    if rng.random() < 0.2:
        x = gaussian_filter(x, rng.uniform(0.5, 1.0)).astype(np.float32)
    if rng.random() < 0.15:
        x = x * np.float32(rng.uniform(0.75, 1.25))
    if rng.random() < 0.15:
        m = x.mean()
        x = ((x - m) * np.float32(rng.uniform(0.75, 1.25)) + m).astype(np.float32)
    return x


def dc_ce(logits, y, num_classes):
    """nnU-Net's DC_and_CE_loss: cross-entropy + (1 - soft batch Dice over the foreground classes)."""
    ce = F.cross_entropy(logits, y)
    prob = torch.softmax(logits, 1)
    onehot = F.one_hot(y, num_classes).permute(0, 4, 1, 2, 3).float()
    inter = (prob * onehot).sum((0, 2, 3, 4))
    denom = prob.sum((0, 2, 3, 4)) + onehot.sum((0, 2, 3, 4))
    dice = ((2 * inter + 1e-5) / (denom + 1e-5))[1:].mean()
    return ce + (1 - dice), ce, dice


def dice_monitor(net, val, num_classes):
    """Dice per foreground class of the final head on whole volumes (cropped to a multiple of 8)."""
    net.eval()
    inter = np.zeros(num_classes)
    total = np.zeros(num_classes)
    with torch.no_grad():
        for img, lab in val:
            sl = tuple(slice(0, (n // 8) * 8) for n in img.shape)
            out = net(torch.from_numpy(np.ascontiguousarray(img[sl]))[None, None])
            logits = out[0] if isinstance(out, (tuple, list)) else out
            pred = logits.argmax(1)[0].numpy()
            ref = lab[sl]
            for c in range(1, num_classes):
                inter[c] += 2 * np.sum((pred == c) & (ref == c))
                total[c] += np.sum(pred == c) + np.sum(ref == c)
    net.train()
    return [inter[c] / max(total[c], 1) for c in range(1, num_classes)]


def write_model_folder(out, net, plans, iterations_done):
    os.makedirs(os.path.join(out, "fold_0"), exist_ok=True)
    with open(os.path.join(out, "plans.pkl"), "wb") as f:
        pickle.dump(plans, f)
    sd = OrderedDict((k, v.detach().clone()) for k, v in net.state_dict().items())
    # written under a temporary name and renamed, so a reader never sees half a checkpoint
    path = os.path.join(out, "fold_0", "model_final_checkpoint.model")
    torch.save({'epoch': iterations_done, 'state_dict': sd, 'optimizer_state_dict': None,
                'lr_scheduler_state_dict': None, 'plot_stuff': ([], [], [], []), 'best_stuff': None},
               path + ".tmp")
    os.replace(path + ".tmp", path)
    info = {'init': ('plans.pkl', 0, 'out', 'data', True, None, True, True, True),
            'name': 'nnUNetPlusPlusTrainerV2',
            'class': "<class 'nnunet.training.network_training.nnUNetPlusPlusTrainerV2.nnUNetPlusPlusTrainerV2'>",
            'plans': plans}
    with open(path + ".pkl", "wb") as f:
        pickle.dump(info, f)


def make_plans(a, props, patch, npool, pools, convs, cases, spacing, num_classes):
    plans = OrderedDict()
    plans['num_stages'] = 1
    plans['num_modalities'] = 1
    plans['modalities'] = {0: 'CT'}
    plans['normalization_schemes'] = OrderedDict([(0, 'CT')])
    plans['dataset_properties'] = {'all_classes': [1, 2], 'modalities': {0: 'CT'},
                                   'intensityproperties': OrderedDict([(0, props)])}
    plans['use_mask_for_norm'] = OrderedDict([(0, False)])
    plans['keep_only_largest_region'] = None
    plans['min_region_size_per_class'] = None
    plans['min_size_per_class'] = None
    plans['transpose_forward'] = [0, 1, 2]
    plans['transpose_backward'] = [0, 1, 2]
    plans['data_identifier'] = 'nnUNetData_plans_v2.1'
    plans['plans_per_stage'] = {0: {
        'batch_size': a.batch, 'num_pool_per_axis': [npool] * 3, 'patch_size': patch.astype(np.int64),
        'median_patient_size_in_voxels': np.array(cases[0][1].shape, dtype=np.int64),
        'current_spacing': spacing.astype(np.float64), 'original_spacing': spacing.astype(np.float64),
        'do_dummy_2D_data_aug': False, 'pool_op_kernel_sizes': pools, 'conv_kernel_sizes': convs}}
    plans['preprocessor_name'] = 'GenericPreprocessor'
    plans['conv_per_stage'] = 2
    plans['base_num_features'] = a.base
    plans['num_classes'] = num_classes - 1
    plans['all_classes'] = [1, 2]
    return plans


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unetpp-src", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--base", type=int, default=4)
    ap.add_argument("--max-features", type=int, default=32)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-3, help="initial learning rate of the poly schedule")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--time-budget", type=float,
                    help="seconds of wall time: the poly schedule runs over elapsed time instead of iterations "
                    "and training stops when it is spent (--iterations is then an upper bound); for a machine "
                    "whose free CPU share is unknown in advance")
    ap.add_argument("--augment", action="store_true", help="intensity augmentation (noise, blur, brightness, "
                    "contrast)")
    ap.add_argument("--tumour-prob", type=float, default=0.5,
                    help="probability that a foreground-forced patch is centred on tumour (when the case has one)")
    ap.add_argument("--val", help="phantoms (nnU-Net raw layout, at the plan's spacing) for a Dice monitor")
    ap.add_argument("--init-state", help="start from this saved state_dict (torch.save of a dict of tensors) or "
                    "checkpoint (model_final_checkpoint.model); with --iterations 0 the folder is written from "
                    "it unchanged")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)

    cases = read_cases(a.data)
    spacing = cases[0][3]
    props = intensity_properties(cases)
    data = [(ct_normalize(img, props), lab) for _, img, lab, _ in cases]

    npool = int(np.log2(a.patch)) - 2  # down to 4 voxels per axis
    pools = [[2, 2, 2]] * npool + [[1, 1, 1]] * (5 - npool)
    convs = [[3, 3, 3]] * 6
    num_classes = 3
    net = build_network(load_unetpp(a.unetpp_src), a.base, a.max_features, num_classes, pools, convs)
    if a.init_state:
        state = torch.load(a.init_state, map_location="cpu", weights_only=False)
        # a bare state_dict, or a checkpoint as this script and nnU-Net write it
        net.load_state_dict(state['state_dict'] if 'state_dict' in state else state)
    plans = make_plans(a, props, np.array([a.patch] * 3), npool, pools, convs, cases, spacing, num_classes)
    val = None
    if a.val:
        val = [(ct_normalize(img, props), lab) for _, img, lab, _ in read_cases(a.val)]
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    patch = np.array([a.patch] * 3)
    t0 = time.time()
    net.train()
    done = 0
    for it in range(a.iterations):
        if a.time_budget is not None and time.time() - t0 >= a.time_budget:
            break
        xs, ys = [], []
        for b in range(a.batch):
            img, lab = data[rng.integers(len(data))]
            x, y = random_patch(img, lab, patch, rng, force_fg=(b % 2 == 0) or rng.random() < 0.33,
                                tumour_prob=a.tumour_prob)
            if a.augment:
                x = augment(x, rng)
            xs.append(x[None]); ys.append(y)
        x = torch.from_numpy(np.stack(xs)); y = torch.from_numpy(np.stack(ys))
        out = net(x)
        heads = list(out) if isinstance(out, (tuple, list)) else [out]
        weights = np.array([1 / 2 ** i for i in range(len(heads))])
        weights = weights / weights.sum()
        loss = 0
        for w, h in zip(weights, heads):
            l, ce_h, dice_h = dc_ce(h, y, num_classes)
            loss = loss + float(w) * l
            if h is heads[0]:
                ce, dice = ce_h, dice_h
        opt.zero_grad(); loss.backward(); opt.step()
        done = it + 1
        progress = (it + 1) / a.iterations
        if a.time_budget is not None:
            progress = max(progress, (time.time() - t0) / a.time_budget)
        for g in opt.param_groups:
            g['lr'] = a.lr * max(1 - progress, 0) ** 0.9
        if it % 25 == 0 or it == a.iterations - 1:
            print(f"it {it:4d} loss {loss.item():.4f} ce {ce.item():.4f} dice {dice.item():.4f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s", flush=True)
        if (it + 1) % a.checkpoint_every == 0 and it + 1 < a.iterations:
            write_model_folder(a.out, net, plans, it + 1)
            msg = f"checkpoint it {it + 1} {time.time() - t0:.0f}s"
            if val:
                msg += " val dice liver {:.4f} tumour {:.4f}".format(*dice_monitor(net, val, num_classes))
            print(msg, flush=True)
    net.eval()
    write_model_folder(a.out, net, plans, done)
    msg = f"wrote {a.out} after {done} iterations, params {sum(p.numel() for p in net.parameters())} {time.time() - t0:.0f}s"
    if val:
        msg += " val dice liver {:.4f} tumour {:.4f}".format(*dice_monitor(net, val, num_classes))
        net.eval()
    print(msg, flush=True)


if __name__ == "__main__":
    main()

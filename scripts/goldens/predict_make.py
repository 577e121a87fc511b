"""End-to-end goldens for nnu-predict: nnU-Net 1.7.1's own preprocessing, predict_3D and export with the
reference UNet++ weights, on small phantom CTs. Offline only; never needed at build, test or run time.

For each case in fixtures/predict/ (phantom CTs written by `nnu-phantom`, committed):
  1. GenericPreprocessor(normalization_schemes, use_mask_for_norm, transpose_forward, intensityproperties)
     .preprocess_test_case([image], current_spacing) with the plans of --reference (fixtures/reference/unetpp-small);
  2. Generic_UNetPlusPlus (MrGiovanni/UNetPlusPlus pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py
     at e145ba6, imported from --unetpp-src, not part of this repository) built as nnUNetPlusPlusTrainerV2 does,
     with the reference fold_0 state_dict, eval mode, `predict_3D(do_mirroring=True, mirror_axes=(0, 1, 2),
     use_sliding_window=True, step_size=0.5, patch_size, use_gaussian=True, all_in_gpu=False,
     mixed_precision=False)` on CPU, as nnUNetTrainer.predict_preprocessed_data_return_seg_and_softmax;
  3. transpose_backward, then `save_segmentation_nifti_from_softmax(softmax, out, properties, order=1)`.
Writes CASE_probabilities_pre.npy (f32 softmax in the preprocessed frame) and CASE_seg.nii.gz (the exported
segmentation) next to the inputs, or into --out.

Versions: torch 2.15.0 (CPU), numpy 2.4.6, scipy 1.17.1, scikit-image 0.26.0, SimpleITK 2.5.7,
batchgenerators 0.25.5, nnunet 1.7.1 (pip --no-deps), with numpy-2 aliases shimmed below.

Usage:
  git -C UNETPP_MIRROR show e145ba6:pytorch/nnunet/network_architecture/generic_UNetPlusPlus.py > /tmp/gunetpp.py
  python scripts/goldens/predict_make.py --unetpp-src /tmp/gunetpp.py --reference fixtures/reference/unetpp-small
  # the trained demo UNet++ (few near-ties, and no shared/ needed by the test):
  python scripts/goldens/predict_make.py --unetpp-src /tmp/gunetpp.py --reference crates/nnu-demo/data/model \
      --images fixtures/predict/demo --out fixtures/predict/demo
"""
import argparse
import importlib.util
import os
import pickle

import numpy as np

for _name, _t in (("int", int), ("float", float), ("bool", bool), ("object", object)):
    if not hasattr(np, _name):
        setattr(np, _name, _t)

import torch  # noqa: E402
from nnunet.inference.segmentation_export import save_segmentation_nifti_from_softmax  # noqa: E402
from nnunet.network_architecture.initialization import InitWeights_He  # noqa: E402
from nnunet.preprocessing.preprocessing import GenericPreprocessor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "fixtures", "predict")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unetpp-src", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--out", default=FIX)
    ap.add_argument("--images", default=FIX, help="folder of the CASE_0000.nii.gz inputs")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    spec = importlib.util.spec_from_file_location("gunetpp", a.unetpp_src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    plans = pickle.load(open(os.path.join(a.reference, "plans.pkl"), "rb"))
    stage = plans['plans_per_stage'][0]
    net = mod.Generic_UNetPlusPlus(
        1, plans['base_num_features'], plans['num_classes'] + 1, len(stage['pool_op_kernel_sizes']), 2, 2,
        torch.nn.Conv3d, torch.nn.InstanceNorm3d, {'eps': 1e-5, 'affine': True}, torch.nn.Dropout3d,
        {'p': 0, 'inplace': True}, torch.nn.LeakyReLU, {'negative_slope': 1e-2, 'inplace': True}, True, False,
        lambda x: x, InitWeights_He(1e-2), stage['pool_op_kernel_sizes'], stage['conv_kernel_sizes'], False,
        True, True, max_num_features=32)
    sd = torch.load(os.path.join(a.reference, "fold_0", "model_final_checkpoint.model"), map_location="cpu",
                    weights_only=False)['state_dict']
    net.load_state_dict(sd)
    net.eval()
    net.do_ds = False  # the trainer turns deep supervision off for inference
    from nnunet.utilities.nd_softmax import softmax_helper
    net.inference_apply_nonlin = softmax_helper
    pp = GenericPreprocessor(plans['normalization_schemes'], plans['use_mask_for_norm'],
                             plans['transpose_forward'], plans['dataset_properties']['intensityproperties'])
    for f in sorted(os.listdir(a.images)):
        if not f.endswith("_0000.nii.gz"):
            continue
        case = f[:-len("_0000.nii.gz")]
        data, _, props = pp.preprocess_test_case([os.path.join(a.images, f)], stage['current_spacing'])
        with torch.no_grad():
            _, softmax = net.predict_3D(data, do_mirroring=True, mirror_axes=(0, 1, 2), use_sliding_window=True,
                                        step_size=0.5, patch_size=tuple(int(p) for p in stage['patch_size']),
                                        use_gaussian=True, all_in_gpu=False, mixed_precision=False,
                                        verbose=False)
        softmax = softmax.astype(np.float32)
        np.save(os.path.join(a.out, case + "_probabilities_pre.npy"), softmax)
        tb = plans['transpose_backward']
        softmax = softmax.transpose([0] + [i + 1 for i in tb])
        save_segmentation_nifti_from_softmax(softmax, os.path.join(a.out, case + "_seg.nii.gz"), props, 1, None,
                                             None, None, None, None, None, 0)
        print(case, data.shape, softmax.shape)


if __name__ == "__main__":
    main()

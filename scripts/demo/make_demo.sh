#!/usr/bin/env bash
# Rebuilds crates/nnu-demo/data (offline; needs the Python venv named in crates/nnu-demo/data/README.md and a copy of
# Generic_UNetPlusPlus from MrGiovanni/UNetPlusPlus at e145ba6 in $UNETPP_SRC).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${UNETPP_SRC:?set UNETPP_SRC to generic_UNetPlusPlus.py of MrGiovanni/UNetPlusPlus at e145ba6}"
PY=${PYTHON:-python3}
cargo build --release -p nnu-phantom -p nnu-export-onnx
tmp=$(mktemp -d)
# Training phantoms at the plan's spacing (2.5, 2.0, 2.0) mm.
target/release/nnu-phantom --out "$tmp/train" --cases 16 --shape 48,96,96 --spacing 2.5,2.0,2.0 --seed 100
"$PY" scripts/demo/train_demo.py --unetpp-src "$UNETPP_SRC" --data "$tmp/train" --out "$tmp/model" \
  --iterations 400 --patch 32 --batch 4
# Demo cases at another spacing, so that the pipeline resamples on the way in and out.
target/release/nnu-phantom --out "$tmp/cases" --cases 2 --shape 40,120,120 --spacing 3.0,1.6,1.6 --seed 900
rm -rf crates/nnu-demo/data/model crates/nnu-demo/data/images crates/nnu-demo/data/labels
mkdir -p crates/nnu-demo/data/model/fold_0 crates/nnu-demo/data/images crates/nnu-demo/data/labels
cp "$tmp/model/plans.pkl" crates/nnu-demo/data/model/
cp "$tmp/model/fold_0/model_final_checkpoint.model" "$tmp/model/fold_0/model_final_checkpoint.model.pkl" \
  crates/nnu-demo/data/model/fold_0/
target/release/nnu-export-onnx --model crates/nnu-demo/data/model --fold 0 -o crates/nnu-demo/data/model/fold_0/model.onnx
cp "$tmp/cases/imagesTr/"*.nii.gz crates/nnu-demo/data/images/
cp "$tmp/cases/labelsTr/"*.nii.gz crates/nnu-demo/data/labels/
rm -rf "$tmp"

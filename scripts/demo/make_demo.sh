#!/usr/bin/env bash
# Rebuilds crates/nnu-demo/data (offline; needs the Python venv named in crates/nnu-demo/data/README.md and a copy of
# Generic_UNetPlusPlus from MrGiovanni/UNetPlusPlus at e145ba6 in $UNETPP_SRC). Training runs on one CPU thread
# for $TRAIN_SECONDS of wall time (default 3300): the poly learning-rate schedule runs over elapsed time, so the
# number of iterations depends on the machine's free CPU share (train.log says how many were run).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${UNETPP_SRC:?set UNETPP_SRC to generic_UNetPlusPlus.py of MrGiovanni/UNetPlusPlus at e145ba6}"
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-3300}
# The shipped weights were fine-tuned from the previous ones: INIT_STATE=checkpoint to do the same (see the README).
BIN=${CARGO_TARGET_DIR:-target}/release
cargo build --release -p nnu-phantom -p nnu-export-onnx
tmp=$(mktemp -d)
phantom() { "$BIN/nnu-phantom" --anatomy full --shape 48,96,96 --spacing 2.5,2.0,2.0 "$@" >/dev/null; }
# Training phantoms at the plan's spacing (2.5, 2.0, 2.0) mm, full anatomy, up to 4 tumours, three noise levels
# (12 HU as the demo cases, 16 and 9 HU for robustness); seeds 100-115, 200-207, 300-307.
mkdir -p "$tmp/train/imagesTr" "$tmp/train/labelsTr"
for part in "a 100 16 12" "b 200 8 16" "c 300 8 9"; do
  set -- $part
  phantom --out "$tmp/parts/$1" --seed "$2" --cases "$3" --noise "$4" --max-tumours 4
  for f in "$tmp/parts/$1/imagesTr/"*; do cp "$f" "$tmp/train/imagesTr/$1_$(basename "$f")"; done
  for f in "$tmp/parts/$1/labelsTr/"*; do cp "$f" "$tmp/train/labelsTr/$1_$(basename "$f")"; done
done
# A Dice monitor printed at each checkpoint (seeds 700-703; never trained on, not the demo cases).
phantom --out "$tmp/val" --seed 700 --cases 4
OMP_NUM_THREADS=1 "$PY" scripts/demo/train_demo.py --unetpp-src "$UNETPP_SRC" --data "$tmp/train" \
  --out "$tmp/model" --iterations 100000 --time-budget "$TRAIN_SECONDS" --lr 3e-3 --patch 32 --batch 4 --base 4 \
  --augment --tumour-prob 0.6 --checkpoint-every 150 --val "$tmp/val" --seed 0 ${INIT_STATE:+--init-state "$INIT_STATE"} | tee "$tmp/train.log"
# Demo cases (seeds 906, 907: never trained on) at another spacing, so that the pipeline resamples on the way
# in and out.
"$BIN/nnu-phantom" --out "$tmp/cases" --anatomy full --cases 2 --shape 40,120,120 --spacing 3.0,1.6,1.6 \
  --seed 906 >/dev/null
rm -rf crates/nnu-demo/data/model crates/nnu-demo/data/images crates/nnu-demo/data/labels
mkdir -p crates/nnu-demo/data/model/fold_0 crates/nnu-demo/data/images crates/nnu-demo/data/labels
cp "$tmp/model/plans.pkl" crates/nnu-demo/data/model/
cp "$tmp/model/fold_0/model_final_checkpoint.model" "$tmp/model/fold_0/model_final_checkpoint.model.pkl" \
  crates/nnu-demo/data/model/fold_0/
"$BIN/nnu-export-onnx" --model crates/nnu-demo/data/model --fold 0 -o crates/nnu-demo/data/model/fold_0/model.onnx
cp "$tmp/cases/imagesTr/"*.nii.gz crates/nnu-demo/data/images/
cp "$tmp/cases/labelsTr/"*.nii.gz crates/nnu-demo/data/labels/
rm -rf "$tmp"

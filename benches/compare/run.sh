#!/usr/bin/env bash
# Comparison runner: times our release tools against nnU-Net 1.7.1, SimpleITK and onnxruntime on the same
# inputs, on this machine, in one run. See benches/compare/README.md and docs/performance.md.
#
#   benches/compare/run.sh [--venv PATH] [--quick] [--full-net] [--out DIR] [--repeat N] [--threads N]
#                          [--no-build] [-- EXTRA compare.py OPTIONS]
#
#   --venv PATH   use this Python environment (must hold the versions of requirements.txt); default: create
#                 OUT/venv from requirements.txt (+ nnunet 1.7.1 and batchgenerators 0.25.5 with --no-deps)
#   --quick       small inputs, one run per side (a smoke test: a few minutes)
#   --full-net    also the per-patch latency of the full Task003 UNet++ (128^3, 46 M parameters), tract vs
#                 onnxruntime, and its FLOP count (adds 5-20 minutes on 2 cores: model optimisation, one
#                 warm-up and one timed pass per side)
#   --out DIR     results and inputs (default: target/compare)
#   --repeat N    runs per side (default 3; --quick: 1); the table shows medians
#   --threads N   threads for both sides where they take a number (default: all CPUs)
#   --no-build    use the binaries already in ${CARGO_TARGET_DIR:-target}/release
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benches/compare"
VENV=""
OUT="$ROOT/target/compare"
QUICK=""
FULL=""
REPEAT=""
THREADS="$(nproc)"
BUILD=1
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) VENV="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --full-net) FULL=1; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --no-build) BUILD=""; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "error: $1: unknown option (see --help)" >&2; exit 2 ;;
    esac
done
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time: GNU time is needed for peak RSS (apt-get install time)" >&2; exit 2; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

if [ -z "$VENV" ]; then
    VENV="$OUT/venv"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating $VENV from $HERE/requirements.txt" >&2
        "${PYTHON:-python3}" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
        "$VENV/bin/pip" install --quiet --no-deps nnunet==1.7.1 batchgenerators==0.25.5
    fi
fi
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "error: $PY: no python in the venv" >&2; exit 2; }

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -n "$BUILD" ]; then
    (cd "$ROOT" && cargo build --release --locked -p nnu-phantom -p nnu-preprocess -p nnu-evaluate -p nnu-infer \
        -p nnu-export-onnx -p nnu-predict && cargo build --release --locked -p nnu-benches --example compare_step)
fi

ARGS=(--bin "$TARGET/release" --example "$TARGET/release/examples/compare_step" --python "$PY" --out "$OUT"
      --threads "$THREADS")
[ -n "$QUICK" ] && ARGS+=(--quick --repeat "${REPEAT:-1}") || ARGS+=(--repeat "${REPEAT:-3}")
[ -n "$FULL" ] && ARGS+=(--full-net)
cd "$ROOT"
exec "$PY" "$HERE/compare.py" "${ARGS[@]}" "${EXTRA[@]}"

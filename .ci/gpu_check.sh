#!/usr/bin/env bash
# The GPU measurements, as one prepared command for a machine with a card (CI has none and does not
# run this). Needs torch and pandas, not snakemake; run from the repository root:
#   OUT=/tmp/gpu-check bash .ci/gpu_check.sh
# Writes into $OUT: step_cost.csv (soseleto bench: plain vs SOSELETO step, memory), share_cost.csv
# (python -m soseleto.cost.share: training jobs side by side on the card) and plan.md (the default
# config's cost plan at 1, 4, 8 and 16 jobs per card, priced with both files), and logs of each.
# DEVICE=cpu JOBS="1 2" SECONDS_PER=1 REPS=3 BENCH_MODELS=lenet SHARE_MODELS=lenet tries it on a CPU.
set -euo pipefail
OUT=${OUT:-/tmp/gpu-check}
DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-1 4 8 16}
SECONDS_PER=${SECONDS_PER:-5}
REPS=${REPS:-20}
BENCH_MODELS=${BENCH_MODELS:-lenet cifar_quick resnet18}
SHARE_MODELS=${SHARE_MODELS:-lenet cifar_quick}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
PY
# shellcheck disable=SC2086  # the *MODELS and JOBS variables are lists
python -m soseleto bench --device "$DEVICE" --reps "$REPS" --load 0 --models $BENCH_MODELS \
    --out "$OUT/step_cost.csv" 2>&1 | tee "$OUT/bench.log"
# shellcheck disable=SC2086
python -m soseleto.cost.share --device "$DEVICE" --models $SHARE_MODELS --jobs $JOBS \
    --seconds "$SECONDS_PER" --out "$OUT/share_cost.csv" 2>&1 | tee "$OUT/share.log"
plan_device=$([ "$DEVICE" = cpu ] && echo cpu || echo cuda)
for k in 1 4 8 16; do
    echo "## $k training job(s) per card"
    python -m soseleto plan --device "$plan_device" --cores "$(nproc)" --bench "$OUT/step_cost.csv" \
        --share "$OUT/share_cost.csv" --jobs-per-gpu "$k" | grep '^\*\*Total'
done | tee "$OUT/plan.md"

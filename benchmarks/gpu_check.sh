#!/usr/bin/env bash
# The GPU path on a lent GPU machine, in one call of the device tool (at most ~8 min):
#
#     benchmarks/gpu_bundle.sh                      # here, once: .gpu/site.tar.xz (what the image lacks)
#     device run, carry [".gpu"]: bash benchmarks/gpu_check.sh
#
# 1. unpacks the bundle beside the image's own torch (no registry is reachable there);
# 2. the GPU tests (tests/unit/test_gpu_step.py, tests/integration/test_gpu_training.py; skipped without CUDA);
# 3. `lstmpipe train` on the smoke config with train.use_gpu=true on 1 GPU, in fp32 and in bf16;
# 4. B1 on the GPU: the pipeline on 1 Ray Train worker vs a bare cuDNN loop (benchmarks/gpu.py).
# Everything it measured lands in $OUT (summaries, logs, one results.md); a step that fails is
# recorded there and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1
SITE=/tmp/lstmpipe-site
mkdir -p "$SITE"
tar -C "$SITE" -xJf .gpu/site.tar.xz || { echo "no .gpu/site.tar.xz: run benchmarks/gpu_bundle.sh here first"; exit 2; }
export PYTHONPATH="$SITE:$PWD"
PY=python3
RESULTS="$OUT/results.md"
step() {  # step NAME TIMEOUT_S COMMAND...: run, log to $OUT/NAME.log, note the outcome
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "| $name | exit $rc | $((SECONDS - start)) s |" >>"$RESULTS"
  tail -5 "$OUT/$name.log"
}
{
  echo "# GPU check $(date -u +%F)"
  echo
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c 'import torch, ray, mlflow; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "| ray", ray.__version__, "| mlflow", mlflow.__version__)'
  echo
  echo "| step | outcome | time |"
  echo "|---|---|---|"
} >"$RESULTS" 2>&1
cat "$RESULTS"
WORK=$(mktemp -d)
step gpu_tests 180 $PY -m pytest -q -p no:cacheprovider tests/unit/test_gpu_step.py tests/integration/test_gpu_training.py
for precision in fp32 bf16; do
  step "train_$precision" 120 $PY -m pipeline.cli train -c conf/smoke.yaml \
    --set train.use_gpu=true --set train.workers=1 --set train.precision=$precision \
    --set train.storage_path="$WORK/runs" --set tracking.uri="sqlite:///$WORK/mlflow.db" \
    --summary-json "$OUT/train_$precision.json"
done
step b1_gpu 180 $PY -m benchmarks.gpu --out "$OUT/b1_gpu.json"
echo >>"$RESULTS"
for f in "$OUT"/train_*.json "$OUT"/b1_gpu.json; do
  [ -f "$f" ] && $PY - "$f" >>"$RESULTS" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
keep = {k: d[k] for k in ("precision", "device", "workload", "ratio_median", "phase_s") if k in d}
keep |= {k: v for k, v in d.get("metrics", {}).items() if k.startswith(("test_", "baseline_"))}
print(f"- {sys.argv[1].rsplit('/', 1)[-1]}: {json.dumps(keep)}")
PYEOF
done
cat "$RESULTS"

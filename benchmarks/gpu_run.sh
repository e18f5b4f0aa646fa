#!/usr/bin/env bash
# One GPU run: ground truth, the GPU-only adapter tests, and the engine benchmark.
# Run from the repository root with the engine wheels in .whl/ and $OUT set; the results
# come back under $OUT (copied into benchmarks/results/ afterwards).
# usage: bash benchmarks/gpu_run.sh [ground-truth budget seconds]
set -o pipefail
export PYTHONUNBUFFERED=1
GT_BUDGET=${1:-270}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, diffusers, accelerate; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'accelerate', accelerate.__version__)"
  echo "== ground truth (budget ${GT_BUDGET}s)"
  timeout $((GT_BUDGET + 30)) python3 benchmarks/ground_truth.py --budget "$GT_BUDGET" --out "$OUT" --work /tmp/gt_work
  echo "== gpu tests"
  timeout 75 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_engines.py tests/test_gguf_dequant.py \
      tests/test_diffusers_integration.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
  echo "== bench engines"
  timeout 100 python3 benchmarks/bench_engines.py --out "$OUT" --reps 5
  date -u
} 2>&1 | tee "$OUT/run.log"

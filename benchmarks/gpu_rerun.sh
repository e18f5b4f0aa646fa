#!/usr/bin/env bash
# Second GPU run: the ground-truth cases the first call did not reach (gguf, quanto,
# the crash-prone bitsandbytes group cases) and bitsandbytes post after the Int8Params fix,
# two engines side by side; the GPU adapter tests; the adapter-overhead benchmark again.
# usage: bash benchmarks/gpu_rerun.sh [ground-truth budget seconds]
set -o pipefail
export PYTHONUNBUFFERED=1
GT_BUDGET=${1:-230}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
  date -u
  echo "== ground truth (budget ${GT_BUDGET}s)"
  timeout $((GT_BUDGET + 30)) python3 benchmarks/ground_truth.py --budget "$GT_BUDGET" --out "$OUT" \
      --work /tmp/gt_work --lanes 2 --job-cap 150 \
      --cases gguf,bitsandbytes:post,bitsandbytes:pre:nf4:group,bitsandbytes:pre:fp4:group,quanto
  echo "== gpu tests"
  timeout 45 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_engines.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -8
  echo "== bench engines (adapters only)"
  timeout 50 python3 benchmarks/bench_engines.py --out "$OUT" --reps 9 --tag=-run2 --no-dequant
  date -u
} 2>&1 | grep -v -E "Applying Weight Compression|^[┍┝┕│]" | tee "$OUT/run.log"

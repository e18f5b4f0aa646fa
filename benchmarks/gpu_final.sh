#!/usr/bin/env bash
# Third GPU run: the quanto ground-truth cases the first two did not finish (its CUDA
# extension builds on first use), the GPU adapter tests after the bitsandbytes 4-bit
# storage change, and the adapter-overhead benchmark. Results come back as one archive.
# usage: bash benchmarks/gpu_final.sh
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
R=/tmp/final_results
mkdir -p "$R"
{
  date -u
  echo "== ground truth: quanto"
  timeout 270 python3 benchmarks/ground_truth.py --budget 240 --out "$R" --work /tmp/gt_work \
      --lanes 2 --job-cap 170 --cases quanto
  echo "== gpu tests"
  timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_engines.py \
      tests/test_gguf_dequant.py tests/test_diffusers_integration.py 2>&1 | tail -15
  echo "== bench engines (adapters only)"
  timeout 60 python3 benchmarks/bench_engines.py --out "$R" --reps 9 --tag=-final --no-dequant
  date -u
} 2>&1 | grep -v -E "Applying Weight Compression|^[┍┝┕│]" | tee "$R/run.log"
tar czf "$OUT/final.tgz" -C "$R" .
cp "$R/run.log" "$OUT/run.log"

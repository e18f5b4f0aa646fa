#!/usr/bin/env bash
# GPU run for the GGUF dequantizer: tests/test_gguf_dequant.py (its CUDA-marked tests run
# only there), its CUDA timings against diffusers' (benchmarks/gguf_dequant_gpu.py), and
# the engine benchmark on cuda without the CPU dequantization section.
# Run from the repository root with the wheels in .whl/ and $OUT set; results come back
# under $OUT (copied into benchmarks/results/ afterwards).
# usage: bash benchmarks/gpu_gguf.sh
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, gguf, numpy, pydantic, diffusers; print('torch', torch.__version__, 'numpy', numpy.__version__, 'pydantic', pydantic.VERSION, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"
  echo "== tests/test_gguf_dequant.py"
  timeout 180 python3 -m pytest -v -p no:cacheprovider tests/test_gguf_dequant.py > "$OUT/gguf-tests.log" 2>&1
  echo "pytest rc=$?"; grep -E "gpu|cuda|FAIL|ERROR|passed|failed" "$OUT/gguf-tests.log" | tail -40
  echo "== gguf dequantization on cuda"
  timeout 240 python3 benchmarks/gguf_dequant_gpu.py --out "$OUT/gguf-dequant-gpu-h200.json"
  echo "gguf_dequant_gpu rc=$?"
  echo "== bench engines (cuda adapters, GGUF load; no CPU dequantization)"
  timeout 150 python3 benchmarks/bench_engines.py --device cuda --no-dequant --out "$OUT" --tag=-h200-gguf --rounds 5
  echo "bench_engines rc=$?"
  date -u
} 2>&1 | grep -v -E "Applying Weight Compression|^[┍┝┕│]" | tee "$OUT/run.log"

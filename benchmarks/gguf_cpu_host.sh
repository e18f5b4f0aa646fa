#!/usr/bin/env bash
# The CPU GGUF dequantizer on a many-core host (the GPU machine's 16 cores): how busy the
# machine reads right after a torch op (every runnable thread but this one, against the
# dequantizer's count without this process's own), the step sweep (gguf_cpu_step.py),
# and bench_engines' dequantization (quiet and busy) and GGUF forward, against the
# previous gguf_dequant.py (--before) and diffusers in the same run.
# Run from the repository root with the wheels in .whl-cpu/ and the previous module in
# .cmp/gguf_dequant_head.py; results come back under $OUT.
# usage: bash benchmarks/gguf_cpu_host.sh
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-cpu/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
  date -u; nproc
  python3 -c "import torch, gguf, numpy, diffusers; print('torch', torch.__version__, torch.get_num_threads(), 'threads; numpy', numpy.__version__, 'diffusers', diffusers.__version__)"
  echo "== busy count right after a torch op: every runnable thread but this one / without this process's own"
  python3 - <<'PY'
import torch
from quantdoctor.engines import gguf_dequant as g
a = torch.randn(1024, 3072); w = torch.randn(3072, 3072)
pairs = []
for _ in range(20):
    torch.nn.functional.linear(a, w)
    with open("/proc/loadavg") as f:
        everything = int(f.read().split()[3].split("/")[0]) - 1
    pairs.append((everything, g._busy_cores()))
print(pairs)
PY
  echo "== step sweep"
  timeout 200 python3 benchmarks/gguf_cpu_step.py --rounds 5 --threads 1,4,8,16 --out "$OUT/gguf-cpu-step-h200host.json"
  echo "gguf_cpu_step rc=$?"
  echo "== bench engines: CPU dequantization and GGUF forward"
  timeout 300 python3 benchmarks/bench_engines.py --no-adapters --types Q8_0,Q4_K,Q6_K,Q4_0 --before .cmp/gguf_dequant_head.py --before-types Q8_0,Q4_K,Q6_K,Q4_0 --rounds 5 --out "$OUT/engines-cpu-dequant-threads-h200host.json"
  echo "bench_engines rc=$?"
  date -u
} 2>&1 | tee "$OUT/run.log"

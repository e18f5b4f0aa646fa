"""How fast ``detect`` reads a model file, beside the readers people use, in one run.

Sparse files of 10 MB, 1 GB and 10 GB (the data is holes: no disk is spent), each with a
real header: safetensors headers in the writer's own layout (and opened by
``safetensors.safe_open`` to prove it), GGUF headers written by ``gguf.GGUFWriter``
(tensor infos only, then the file extended to its data size). A Flux-sized transformer:
``TENSORS`` tensors of width 3072, bf16 in safetensors, Q8_0 (F32 for vectors) in GGUF.

Timed in this process, warm, interleaved round by round so that load from other work
falls on every reader alike; the median of each is reported:

- ``detect(path)``: quantdoctor's header reading and recognition;
- ``safetensors.safe_open(path).keys()`` and the metadata of every tensor (the baseline
  for safetensors files);
- ``gguf.GGUFReader(path)`` (the baseline for GGUF files);
- and, once per file, ``quantdoctor detect PATH --json`` as a whole process.

Then the released layouts of ``tests/data/layouts`` (the largest real headers: LTX-2,
Qwen-Image, HiDream, Wan 14B, Mistral 3 24B) as sparse safetensors of their real size:
``detect`` beside ``safe_open`` on each, interleaved the same way.

Prints a table and writes ``benchmarks/results/detect.json``.

    python benchmarks/bench_detect.py [--rounds N] [--dir D] [--sizes 10MB,1GB,10GB]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TENSORS = 780  # about as many as a Flux transformer
LAYOUTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "layouts"
RELEASED = ("ltx2", "qwen-image", "hidream-i1", "wan21-i2v-14b", "mistral3-24b")
WIDTH = 3072
UNITS = {"MB": 10**6, "GB": 10**9}


def parse_size(text: str) -> int:
    for unit, scale in UNITS.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * scale)
    return int(text)


def layout(size: int, bytes_per_weight: float = 2.0) -> list[tuple[str, int]]:
    """(name, rows) of 2-D weights of width WIDTH that together hold about ``size`` bytes."""
    names = [f"double_blocks.{i // 20}.img_attn.part{i % 20}.weight" for i in range(TENSORS)]
    names[0] = "double_blocks.0.img_attn.norm.key_norm.scale"  # Flux's marker key
    rows = max(int(size // (TENSORS * WIDTH * bytes_per_weight)), 1)
    return [(n, rows) for n in names]


def write_safetensors(path: Path, size: int) -> None:
    """A header as ``safetensors`` writes it (keys sorted, padded to 8 bytes), data sparse."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, rows in sorted(layout(size)):
        shape = [WIDTH] if name.endswith(".scale") else [rows, WIDTH]
        nbytes = 2 * (WIDTH if len(shape) == 1 else rows * WIDTH)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


def write_gguf(path: Path, size: int) -> None:
    """Tensor infos written by gguf.GGUFWriter (Q8_0 weights), then the file extended."""
    import gguf

    q8 = gguf.GGMLQuantizationType.Q8_0
    block, block_bytes = gguf.GGML_QUANT_SIZES[q8]
    writer = gguf.GGUFWriter(str(path), arch="flux")
    writer.add_string("general.name", "bench")
    total = 0
    for name, rows in layout(size, block_bytes / block):
        if name.endswith(".scale"):
            writer.add_tensor_info(name, (WIDTH,), gguf.np.dtype("float32"), 4 * WIDTH)
            nbytes = 4 * WIDTH
        else:
            nbytes = rows * WIDTH // block * block_bytes
            writer.add_tensor_info(
                name,
                (rows, WIDTH // block * block_bytes),
                gguf.np.dtype("uint8"),
                nbytes,
                raw_dtype=q8,
            )
        total += nbytes + (-nbytes % 32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with path.open("r+b") as f:
        f.seek(0, os.SEEK_END)
        head = f.tell()
        f.truncate(head + (-head % 32) + total)


def write_released(path: Path, name: str) -> tuple[int, str]:
    """The released model ``name``'s header (tests/data/layouts) over sparse bf16 data."""
    import gzip

    with gzip.open(LAYOUTS / f"{name}.json.gz", "rt", encoding="utf-8") as f:
        record = json.load(f)
    header: dict[str, Any] = {}
    offset = 0
    for key, shape in sorted(record["tensors"].items()):
        n = 2
        for d in shape:
            n *= d
        header[key] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return len(header), record["class"]


def released_rows(d: str, rounds: int) -> list[dict[str, Any]]:
    from quantdoctor.files.detect import detect

    files = []
    for name in RELEASED:
        path = Path(d) / f"{name}.safetensors"
        tensors, cls = write_released(path, name)
        safetensors_open(path)
        found = detect(path)
        files.append((name, path, tensors, cls, f"{found.architecture} {found.variant or ''}"))
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for name, path, *_ in files:
            samples.setdefault((name, "detect"), []).append(timed(detect_fn, path))
            samples.setdefault((name, "safe_open"), []).append(timed(safetensors_open, path))
    rows = []
    for name, path, tensors, cls, named in files:
        ours = statistics.median(samples[(name, "detect")])
        theirs = statistics.median(samples[(name, "safe_open")])
        rows.append(
            {
                "model": name,
                "class": cls,
                "named": named.strip(),
                "tensors": tensors,
                "file_bytes": path.stat().st_size,
                "detect_ms": round(ours, 3),
                "safe_open_ms": round(theirs, 3),
                "safe_open_over_detect": round(theirs / ours, 2),
            }
        )
    return rows


def safetensors_open(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
            f.get_slice(key).get_shape()


def gguf_reader(path: Path) -> None:
    import gguf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gguf.GGUFReader(str(path))


def detect_fn(path: Path) -> None:
    from quantdoctor.files.detect import detect

    detect(path)


def timed(fn: Callable[[Path], None], path: Path) -> float:
    start = time.perf_counter()
    fn(path)
    return (time.perf_counter() - start) * 1000


def cli_ms(path: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "quantdoctor", "detect", str(path), "--json"],
            capture_output=True,
            check=False,
        )
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"detect failed on {path}: {proc.stderr.decode()[:300]}")
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dir", help="where to put the sparse files (default: a temp dir)")
    parser.add_argument("--sizes", default="10MB,1GB,10GB")
    args = parser.parse_args()

    sizes = [(s, parse_size(s)) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        files: list[tuple[str, str, Path, Callable[[Path], None], str]] = []
        for label, size in sizes:
            st = Path(d) / f"flux-{label}.safetensors"
            write_safetensors(st, size)
            safetensors_open(st)  # the library opens it: the header is real
            gg = Path(d) / f"flux-{label}-Q8_0.gguf"
            write_gguf(gg, size)
            files.append(("safetensors", label, st, safetensors_open, "safetensors.safe_open"))
            files.append(("gguf", label, gg, gguf_reader, "gguf.GGUFReader"))

        samples: dict[tuple[str, str, str], list[float]] = {}
        for _fmt, _label, path, baseline, _ in files:  # warm-up, untimed
            detect_fn(path)
            baseline(path)
        for _ in range(args.rounds):
            for fmt, label, path, baseline, base_name in files:
                samples.setdefault((fmt, label, "detect"), []).append(timed(detect_fn, path))
                samples.setdefault((fmt, label, base_name), []).append(timed(baseline, path))

        rows = []
        for fmt, label, path, _, base_name in files:
            ours = statistics.median(samples[(fmt, label, "detect")])
            theirs = statistics.median(samples[(fmt, label, base_name)])
            rows.append(
                {
                    "format": fmt,
                    "size": label,
                    "file_bytes": path.stat().st_size,
                    "disk_bytes": path.stat().st_blocks * 512,
                    "tensors": TENSORS,
                    "detect_ms": round(ours, 3),
                    "baseline": base_name,
                    "baseline_ms": round(theirs, 3),
                    "baseline_over_detect": round(theirs / ours, 2),
                    "cli_detect_ms": round(cli_ms(path), 1),
                }
            )
        released = released_rows(d, args.rounds)

    for fmt in ("safetensors", "gguf"):
        mine = [r for r in rows if r["format"] == fmt]
        flat = mine[-1]["detect_ms"] / mine[0]["detect_ms"]
        for r in mine:
            r["detect_vs_smallest"] = round(r["detect_ms"] / mine[0]["detect_ms"], 2)
        print(f"{fmt}: detect on {mine[-1]['size']} / on {mine[0]['size']} = {flat:.2f}x")

    header = (
        f"{'format':12} {'size':>6} {'detect ms':>10} {'baseline':>22} {'base ms':>9} "
        f"{'base/detect':>11} {'CLI ms':>8}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['format']:12} {r['size']:>6} {r['detect_ms']:>10.2f} {r['baseline']:>22} "
            f"{r['baseline_ms']:>9.2f} {r['baseline_over_detect']:>10.1f}x "
            f"{r['cli_detect_ms']:>8.1f}"
        )
    print(
        f"{'released model':16} {'tensors':>7} {'GB':>6} {'detect ms':>10} "
        f"{'safe_open ms':>13}  named"
    )
    for r in released:
        print(
            f"{r['model']:16} {r['tensors']:>7} {r['file_bytes'] / 1e9:>6.1f} "
            f"{r['detect_ms']:>10.2f} {r['safe_open_ms']:>13.2f}  {r['named']}"
        )
    out = {
        "what": "detect vs safetensors.safe_open / gguf.GGUFReader, sparse files, real headers",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "rounds": args.rounds,
        "rows": rows,
        "released": released,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detect.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'detect.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Coverage-guided fuzzing of both header parsers with atheris (libFuzzer for Python).

    pip install atheris   # in a separate environment: it is not a project dependency
    PYTHONPATH=. python tests/corpus/fuzz/atheris_headers.py safetensors -max_total_time=120
    PYTHONPATH=. python tests/corpus/fuzz/atheris_headers.py gguf -max_total_time=120

Seeds are two real files (seeds/) and the hostile corpus (tests/corpus/hostile). Any
exception other than ``UnreadableFileError``, or a message that does not name the file
on one line, is a crash; libFuzzer saves the input as ``crash-*``, which belongs in
tests/corpus/hostile (with a line in make.py) once the parser is fixed. The parsers
import only the standard library, so this needs no torch and no engine.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from quantdoctor.errors import UnreadableFileError
    from quantdoctor.files import _gguf_header, _safetensors_header

HERE = Path(__file__).resolve().parent
#: real files (written by safetensors.numpy and gguf.GGUFWriter, as in test_fuzz_headers)
#: and the hostile corpus
SEEDS = (HERE / "seeds", HERE.parent / "hostile")
PARSERS = {
    "safetensors": (_safetensors_header.read_from, "fuzz.safetensors"),
    "gguf": (_gguf_header.read_from, "fuzz.gguf"),
}


def main() -> None:
    kind = sys.argv.pop(1)
    read_from, name = PARSERS[kind]

    def one(data: bytes) -> None:
        try:
            read_from(io.BytesIO(data), len(data), name)
        except UnreadableFileError as err:
            text = str(err)
            if not text.startswith(name + ": ") or "\n" in text:
                raise AssertionError(f"badly formed message: {text[:200]!r}") from None

    seeds = Path(f"/tmp/atheris-seeds-{kind}")
    seeds.mkdir(exist_ok=True)
    for folder in SEEDS:
        for p in folder.iterdir():
            if p.suffix in (".safetensors", ".gguf", ".bin"):
                (seeds / p.name).write_bytes(p.read_bytes()[:65536])
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(seeds)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

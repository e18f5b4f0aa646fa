"""detect survives hostile files: exit 2 and one line naming the file and what is wrong.

The files are in tests/corpus/hostile (made by make.py there, kept as bytes);
expected.json says what detect must say about each. No traceback, no hang, nothing
written, and never more read than the header.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from quantdoctor.cli import main
from quantdoctor.errors import UnreadableFileError
from quantdoctor.files.detect import detect

HOSTILE = Path(__file__).parent / "corpus" / "hostile"
EXPECTED: dict[str, str] = json.loads((HOSTILE / "expected.json").read_text())


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: a header read that loops is a bug, not a slow test."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still reading after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", "detect", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_corpus_is_complete() -> None:
    on_disk = {p.name for p in HOSTILE.iterdir() if p.suffix in (".safetensors", ".gguf", ".bin")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_hostile_file_gets_exit_2_and_one_line_naming_it(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = HOSTILE / name
    before = path.read_bytes()
    with within(2.0):
        code = main(["detect", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(f"quantdoctor: error: {path}: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert EXPECTED[name] in err
    assert len(err) < 400, "a lying size must not turn into a page of digits"
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "name", ["st-deep-nesting.safetensors", "gguf-huge-array.gguf", "random.bin"]
)
def test_a_hostile_file_in_a_real_process_prints_no_traceback(name: str) -> None:
    proc = run_cli(str(HOSTILE / name))
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and EXPECTED[name] in proc.stderr


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    proc = run_cli(str(fifo))  # opening a FIFO for reading would block without a writer
    assert proc.returncode == 2 and "not a regular file" in proc.stderr


def test_a_device_is_refused() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        detect("/dev/zero")


def test_a_missing_file_and_an_empty_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match=r"nothing\.gguf: no such file"):
        detect(tmp_path / "nothing.gguf")
    with pytest.raises(UnreadableFileError, match=r"no model_index\.json, config\.json"):
        detect(tmp_path)


def test_a_symlink_loop_is_named(tmp_path: Path) -> None:
    loop = tmp_path / "loop.safetensors"
    loop.symlink_to(loop)
    with pytest.raises(UnreadableFileError, match=r"loop\.safetensors: cannot open"):
        detect(loop)


def _index(folder: Path, weight_map: object) -> Path:
    path = folder / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


def test_a_sharded_index_cannot_send_detect_outside_its_folder(tmp_path: Path) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.safetensors").write_bytes((HOSTILE / "st-gap.safetensors").read_bytes())
    with pytest.raises(UnreadableFileError, match="is not a plain file name"):
        detect(_index(inner, {"w": "../secret.safetensors"}))
    with pytest.raises(UnreadableFileError, match="is not a plain file name"):
        detect(_index(inner, {"w": "/etc/passwd"}))


@pytest.mark.parametrize(
    ("weight_map", "says"),
    [
        ({}, "no weight_map in the index"),
        ([1, 2], "no weight_map in the index"),
        ({"w": 3}, "weight_map values must be file names"),
        ({"w": "missing-00001.safetensors"}, "missing-00001.safetensors: no such file"),
    ],
)
def test_a_broken_sharded_index_is_named(tmp_path: Path, weight_map: object, says: str) -> None:
    with pytest.raises(UnreadableFileError, match=says):
        detect(_index(tmp_path, weight_map))


def test_an_index_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_bytes(b"\xff{ not json")
    with pytest.raises(UnreadableFileError, match=r"index\.json: not valid JSON"):
        detect(path)


def test_model_index_cannot_send_detect_outside_its_folder(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (pipe / "model_index.json").write_text(
        json.dumps({"..": ["diffusers", "X"], "/etc": ["a", "b"]})
    )
    (tmp_path / "config.json").write_text("{}")
    found = detect(pipe)
    assert found.parts == ()


# ------------------------------------------------------------- bounded reading


def _read_bytes_so_far() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _sparse_safetensors(path: Path, data_bytes: int) -> int:
    """A file whose header describes one U8 tensor of ``data_bytes``, data left sparse."""
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}
    ).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + data_bytes)
    return 8 + len(header)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_detect_reads_the_header_and_nothing_more(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    header_bytes = _sparse_safetensors(path, 8 * 1024**3)  # 8 GiB of sparse data
    before = _read_bytes_so_far()
    found = detect(path)
    read = _read_bytes_so_far() - before
    assert found.bytes == 8 * 1024**3
    assert read < header_bytes + 64 * 1024, f"read {read} bytes for a {header_bytes}-byte header"


def _sparse_gguf(path: Path, elements: int) -> int:
    """A GGUF v3 file with one F32 tensor of ``elements``, its data left sparse."""

    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kv = string("general.architecture") + struct.pack("<I", 8) + string("flux")
    info = string("double_blocks.0.img_attn.norm.key_norm.scale") + struct.pack("<IQ", 1, elements)
    info += struct.pack("<IQ", 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + info
    head += b"\0" * (-len(head) % 32)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(len(head) + 4 * elements)
    return len(head)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_detect_reads_a_gguf_header_and_at_most_one_window_more(tmp_path: Path) -> None:
    path = tmp_path / "big.gguf"
    header_bytes = _sparse_gguf(path, 2 * 1024**3)  # 8 GiB of sparse F32 data
    before = _read_bytes_so_far()
    found = detect(path)
    read = _read_bytes_so_far() - before
    assert (found.scheme, found.bytes, found.architecture) == ("F32", 8 * 1024**3, "flux")
    # the header is read through a 64 KiB window; nothing past it
    assert read <= header_bytes + 64 * 1024 + 4096, read


def test_a_gguf_of_gigantic_metadata_strings_is_refused(tmp_path: Path) -> None:
    # Five 16 MiB string values: each within the per-string limit, too many together.
    # The strings are holes in a sparse file (zeros are valid UTF-8), so no disk is spent.
    path = tmp_path / "strings.gguf"
    size = 16 * 1024 * 1024
    with path.open("wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 5))
        for i in range(5):
            key = f"general.blob{i}".encode()
            f.write(struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, size))
            f.seek(size, os.SEEK_CUR)
        f.truncate(f.tell())
    with within(10.0), pytest.raises(UnreadableFileError, match="metadata strings exceed"):
        detect(path)


def test_a_gguf_vocabulary_is_summarised_not_kept(tmp_path: Path) -> None:
    from quantdoctor.files._gguf_header import read_header

    path = tmp_path / "vocab.gguf"
    count, each = 100_000, 1000  # 100 MB of token strings, held as holes
    key = b"tokenizer.ggml.tokens"
    with path.open("wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1))
        f.write(struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 8, count))
        for _ in range(count):
            f.write(struct.pack("<Q", each))
            f.seek(each, os.SEEK_CUR)
        f.truncate(f.tell() + 32)
    with within(10.0):
        header = read_header(path)
    assert header.metadata["tokenizer.ggml.tokens"] == {"array_type": 8, "length": count}


def test_a_path_is_read_as_pathlib_spells_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # detect reads a single file without pathlib: "" is still the folder ".", and a
    # trailing "/." still names the file before it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnreadableFileError, match=r"^\.: no model_index\.json"):
        detect("")
    (tmp_path / "a.index.json").write_text('{"weight_map": {}}')
    with pytest.raises(UnreadableFileError, match=r"^a\.index\.json: no weight_map"):
        detect("a.index.json/.")

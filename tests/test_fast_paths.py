"""The commands people run every time import none of the modules that cost a process as
much as its own start-up (argparse, json, re with enum, typing, pathlib), nor the
``collections`` that ``collections.abc``, ``functools`` and ``contextlib`` bring (a fifth
of it): each is read with the house's lighter means (``cli._args``, ``_json``, ``str``
methods, ``_namedtuple``, ``_memo``, ``_collections_abc``), and these tests keep it so.
Each command runs twice in a fresh interpreter, the first filling quantdoctor's caches as
a user's first run does; ``-S`` keeps site's start-up hooks (an editable install's finder
imports pathlib and re) out of the count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import quantdoctor

HEAVY = ("argparse", "json", "re", "enum", "typing", "pathlib")
#: What ``from collections.abc import``, ``functools`` and ``contextlib`` import.
COLLECTIONS = ("collections", "functools", "contextlib")
#: Extension modules a command would load for one call (``math``: ~0.3 ms a process).
EXTENSIONS = ("math",)
SITE = [p for p in sys.path if p.endswith("site-packages")]


def _imported(argv: list[str], cache: Path) -> set[str]:
    watched = HEAVY + COLLECTIONS + EXTENSIONS
    code = (
        "import sys, io\n"
        "before = set(sys.modules)\n"
        "from quantdoctor.cli import main\n"
        "real, sys.stdout = sys.stdout, io.StringIO()\n"
        f"main({argv!r})\n"
        "sys.stdout = real\n"
        f"print(' '.join(m for m in {watched!r} if m in sys.modules and m not in before))\n"
    )
    root = str(Path(quantdoctor.__file__).resolve().parent.parent)
    # a legacy install's metadata on the path, as a source tree built with pip install -e
    # holds one (an egg-info folder): the probe reads it too
    legacy = cache.parent / "legacy"
    (legacy / "legacy_pkg-1.0-py3.11.egg-info").mkdir(parents=True, exist_ok=True)
    (legacy / "legacy_pkg-1.0-py3.11.egg-info" / "PKG-INFO").write_text("Version: 1.0\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, str(legacy), *SITE]),
        "QUANTDOCTOR_CACHE_DIR": str(cache),
    }
    out = ""
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr[-2000:]
        out = done.stdout
    return set(out.split())


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    writer = gguf.GGUFWriter(str(path), arch="flux")
    data = np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32)
    packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor(
        "double_blocks.0.img_attn.qkv.weight",
        packed,
        raw_shape=packed.shape,
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_env_json(tmp_path: Path) -> None:
    assert _imported(["env", "--json"], tmp_path) == set()


def test_detect_a_gguf_file(tmp_path: Path, gguf_file: Path) -> None:
    assert _imported(["detect", str(gguf_file)], tmp_path) == set()
    assert _imported(["detect", str(gguf_file), "--json"], tmp_path) == set()


@pytest.fixture(scope="module")
def safetensors_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    np = pytest.importorskip("numpy")
    st = pytest.importorskip("safetensors.numpy")
    folder = tmp_path_factory.mktemp("st")
    tensors = {
        f"transformer_blocks.{i}.attn.to_q.weight": np.zeros((8, 8), np.float16) for i in range(4)
    }
    st.save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder / "model.safetensors"


def test_detect_a_safetensors_file(tmp_path: Path, safetensors_file: Path) -> None:
    """Every engine's module is imported to fingerprint the file: none may bring them."""
    assert _imported(["detect", str(safetensors_file)], tmp_path) == set()
    assert _imported(["detect", str(safetensors_file), "--json"], tmp_path) == set()


def test_check_imports_no_typing_json_or_pathlib(tmp_path: Path) -> None:
    argv = ["check", "--engine", "quanto", "--scheme", "qint8", "--offload", "balanced", "--json"]
    assert _imported(argv, tmp_path) <= {"re", "enum"}  # conditions' patterns and versions


def test_path_text_is_str_of_path() -> None:
    from pathlib import PurePosixPath

    from quantdoctor.files.detect import path_text

    if os.name != "posix":
        pytest.skip("the POSIX spelling; elsewhere path_text is str(Path(...))")
    for text in (
        "",
        ".",
        "./",
        "/",
        "//",
        "///",
        "//a",
        "///a/",
        "a//b/./c/",
        "../x",
        "a/../b",
        "./model.gguf",
        "x.gguf/",
        "/.//.",
        "a/./.",
        "~/m.gguf",
        " a / b ",
    ):
        assert path_text(text) == str(PurePosixPath(text)), text


def test_a_report_built_afresh_imports_none_of_them(tmp_path: Path) -> None:
    assert _imported(["--no-cache"], tmp_path) == set()
    assert _imported(["--no-cache", "--json"], tmp_path) == set()


def test_a_kept_report_prints_without_them(tmp_path: Path) -> None:
    # the second run reads the report and its rendered lines back
    assert _imported([], tmp_path) == set()
    assert _imported(["--json"], tmp_path) == set()


def test_a_kept_verdict_prints_without_them(tmp_path: Path) -> None:
    argv = ["check", "--engine", "quanto", "--scheme", "qint8", "--offload", "balanced"]
    assert _imported([*argv, "--json"], tmp_path) == set()

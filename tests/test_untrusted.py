"""The pieces that keep hostile input harmless, each on its own (tests/hostile runs them
end to end): the sanitiser, bounded reading, the child process for driver libraries."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from fixtures_probe.trees import path_env, write_tool

from quantdoctor._printable import SafeStream, printable
from quantdoctor.doctor._probe_child import run_in_child
from quantdoctor.doctor._probe_util import (
    TOOL_OUTPUT_CAP,
    ProbeContext,
    clean_gpu,
    read_text,
    run_tool,
)
from quantdoctor.errors import EnvironmentFileError, MatrixError
from quantdoctor.rules.matrix import parse_matrix_text
from quantdoctor.rules.untrusted import load_json, read_user_file


def test_printable_shows_every_control_sequence_as_an_escape() -> None:
    text = "GPU \x1b]0;owned\x07\x1b[2J \x9b31m \u202eevil\u2066 \x7f"
    shown = printable(text)
    assert not any(c in shown for c in "\x1b\x07\x9b\u202e\u2066\x7f")
    assert shown == "GPU \\u001b]0;owned\\u0007\\u001b[2J \\u009b31m \\u202eevil\\u2066 \\u007f"


def test_printable_keeps_newlines_only_where_asked_and_cuts_long_text() -> None:
    assert printable("a\nb") == "a\\u000ab"
    assert printable("a\nb\tc", newlines=True) == "a\nb\tc"
    assert printable("x" * 50, limit=10) == "x" * 10 + "... (40 more characters)"


def test_sanitised_json_is_still_json_with_the_same_strings() -> None:
    data = {"name": "\x9b2J\u202e", "n": 1}
    out = io.StringIO()
    SafeStream(out).write(json.dumps(data, ensure_ascii=False))
    assert "\x9b" not in out.getvalue()
    assert json.loads(out.getvalue()) == data


def test_a_gpu_fact_that_breaks_the_contract_is_dropped_and_named() -> None:
    gpu = {"vendor": "amd", "name": "\x1b[2JRadeon", "gfx": "gfx999963", "memory_gb": -24.0}
    cleaned, dropped = clean_gpu(gpu)
    assert cleaned == {"vendor": "amd", "name": "\\u001b[2JRadeon"}
    assert [d.split()[0] for d in dropped] == ["gfx", "memory_gb"]


def test_probe_reads_skip_fifos_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "METADATA"
    os.mkfifo(fifo)
    start = time.monotonic()
    assert read_text(str(fifo)) is None
    assert read_text("/dev/zero") is None
    assert time.monotonic() - start < 1


def test_a_tool_that_prints_without_end_is_stopped_at_the_cap(tmp_path: Path) -> None:
    write_tool(tmp_path, "rocminfo", "/usr/bin/yes 'Name: gfx1100'")
    ctx = ProbeContext(environ=path_env(tmp_path), timeout=20)
    start = time.monotonic()
    result = run_tool(("rocminfo",), ctx)
    assert result.error == f"rocminfo printed more than {TOOL_OUTPUT_CAP >> 20} MiB; stopped it"
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_a_child_that_crashes_or_hangs_becomes_a_reason(
    fork: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantdoctor.doctor import _probe_child

    # A threaded caller gets a fresh interpreter instead of a fork: both must hold.
    monkeypatch.setattr(_probe_child, "_can_fork", lambda: fork)
    assert (
        run_in_child("fixtures_probe.children:aborts", None, 5, "NVML")
        == "NVML crashed its process (SIGABRT)"
    )
    start = time.monotonic()
    assert "did not answer within 0.5 s" in run_in_child(
        "fixtures_probe.children:hangs", None, 0.5, "NVML"
    )
    assert time.monotonic() - start < 5
    assert run_in_child("json:dumps", [1, "a"], 5, "x") == '[1, "a"]'


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO (a named pipe), not a regular file"),
        (lambda p: p.mkdir(), "is a directory, not a file"),
        (lambda p: p.write_bytes(b"x" * 2000), "is 2000 bytes; the limit is 1000 bytes"),
        (lambda p: p.write_bytes(b"caf\xe9"), "not UTF-8 text (byte 3)"),
        (lambda p: None, "no such file"),
    ],
)
def test_a_user_file_is_a_regular_bounded_utf8_file_or_one_error(
    tmp_path: Path, make: object, expected: str
) -> None:
    path = tmp_path / "f"
    make(path)  # type: ignore[operator]
    with pytest.raises(EnvironmentFileError) as err:
        read_user_file(path, "--env ", EnvironmentFileError, 1000)
    assert str(err.value) == f"--env {path}: {expected}"


def test_a_device_is_refused_without_reading_it() -> None:
    with pytest.raises(MatrixError, match="is a device, not a regular file"):
        read_user_file("/dev/zero", "", MatrixError, 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"os": "linux", "os": "windows"}', "env.json: duplicate key 'os'"),
        ('{"gpus": [{"memory_gb": ' + "9" * 5000 + "}]}", "env.json: a number of 5000 digits"),
        ("[" * 100_000 + "]" * 100_000, "env.json: nested too deeply"),
        (
            '{"a": ' * 70 + "1" + "}" * 70,
            "env.json: nested too deeply (more than 64 levels)",
        ),
    ],
)
def test_json_from_the_user_refuses_what_would_be_silently_wrong(text: str, expected: str) -> None:
    with pytest.raises(EnvironmentFileError) as err:
        load_json(text, "env.json", EnvironmentFileError)
    assert str(err.value).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join(["*" + chr(97 + i)] * 10) + "]\n"
                for i in range(8)
            )
            + "rules: []\n",
            "expands to more than 200000 values",
        ),
        ("rules: []\nrules: []\n", "o.yaml:2: duplicate key 'rules'"),
        ("rules: []\nx: " + "9" * 200 + "\n", "a number of 200 characters"),
        ("rules:\n  - when: " + "[" * 80 + "]" * 80 + "\n", "nested too deeply"),
    ],
)
def test_an_overlay_is_refused_before_it_is_expanded(text: str, expected: str) -> None:
    start = time.monotonic()
    with pytest.raises(MatrixError, match=expected.replace("(", r"\(")):
        parse_matrix_text(text, "o.yaml")
    assert time.monotonic() - start < 2


def test_a_list_or_mapping_as_a_key_is_one_error_naming_the_line(tmp_path: Path) -> None:
    # found by the overlay fuzzer: YAML's "? " makes a list a key, which nothing can hold
    from quantdoctor.rules.matrix import MatrixError, parse_matrix_text

    for text, kind in (("rules:\n? - id: x\n", "list"), ("? {a: 1}\n: 2\n", "mapping")):
        said = rf"over\.yaml:\d+: a key must be a plain value, not a {kind}"
        with pytest.raises(MatrixError, match=said):
            parse_matrix_text(text, "over.yaml")

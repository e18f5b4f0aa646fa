"""``quantdoctor._json`` answers as ``json`` does: the same text out, the same values in,
the same errors, on random data and on the project's own documents."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import quantdoctor
from quantdoctor import _json

STRINGS = ["", "a", "é", "日本", "\x1b[2J", "\u202e", 'q"uote', "back\\slash", "\n\t", "\ud800"]
NUMBERS = [0, -1, 7, 2**70, -(2**64), 0.1, -2.5, 1e300, 5e-324, 1.0, float("nan"), math.inf]


def _value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return rng.choice(STRINGS) + str(rng.randrange(3))
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.random() * 10 ** rng.randrange(-5, 20)
    if kind == 4:
        return rng.randrange(-(10**12), 10**12)
    if kind in (5, 6):
        return {rng.choice(STRINGS) + str(i): _value(rng, depth + 1) for i in range(rng.randrange(4))}
    if kind == 7:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return tuple(_value(rng, depth + 1) for _ in range(rng.randrange(3)))


OPTIONS = [
    {},
    {"indent": 2},
    {"indent": 2, "ensure_ascii": False},
    {"indent": 2, "ensure_ascii": False, "allow_nan": False},
    {"indent": 0, "sort_keys": True},
    {"separators": (",", ":"), "allow_nan": False},
    {"sort_keys": True, "separators": (",", ":"), "default": str},
]


def _outcome(fn: object, *args: object, **kw: object) -> tuple[str, object]:
    try:
        return "ok", fn(*args, **kw)  # type: ignore[operator]
    except Exception as err:
        return type(err).__name__, str(err)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_dumps_is_json_dumps(options: dict[str, object]) -> None:
    rng = random.Random(17)
    for _ in range(400):
        data = _value(rng, 0)
        assert _outcome(_json.dumps, data, **options) == _outcome(json.dumps, data, **options)


def test_dumps_hands_json_what_it_does_not_decide() -> None:
    circular: list[object] = []
    circular.append(circular)
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    for data in ({1: "a", None: 2, True: 3}, {"set": {1}}, circular, deep, [math.nan]):
        for options in ({"indent": 2, "allow_nan": False}, {"allow_nan": False}, {}):
            assert _outcome(_json.dumps, data, **options) == _outcome(json.dumps, data, **options)
    assert _json.dumps({"p": {1}}, default=sorted) == json.dumps({"p": {1}}, default=sorted)


def test_loads_is_json_loads() -> None:
    rng = random.Random(5)
    texts = [json.dumps(_value(rng, 0), indent=rng.choice([None, 2])) for _ in range(300)]
    texts += [" \n{}\t", "NaN", "-Infinity", "[1, 2", "{} x", "", "   ", "\ufeff{}", "[1,]"]
    texts += ['"\\ud800"', '"a\x01"', "01", "1e999", "[" * 100000 + "]" * 100000, "\u00a0{}"]
    for text in texts:
        got, want = _outcome(_json.loads, text), _outcome(json.loads, text)
        if got[0] == want[0] == "ok":  # NaN is not NaN: compare the values' JSON
            got, want = ("ok", repr(got[1])), ("ok", repr(want[1]))
        assert got == want, text[:60]


def test_the_project_documents_read_and_write_alike() -> None:
    import contextlib
    import io

    from quantdoctor.cli import main

    for argv in (["--json", "--no-cache"], ["matrix", "--json"], ["rules", "--json"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main(argv)
        data = json.loads(out.getvalue())
        for options in OPTIONS[:4]:
            text = json.dumps(data, **options)  # type: ignore[arg-type]
            assert _json.dumps(data, **options) == text  # type: ignore[arg-type]
            assert _json.loads(text) == data


def test_loads_with_hooks_is_json_loads() -> None:
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key in {keys}")
        return dict(items)

    def small(text: str) -> int:
        if len(text) > 5:
            raise OverflowError(text)
        return int(text)

    texts = ['{"a": 1, "b": {"c": [1, 2]}}', '{"a": 1, "a": 2}', "[123456789]", "[1, 2", "7"]
    for text in texts:
        for hooks in ({"object_pairs_hook": pairs}, {"parse_int": small}, {}):
            got = _outcome(_json.loads, text, **hooks)
            assert got == _outcome(json.loads, text, **hooks), (text, hooks)


def test_without_the_accelerator_json_itself_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # an interpreter without CPython's _json (PyPy's is another module) still reads JSON
    monkeypatch.setattr(_json, "_json", None)
    data = {"a": [1, 2.5, None, "é"], "b": {"c": True}}
    assert _json.dumps(data, indent=2, ensure_ascii=False) == json.dumps(
        data, indent=2, ensure_ascii=False
    )
    assert _json.loads(json.dumps(data)) == data

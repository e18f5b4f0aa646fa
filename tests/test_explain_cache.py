"""``quantdoctor explain`` without a machine reads the rules with signatures from a cache
entry of its own (``cli.explain.signature_rules``), not the whole matrix: it must explain
every text exactly as the matrix does, follow the overlays, and rebuild, never trust, an
entry that is not one it wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from quantdoctor.cli import main
from quantdoctor.cli.explain import signature_rules
from quantdoctor.rules.explain import explain_full, explain_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_caches import _forge, run, store
from test_explain_corpus import case_text, corpus

QUANTO = "QBytesTensor.__new__() missing 5 required positional arguments"
OVERLAY = """\
rules:
  - id: local.widget.crash
    when: {fact: os, is: linux}
    severity: block
    message: the widget crashed
    fix: do not use the widget
    source: a local note
    signatures:
      - pattern: "WidgetError: %s"
        source: a local log
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTDOCTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QUANTDOCTOR_MATRIX", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _texts() -> list[str]:
    data = corpus()
    texts = [case_text(c) for c in [*data["cases"], *data["unrelated"]]]
    return [*texts, QUANTO, "CUDA out of memory. Tried to allocate 2.00 GiB", "nothing at all"]


def test_the_kept_rules_explain_every_text_as_the_matrix_does(tmp_path: Path) -> None:
    entries = store(tmp_path / "cache")
    for round_ in ("built", "read back"):
        rules, packages, engines = signature_rules(None)
        assert len(list(entries.glob("explain-*.json"))) == 1, round_
        for text in _texts():
            kept = explain_text(text, rules, packages=packages, engines=engines)
            assert kept == explain_full(text), (round_, text[:80])


def test_the_command_prints_what_the_matrix_explains(capsys: pytest.CaptureFixture[str]) -> None:
    for text in _texts()[:20]:
        main(["explain", text, "--json"])
        printed = json.loads(capsys.readouterr().out)
        assert printed == [m.to_dict() for m in explain_full(text).matches], text[:80]


def test_an_overlays_signature_is_seen_and_an_edit_follows(tmp_path: Path) -> None:
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(OVERLAY % "gears", encoding="utf-8")
    cache = tmp_path / "cache"
    done = run(cache, "explain", "WidgetError: gears", "--matrix", str(overlay))
    assert done.returncode == 0 and "[local.widget.crash]" in done.stdout, done.stderr
    overlay.write_text(OVERLAY % "springs", encoding="utf-8")
    done = run(cache, "explain", "WidgetError: gears", "--matrix", str(overlay))
    assert done.returncode == 1 and "local.widget.crash" not in done.stdout, done.stdout
    done = run(cache, "explain", "WidgetError: springs", "--matrix", str(overlay))
    assert done.returncode == 0 and "[local.widget.crash]" in done.stdout, done.stderr


def _entry(cache: Path) -> Path:
    found = sorted(store(cache).glob("explain-*.json"))
    assert len(found) == 1, found
    return found[0]


def _first_rule(change: Any) -> Any:
    return lambda data: change(data["rules"][0])


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_first_rule(lambda r: r.__setitem__("severity", "fatal")), id="severity"),
        pytest.param(_first_rule(lambda r: r.__setitem__("signatures", [])), id="no signature"),
        pytest.param(_first_rule(lambda r: r["signatures"][0].pop("pattern")), id="no pattern"),
        pytest.param(_first_rule(lambda r: r.__setitem__("facts", "gpu")), id="facts a string"),
        pytest.param(_first_rule(lambda r: r["select"].__setitem__("engine", [1])), id="engine"),
        pytest.param(lambda d: d["literals"].clear(), id="literals lost"),
        pytest.param(lambda d: d.__setitem__("packages", []), id="packages a list"),
        pytest.param(lambda d: d.__setitem__("rules", {}), id="rules a mapping"),
    ],
)
def test_a_forged_entry_is_rebuilt_not_trusted(tmp_path: Path, change: Any) -> None:
    cache = tmp_path / "cache"
    first = run(cache, "explain", QUANTO, "--json")
    assert first.returncode == 0, first.stderr
    _forge(_entry(cache), change)
    again = run(cache, "explain", QUANTO, "--json")
    assert (again.returncode, again.stdout) == (0, first.stdout), again.stderr
    third = run(cache, "explain", QUANTO, "--json")  # the rebuilt entry reads back
    assert (third.returncode, third.stdout) == (0, first.stdout), third.stderr


def test_a_forged_slow_signature_is_refused_not_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run(cache, "explain", QUANTO).returncode == 0

    def slow(data: dict[str, Any]) -> None:
        for rule in data["rules"]:
            rule["signatures"] = [{"pattern": "(a+)+$", "source": "s", "generic": False}]
        data["literals"] = {"(a+)+$": []}

    _forge(_entry(cache), slow)
    done = run(cache, "explain", "a" * 40 + "!")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("quantdoctor: error: a signature no check passed")
    assert done.stderr.count("\n") == 1

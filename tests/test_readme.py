"""What a user reads first in the README about the engines is the matrix's own answer:
every engine named, every scheme and default mode it gives is the engine's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantdoctor.rules.matrix import load_matrix

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
MATRIX = load_matrix(defaults=False)


def _row(facet: str) -> str:
    """The second cell of the Plans table's row for ``facet``."""
    for line in README.splitlines():
        if line.startswith(f"| `{facet}` |"):
            return line.split("|")[2]
    raise AssertionError(f"the README has no Plans row for {facet}")


def _intro() -> str:
    """The paragraph after the two commands: what quantdoctor is."""
    return README.split("\n\n")[1]


def test_the_plans_table_names_every_engine_in_matrix_order() -> None:
    assert re.findall(r"`([^`]+)`", _row("engine")) == list(MATRIX.engine_names)


@pytest.mark.parametrize("engine", MATRIX.engine_names)
def test_the_introduction_names_every_engine(engine: str) -> None:
    words = r"[ _-]?".join(map(re.escape, engine.split("_")))
    package = MATRIX.engine_data[engine]["package"]
    assert re.search(words, _intro(), re.I) or package in _intro(), engine


def test_every_scheme_the_readme_names_is_one_of_its_engines() -> None:
    listed = _row("scheme").split(":", 1)[1].split(";")
    seen = set()
    for part in listed:
        engine, *_ = part.split()
        schemes = re.findall(r"`([^`]+)`", part)
        assert engine in MATRIX.engine_names and schemes, part
        assert set(schemes) <= set(MATRIX.scheme_names(engine)), part
        seen.add(engine)
    assert len(seen) >= 5


def test_the_default_modes_the_readme_gives_are_the_engines() -> None:
    said = re.search(r"`prequantized` for ([^`]+?), `post` for the rest", _row("mode"))
    assert said is not None
    named = set(re.split(r", | and ", said.group(1)))
    assert named == {e for e in MATRIX.engine_names if MATRIX.default_mode(e) == "prequantized"}

"""Rules select backends by their row in the one backends table (``rules/vocab.py``), not
by hand-written lists of backend names: each rewritten rule holds, fails or stays unknown
on exactly the machines its old list did (the old conditions are kept here as the proof)."""

from __future__ import annotations

import textwrap
from itertools import product
from typing import Any

import pytest
import yaml

from quantdoctor.rules.conditions import All, Any_, Leaf, Node, Not, parse
from quantdoctor.rules.facts import facts_from_json
from quantdoctor.rules.matrix import load_matrix
from quantdoctor.rules.vocab import BACKENDS

#: each rewritten rule's ``when`` as it read with its list of backends (YAML, as it stood)
OLD: dict[str, str] = {
    "torchao.int4wo.cpu": "{fact: backend, in: [cpu, openvino, mps, directml, zluda]}",
    "torchao.float8dq.hardware": """
        any:
          - all: [{fact: gpu.vendor, is: nvidia}, {fact: gpu.cuda_cc, lt: "8.9"}]
          - {fact: backend, in: [cpu, openvino, mps, directml, zluda]}
          - all: [{fact: backend, is: rocm}, {fact: gpu.gfx, not_in: [gfx942, gfx950]}]
    """,
    "bitsandbytes.diffusers.no-gpu": """
        any:
          - {fact: backend, in: [cpu, directml, openvino]}
          - all: [{fact: backend, is: mps}, {fact: packages.diffusers, version: "<0.39"}]
          - all: [{fact: backend, is: xpu}, {fact: packages.diffusers, version: "<0.33"}]
    """,
    "sdnq.triton.missing": """
        all:
          - {fact: backend, in: [cuda, rocm, zluda, xpu]}
          - any: [{fact: triton.version, absent: true}, {fact: triton.works, is: false}]
    """,
    "sdnq.cpu.openvino": """
        all:
          - {fact: backend, in: [cpu, openvino]}
          - {fact: packages.openvino, absent: true}
    """,
}

_UNSET = object()  # the fact is missing: unknown
#: values of the other facts these rules read, on both sides of each rule's thresholds
_VALUES: dict[str, tuple[Any, ...]] = {
    "gpu.vendor": ("nvidia", "amd"),
    "gpu.cuda_cc": ("8.6", "9.0"),
    "gpu.gfx": ("gfx942", "gfx1100"),
    "packages.diffusers": ("0.32.2", "0.35.2", "0.42.1"),
    "triton.version": ("3.1.0",),
    "triton.works": (True, False),
    "packages.openvino": ("2026.2.1",),
}


def _leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Not):
        return _leaves(node.part)
    assert isinstance(node, All | Any_)
    return [leaf for part in node.parts for leaf in _leaves(part)]


def _machines(facts: set[str]) -> list[dict[str, Any]]:
    """Every backend (and none, and unknown) with every mix of the other facts read."""
    others = sorted(f for f in facts if not f.startswith("backend"))
    backends: list[dict[str, Any]] = [{"backend": b} for b in BACKENDS]
    backends += [{"backend": None}, {}]
    out = []
    for env, values in product(backends, product(*((*_VALUES[f], None, _UNSET) for f in others))):
        facts_here = facts_from_json(env)
        facts_here.update({f: v for f, v in zip(others, values, strict=True) if v is not _UNSET})
        out.append(facts_here)
    return out


@pytest.mark.parametrize("rule_id", sorted(OLD))
def test_a_rule_on_the_backends_table_holds_where_its_old_list_did(rule_id: str) -> None:
    rule = load_matrix(defaults=False).rule(rule_id)
    old, new = parse(yaml.safe_load(textwrap.dedent(OLD[rule_id]))), parse(rule.when)
    lists = [f.op for f in _leaves(new) if f.fact == "backend" and f.op in ("in", "not_in")]
    assert not lists, f"{rule_id} still names backends in a list"
    read = {leaf.fact for leaf in (*_leaves(old), *_leaves(new))}
    for facts in _machines(read):
        assert new.eval(facts, set()) is old.eval(facts, set()), (rule_id, facts)

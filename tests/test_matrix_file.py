"""matrix.yaml itself: every rule sourced and tested; overlays; malformed files named by line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from envs import H100_LINUX
from helpers import check, holding

from quantdoctor import Environment, MatrixError, Plan, evaluate, load_matrix
from quantdoctor.rules.matrix import BUILTIN, Matrix
from quantdoctor.rules.schema import Rule

TESTS = Path(__file__).parent


def test_every_rule_has_a_source_and_a_message() -> None:
    for rule in load_matrix(defaults=False).rules:
        assert rule.sources and all(s.strip() for s in rule.sources), rule.id
        assert rule.message.strip(), rule.id


def _examples() -> list[tuple[str, int]]:
    return [(r.id, i) for r in load_matrix(defaults=False).rules for i, _ in enumerate(r.examples)]


def _example_plan(rule: Rule, facets: dict[str, str], matrix: Matrix) -> Plan:
    """The example's plan: its facets, else the first the rule selects, else the defaults."""
    sel = rule.select
    engine = facets.get("engine") or (sel.engine or matrix.engine_names)[0]
    schemes = [s for s in matrix.engines[engine].schemes if not sel.scheme or s in sel.scheme]
    chosen = {"engine": engine, "scheme": schemes[0]}
    for facet in ("mode", "offload", "component", "dtype"):
        if getattr(sel, facet):
            chosen[facet] = getattr(sel, facet)[0]
    return Plan(**{**chosen, **facets})


@pytest.mark.parametrize(("rule_id", "index"), _examples())
def test_every_rule_example_gives_what_it_expects(rule_id: str, index: int) -> None:
    matrix = load_matrix(defaults=False)
    rule = matrix.rule(rule_id)
    example = rule.examples[index]
    plan = _example_plan(rule, example.plan, matrix)
    verdict = evaluate(plan, Environment.model_validate(example.env), matrix)
    if example.status is not None:
        assert verdict.status == example.status, verdict.summary()
    if example.finding is not None:
        states = {f.rule: f.state for f in verdict.findings}
        assert states.get(rule_id, "none") == example.finding, verdict.summary()


def test_every_rule_is_exercised_by_an_evaluation(request: pytest.FixtureRequest) -> None:
    """Runs last (conftest.py): every rule held in some evaluation of this session, or
    carries an example of its own. Needs the whole suite."""
    from conftest import EXERCISED

    collected = {Path(str(i.path)).name for i in request.session.items}
    if collected != {p.name for p in TESTS.glob("test_*.py")}:
        pytest.skip("needs the whole suite: the other files' evaluations count")
    matrix = load_matrix(defaults=False)
    # signature-only rules are never evaluated: explain's tests exercise them
    idle = [
        r.id
        for r in matrix.rules
        if r.id not in EXERCISED and not r.examples and not getattr(r, "signature_only", False)
    ]
    assert not idle, f"rules no evaluation exercised and no example shows: {idle}"


def test_every_block_rule_says_how_to_fix_it() -> None:
    for rule in load_matrix(defaults=False).rules:
        if rule.severity == "block":
            assert rule.fix.strip(), rule.id


def test_rule_ids_are_unique_in_the_builtin_file() -> None:
    ids = re.findall(r"^  - id: (\S+)", BUILTIN.read_text(encoding="utf-8"), re.M)
    assert len(ids) == len(set(ids))
    matrix = load_matrix(defaults=False)
    made = [f"{engine}.not-installed" for engine in matrix.engines]  # from the engines section
    written = [r.id for r in matrix.rules if not r.id.startswith("verified.")]
    assert sorted(written) == sorted({*ids, *made})  # the rest from the verified: section


def test_every_seed_quote_in_a_source_is_in_the_seed_document() -> None:
    seed = TESTS / "data" / "seed-quantization.md"  # the product documentation the rules start from

    def plain(t: str, link: str = r"\2") -> str:
        t = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", link, t)  # a markdown link: its URL or text
        return " ".join(re.sub(r"[`*]", "", t).split())

    raw = seed.read_text(encoding="utf-8")
    texts = (plain(raw), plain(raw, r"\1"))
    for rule in load_matrix(defaults=False).rules:
        for source in rule.sources:
            match = re.match(r'seed: "(.*)"$', source)
            if match:
                for piece in match.group(1).split(" ... "):
                    assert any(plain(piece) in t for t in texts), (rule.id, piece)


# ---------------------------------------------------------------- overlays

OVERRIDE = """\
rules:
  - id: quanto.offload.balanced
    select: {engine: quanto, offload: balanced}
    severity: warn
    message: our patched accelerate keeps quanto tensors whole.
    fix: ""
    source: our fork
"""

NEW_RULE = """\
rules:
  - id: studio.no-fp4
    select: {engine: bitsandbytes, scheme: fp4}
    severity: block
    message: the studio's render farm does not allow fp4.
    fix: use nf4
    source: studio policy 12
"""

#: An engine whose schemes are GGML types (the table in quantdoctor/_ggml.py); ``{bad}``
#: is replaced by a scheme line.
GGML_FORK = """\
engines:
  fork:
    package: ggml-fork
    install: pip install ggml-fork
    schemes:
      Q4_K: {ggml: Q4_K}
      {bad}
rules: []
"""
#: Scheme lines the GGML type table refuses, and the error's text after the scheme's place.
GGML_REFUSED = {
    "Q8_0: {ggml: Q8_0, block_bytes: 32}": r"Q8_0: block_bytes: 32, but GGML type Q8_0 has 34",
    "Q9_0: {ggml: Q9_0}": r"Q9_0: ggml: 'Q9_0' is not a GGML type; valid values are F32",
}


def test_an_overlay_rule_with_an_existing_id_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "ours.yaml"
    path.write_text(OVERRIDE, encoding="utf-8")
    matrix = load_matrix(extra=path, defaults=False)
    verdict = evaluate(
        Plan(engine="quanto", scheme="qint8", offload="balanced"), H100_LINUX, matrix
    )
    assert verdict.status == "warn"
    assert [f.source for f in verdict.findings if f.rule == "quanto.offload.balanced"] == [
        "our fork"
    ]


def test_an_overlay_rule_with_a_new_id_adds_one() -> None:
    import yaml

    matrix = load_matrix(extra=yaml.safe_load(NEW_RULE), defaults=False)
    verdict = evaluate(Plan(engine="bitsandbytes", scheme="fp4"), H100_LINUX, matrix)
    assert verdict.status == "blocked"
    assert "studio.no-fp4" in holding(verdict)
    assert len(matrix.rules) == len(load_matrix(defaults=False).rules) + 1


def test_an_overlay_can_replace_a_rule_under_a_new_id(tmp_path: Path) -> None:
    text = OVERRIDE.replace("id: quanto.offload.balanced", "id: studio.quanto-balanced")
    text = text.replace("    select:", "    replaces: quanto.offload.balanced\n    select:")
    path = tmp_path / "ours.yaml"
    path.write_text(text, encoding="utf-8")
    matrix = load_matrix(extra=path, defaults=False)
    ids = {r.id for r in matrix.rules}
    assert "quanto.offload.balanced" not in ids and "studio.quanto-balanced" in ids


def test_overlays_come_from_the_env_var_and_the_user_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "matrix.yaml").write_text(NEW_RULE, encoding="utf-8")
    env_file = tmp_path / "env.yaml"
    env_file.write_text(OVERRIDE, encoding="utf-8")
    monkeypatch.setenv("QUANTDOCTOR_CONFIG_DIR", str(config))
    monkeypatch.setenv("QUANTDOCTOR_MATRIX", str(env_file))
    matrix = load_matrix()
    assert str(config / "matrix.yaml") in matrix.files and str(env_file) in matrix.files
    ids = {r.id for r in matrix.rules}
    assert "studio.no-fp4" in ids
    assert matrix.rule("quanto.offload.balanced").severity == "warn"


def test_an_overlay_engine_must_be_a_whole_section(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("engines:\n  quanto: {}\nrules: []\n", encoding="utf-8")
    with pytest.raises(MatrixError, match=r"bad\.yaml:\d+: engines\.quanto\.package"):
        load_matrix(extra=path, defaults=False)


def test_an_overlay_naming_an_unknown_scheme_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(NEW_RULE.replace("scheme: fp4", "scheme: fp5"), encoding="utf-8")
    with pytest.raises(MatrixError, match=r"'fp5' is not a scheme of bitsandbytes.*fp4"):
        load_matrix(extra=path, defaults=False)


# ---------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            NEW_RULE.replace("scheme: fp4}", "shceme: fp4}"),
            r"bad\.yaml:3: rules\[0\] \(studio\.no-fp4\)\.select\.shceme: unknown field; "
            r"valid values are .*\(did you mean scheme\?\)",
        ),
        (
            NEW_RULE.replace("severity: block", "severity: fatal"),
            r"bad\.yaml:4: rules\[0\] \(studio\.no-fp4\)\.severity: 'fatal' is not valid; "
            r"valid values are block, warn, info",
        ),
        (
            NEW_RULE.replace("    source: studio policy 12\n", ""),
            r"bad\.yaml:2: rules\[0\] \(studio\.no-fp4\)\.source: required field is missing",
        ),
        (
            NEW_RULE.replace("    severity:", "    when: {fact: gpu.cc, lt: 8}\n    severity:"),
            r"'gpu\.cc' is not a fact; valid values are .*\(did you mean gpu\.cuda_cc\?\)",
        ),
        (
            NEW_RULE.replace(
                "    severity:", "    when: {fact: torch.version, version: '>=2.x'}\n    severity:"
            ),
            r"'>=2\.x' is not a version specifier",
        ),
        *(
            (GGML_FORK.replace("{bad}", line), rf"bad\.yaml:7: engines\.fork\.schemes\.{error}")
            for line, error in GGML_REFUSED.items()
        ),
        ("rules: [\n", r"bad\.yaml:2: not valid YAML"),
        ("- just\n- a list\n", r"bad\.yaml:1: \(top\): expected a mapping"),
    ],
)
def test_a_malformed_overlay_is_named_by_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(MatrixError, match=expected):
        load_matrix(extra=path, defaults=False)
    assert path.read_bytes() == before


def test_an_overlay_engine_can_name_ggml_types(tmp_path: Path) -> None:
    path = tmp_path / "fork.yaml"
    path.write_text(GGML_FORK.replace("{bad}", "Q8_0: {ggml: Q8_0, bits: 8}"), encoding="utf-8")
    matrix = load_matrix(extra=path, defaults=False)
    assert matrix.scheme("fork", "Q8_0").block_bytes == 34
    assert matrix.engines["fork"].schemes["Q4_K"].api == "Q4_K"


def test_a_missing_overlay_file_is_named() -> None:
    with pytest.raises(MatrixError, match=r"nowhere\.yaml: no such file"):
        load_matrix(extra="/nowhere.yaml", defaults=False)


def test_a_verdict_names_the_rule_and_its_source() -> None:
    verdict = check(H100_LINUX, "quanto", "qint8", offload="balanced")
    finding = next(f for f in verdict.findings if f.rule == "quanto.offload.balanced")
    assert "seed:" in finding.source and "evidence/" in finding.source


def test_an_overlay_rule_whose_source_is_blank_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(NEW_RULE.replace("source: studio policy 12", 'source: "   "'), encoding="utf-8")
    with pytest.raises(MatrixError, match=r"source: every rule needs a source"):
        load_matrix(extra=path, defaults=False)


def test_every_file_a_source_cites_is_in_the_repository() -> None:
    """Sources resolve from a checkout: the fact sheets (a bare ``NAME.md``) and evidence
    under docs/reference/, results under benchmarks/results/, tests under tests/; a
    signature's source too. Upstream files are cited after their package and version
    (``diffusers@0.42.1:src/...``, ``README.md@16153a26``, ``v0.40 docs quanto.md``)."""
    root = TESTS.parent
    local = re.compile(
        r"(?<![\w/@:.-])((?:evidence|benchmarks|tests|docs)/[\w./-]+\.(?:md|jsonl|json|py)"
        r"|(?<!docs )[\w.-]+\.md)(?![\w@])"
    )
    cited = set()
    for rule in load_matrix(defaults=False).rules:
        texts = [*rule.sources, *(s.source for s in rule.signatures)]
        for source in texts:
            cited |= set(local.findall(source))
    places = (root / "docs" / "reference", root)
    missing = [c for c in sorted(cited) if not any((p / c).is_file() for p in places)]
    assert len(cited) > 10 and not missing, missing


def test_every_mode_an_engine_lacks_is_blocked_by_a_rule_of_its_own() -> None:
    """A plan in a mode the engine's section does not list (auto_round after load, BFL
    while loading) is blocked, with a message that says what the engine does instead:
    never ``ok`` for want of a rule."""
    from envs import H100_LINUX
    from helpers import check

    from quantdoctor.rules.vocab import MODES

    matrix = load_matrix(defaults=False)
    installed = dict(H100_LINUX["packages"])
    installed.update({spec["package"]: "99.0" for spec in matrix.engine_data.values()})
    env = {**H100_LINUX, "packages": installed}
    for engine in matrix.engine_names:
        for mode in MODES:
            if mode in matrix.modes(engine):
                continue
            scheme = next(iter(matrix.scheme_names(engine)))
            verdict = check(env, engine, scheme, mode=mode)
            own = [
                f.rule
                for f in verdict.findings
                if f.severity == "block"
                and f.state == "holds"
                and f.rule.startswith(f"{engine}.mode.")
            ]
            assert verdict.status == "blocked" and own, (engine, mode, verdict.status)

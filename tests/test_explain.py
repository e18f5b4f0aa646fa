"""explain: a pasted error message or whole traceback names the rule, the cause and the fix.

The tracebacks are real (tests/corpus/tracebacks, each re-made by capture.py from the
program in its .cmd file); the known error texts and their sources are in
tests/corpus/error_texts.yaml. Variants (ANSI colours, Windows paths and line endings,
chained exceptions) are made from the real ones the way terminals and consoles show them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import traceback
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantdoctor.rules.evaluate import default_matrix
from quantdoctor.rules.explain import clean, explain, explain_rules
from quantdoctor.rules.schema import Rule

CORPUS = Path(__file__).parent / "corpus"
TRACEBACKS = CORPUS / "tracebacks"


@cache
def known() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CORPUS / "error_texts.yaml").read_text())
    return data


def rule(rule_id: str) -> Rule:
    return default_matrix().rule(rule_id)


def sources(r: Rule) -> str:
    own = r.source if isinstance(r.source, str) else " ".join(r.source)
    return " ".join([own, *(s.source for s in r.signatures)])


def _real(name: str) -> str:
    return (TRACEBACKS / name).read_text(encoding="utf-8")


def best(text: str) -> str | None:
    found = explain(text)
    return found[0].rule if found else None


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", "explain", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


# ------------------------------------------------------------- the real tracebacks


def test_every_traceback_in_the_corpus_has_an_expected_rule() -> None:
    assert {p.name for p in TRACEBACKS.glob("*.txt")} == set(known()["tracebacks"])


@pytest.mark.parametrize("name", sorted(known()["tracebacks"]))
def test_a_real_traceback_is_explained_by_its_rule_first(name: str) -> None:
    found = explain((TRACEBACKS / name).read_text(encoding="utf-8"))
    assert found, f"{name}: no rule matched"
    assert found[0].rule == known()["tracebacks"][name], [m.rule for m in found]
    assert found[0].final, "the match lies in the exception that was raised"


# ----------------------------------------------- every known error text has its rule


def _known_texts() -> list[tuple[str, str, str]]:
    """(rule id, text, where the text comes from) for every rule with a known error text."""
    out = [(t["rule"], t["text"], t["source"]) for t in known()["texts"]]
    out += [(r, _real(name), f"tracebacks/{name}") for name, r in known()["tracebacks"].items()]
    # the errors users posted (tests/data/explain_corpus.yaml), each with its thread's URL
    posted = yaml.safe_load((Path(__file__).parent / "data" / "explain_corpus.yaml").read_text())
    out += [(c["rule"], c["text"], c["url"]) for c in posted["cases"] if "text_title" not in c]
    codes: dict[str, list[str]] = known()["evidence"]
    for r in default_matrix().rules:
        for code, texts in codes.items():
            if re.search(rf"\b{code}\b", sources(r)):
                # a rule citing an evidence code must explain that code's text
                # (one of them: DEV reads differently for quanto and nncf)
                out.append((r.id, "\n".join(texts), f"evidence code {code}"))
        seed = r.source if isinstance(r.source, str) else " ".join(r.source)
        for quoted in re.findall(r'seed: "[^"]*?> Error: ([^"]+)"', seed):
            out.append((r.id, quoted, "seed (quoted in the rule's source)"))
    return out


@pytest.mark.parametrize(
    ("rule_id", "text", "source"),
    [pytest.param(*t, id=f"{t[0]}:{t[2][:40]}") for t in _known_texts()],
)
def test_a_rule_with_a_known_error_text_has_a_signature_that_matches_it(
    rule_id: str, text: str, source: str
) -> None:
    r = rule(rule_id)
    cleaned = clean(text)
    hit = [sig for sig in r.signatures if re.search(sig.pattern, cleaned, re.MULTILINE)]
    assert hit, f"{rule_id}: no signature matches {source}"
    if not any(sig.generic for sig in hit):
        # a specific text names its rule from the text alone
        assert rule_id in [m.rule for m in explain_rules(text, [r])]


def test_every_block_rule_with_a_known_error_text_is_covered() -> None:
    covered = {rule_id for rule_id, _, _ in _known_texts()}
    missing = [
        r.id
        for r in default_matrix().rules
        if r.severity == "block" and r.signatures and r.id not in covered
    ]
    # a block rule with signatures but no recorded text: its signatures are untested
    assert not missing, f"add their texts to tests/corpus/error_texts.yaml: {missing}"


def test_evidence_codes_cited_by_rules_are_in_the_corpus() -> None:
    cited = set()
    for r in default_matrix().rules:
        cited |= set(re.findall(r"\(([A-Z][A-Z0-9]{2,})(?:@[LSF])?\)", sources(r)))
        cited |= set(re.findall(r"\b([A-Z][A-Z0-9]{2,})@[LSF]\b", sources(r)))
    assert cited <= set(known()["evidence"]), cited - set(known()["evidence"])


# ----------------------------------------------------------- how tracebacks arrive


def _colour(text: str) -> str:
    """As a coloured terminal shows it: Python 3.13's traceback colours, rich's frames."""
    out = []
    for line in text.splitlines():
        if line.startswith("  File "):
            out.append(f"\x1b[35m{line}\x1b[0m")
        elif re.match(r"^[\w.]+(Error|Exception):", line):
            name, _, msg = line.partition(": ")
            out.append(f"\x1b[1;35m{name}\x1b[0m: \x1b[35m{msg}\x1b[0m")
        else:
            out.append(line)
    return "\n".join(out)


def _windows(text: str) -> str:
    """As a Windows console pastes it: backslash paths under a drive, CRLF endings."""
    text = re.sub(
        r'File "(/[^"]*)"',
        lambda m: (
            'File "C:\\Users\\me\\sd\\venv\\Lib'
            + m.group(1).split("/lib/python3.11", 1)[-1].replace("/", "\\")
            + '"'
        ),
        text,
    )
    return text.replace("\n", "\r\n")


@pytest.mark.parametrize(
    "name", ["real-quanto-accelerate-cpu-offload.txt", "real-nncf-torch-nf4.txt"]
)
def test_ansi_colours_do_not_hide_the_error(name: str) -> None:
    coloured = _colour(_real(name))
    assert "\x1b[" in coloured and "\x1b" not in clean(coloured)
    assert best(coloured) == known()["tracebacks"][name]


@pytest.mark.parametrize("name", ["real-diffusers-bnb-no-gpu.txt", "real-torchao-int4-mslk.txt"])
def test_windows_paths_and_line_endings_do_not_hide_the_error(name: str) -> None:
    pasted = _windows(_real(name))
    assert "C:\\Users" in pasted and "\r\n" in pasted
    assert best(pasted) == known()["tracebacks"][name]


def _kquant_error() -> NotImplementedError:
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    data = np.zeros((256, 256), dtype=np.float32)
    try:
        gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q4_K)
    except NotImplementedError as err:
        return err
    pytest.fail("gguf-py quantized Q4_K: the k-quant rule no longer holds")


def _format(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


def test_the_cause_of_a_chained_exception_is_explained() -> None:
    cause = _kquant_error()
    try:
        raise RuntimeError("could not load model.gguf") from cause
    except RuntimeError as err:
        text = _format(err)
    assert "direct cause of the following exception" in text
    found = explain(text)
    assert found[0].rule == "gguf.mode.post.k-quants"
    assert not found[0].final, "the wrapper raised last; the match is in its cause"


def test_an_error_raised_while_handling_another_ranks_the_final_one_first() -> None:
    first = _real("real-bnb-nf4-accelerate-cpu-offload.txt")
    try:
        raise _kquant_error()
    except NotImplementedError as err:
        final = _format(err)
    pasted = (
        f"{first}\nDuring handling of the above exception, another exception occurred:\n\n{final}"
    )
    rules = [m.rule for m in explain(pasted)]
    assert rules[0] == "gguf.mode.post.k-quants"
    assert "bitsandbytes.offload.sequential" in rules


def test_a_bare_message_without_a_traceback_is_explained() -> None:
    assert best("Requires mslk >= 1.0.0") == "torchao.int4wo.mslk"


def test_text_no_rule_knows_matches_nothing() -> None:
    assert explain("ZeroDivisionError: division by zero") == []
    assert explain("") == []


# ---------------------------------------------------------------------------- CLI


def test_cli_explains_a_file_as_json_and_exits_0() -> None:
    path = TRACEBACKS / "real-quanto-accelerate-cpu-offload.txt"
    proc = cli("--file", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    matches = json.loads(proc.stdout)
    assert matches[0]["rule"] == "quanto.offload.balanced"
    # the keys of old stay; confidence and evidence come with them
    assert {"rule", "severity", "message", "fix", "source", "matched"} <= set(matches[0])
    assert matches[0]["confidence"] in ("high", "medium", "low")
    assert matches[0]["evidence"]
    assert matches[0]["fix"] == rule("quanto.offload.balanced").fix


def test_cli_reads_the_traceback_from_standard_input() -> None:
    proc = cli("-", stdin=_windows(_real("real-torchao-string-config.txt")))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "[torchao.mode.pre.config-objects]" in first
    assert f"fix: {rule('torchao.mode.pre.config-objects').fix}" in proc.stdout


def test_cli_takes_the_message_as_an_argument() -> None:
    proc = cli("RuntimeError: No GPU found. A GPU is needed for quantization.")
    assert proc.returncode == 0
    assert "[bitsandbytes.diffusers.no-gpu]" in proc.stdout


def test_cli_exits_1_when_nothing_matches() -> None:
    proc = cli("ZeroDivisionError: division by zero", "--json")
    assert (proc.returncode, json.loads(proc.stdout)) == (1, [])
    proc = cli("ZeroDivisionError: division by zero")
    assert proc.returncode == 1 and "Not a known quantization problem" in proc.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "give the error TEXT or --file F"),
        (("text", "--file", "x.txt"), "give the error TEXT or --file F"),
        (("--file", "no-such-file.txt"), "no-such-file.txt: no such file"),
        (("--file", str(TRACEBACKS)), "is a directory"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cli_refuses_a_file_too_large_to_be_an_error_text(tmp_path: Path) -> None:
    big = tmp_path / "huge.log"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    proc = cli("--file", str(big))
    assert proc.returncode == 2 and "too large" in proc.stderr


def test_a_pytest_failure_report_is_explained() -> None:
    report = (
        "    def test_load():\n"
        ">       quants.quantize(data, GGMLQuantizationType.Q4_K)\n"
        "E       NotImplementedError\n"
        "\n"
        ".venv/lib/python3.11/site-packages/gguf/quants.py:129: NotImplementedError\n"
    )
    assert best(report) == "gguf.mode.post.k-quants"


def test_an_ipython_traceback_is_explained() -> None:
    cell = (
        "---------------------------------------------------------------------------\n"
        "RuntimeError                              Traceback (most recent call last)\n"
        "Cell In[3], line 1\n"
        "----> 1 FluxTransformer2DModel.from_pretrained(d, quantization_config=config)\n"
        "\n"
        "File ~/venv/lib/python3.11/site-packages/diffusers/quantizers/bitsandbytes/"
        "bnb_quantizer.py:65, in BnB4BitDiffusersQuantizer.validate_environment(self)\n"
        "\n"
        "RuntimeError: No GPU found. A GPU is needed for quantization.\n"
    )
    assert best(cell) == "bitsandbytes.diffusers.no-gpu"

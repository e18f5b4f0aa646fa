"""The doctor report: built as data from the evaluator's verdicts, then rendered."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX, RX6800_ZLUDA, with_

from quantdoctor.advise.section import recommendation_section
from quantdoctor.doctor import report as report_module
from quantdoctor._printable import print_lines
from quantdoctor.doctor.report import build_report, render_env, render_report
from quantdoctor.rules.evaluate import evaluate_grid
from quantdoctor.rules.matrix import Matrix, load_matrix


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def report_for(env: dict[str, Any], matrix: Matrix, **kw: Any) -> dict[str, Any]:
    return build_report(env, evaluate_grid(env, matrix), matrix, **kw)


def engine(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in report["engines"] if e["engine"] == name)


def text_of(report: dict[str, Any], verbose: bool = False) -> str:
    out = io.StringIO()
    print_lines(render_report(report, verbose=verbose), out)
    return out.getvalue()


def test_a_machine_where_every_installed_engine_works_exits_0(matrix: Matrix) -> None:
    report = report_for(H100_LINUX, matrix)
    assert report["summary"]["exit_code"] == 0
    assert all(e["status"] == "works" for e in report["engines"] if e["installed"])
    assert "No issues found" in report["summary"]["text"]


def test_an_installed_engine_that_cannot_work_exits_1_and_is_named(matrix: Matrix) -> None:
    report = report_for(RX6800_ZLUDA, matrix)
    assert report["summary"]["exit_code"] == 1
    bnb = engine(report, "bitsandbytes")
    assert bnb["status"] == "blocked" and bnb["works"] == [] and bnb["blocked"]
    assert "bitsandbytes" in report["summary"]["text"].split("cannot work")[0]


def test_unknown_facts_that_leave_an_engine_undecided_exit_3(matrix: Matrix) -> None:
    env = copy.deepcopy(H100_LINUX)
    del env["gpus"], env["backend"]
    report = report_for(env, matrix)
    assert report["summary"]["exit_code"] == 3
    undecided = [e for e in report["engines"] if e["status"] == "unknown"]
    assert undecided and all(e["unknown"] for e in undecided)
    missing = {m for e in undecided for r in e["unknown"] for m in r["missing"]}
    assert {"backend", "gpu.cuda_cc"} <= missing


def test_an_engine_that_is_not_installed_fails_nothing_and_shows_how_to_install(
    matrix: Matrix,
) -> None:
    env = with_(H100_LINUX, packages={**H100_LINUX["packages"], "optimum-quanto": None})
    report = report_for(env, matrix)
    assert report["summary"]["exit_code"] == 0
    quanto = engine(report, "quanto")
    assert quanto["installed"] is False and "pip install" in quanto["install"]
    assert "not installed: quanto" in text_of(report)
    assert "install: pip install optimum-quanto" in text_of(report)


def test_engines_not_installed_get_one_install_command_per_kind_of_command(
    matrix: Matrix,
) -> None:
    # a machine with no engine: one pip command for the plain installs and one for the
    # upgrades (-U), each package once, in the matrix's order; another command as it is
    packages = {spec["package"]: None for spec in matrix.engine_data.values()}
    report = report_for(with_(H100_LINUX, packages=packages), matrix)
    absent = [e for e in report["engines"] if e["installed"] is False]
    assert len(absent) == len(matrix.engine_names)
    [line] = [line for line in render_report(report) if line and line[0][0] == "      install: "]
    plain = [e["install"].removeprefix("pip install ") for e in absent]
    upgrades = list(dict.fromkeys(w.removeprefix("-U ") for w in plain if w.startswith("-U ")))
    # a package the upgrades name with a version is not named bare as well (bfl's diffusers)
    versioned = {w.strip('"').partition(">")[0] for w in upgrades if ">" in w}
    upgrades = [w for w in upgrades if w not in versioned]
    plain = [w for w in plain if not w.startswith("-U ")]
    assert upgrades and len(plain) > 5
    assert line[1][0] == f"pip install {' '.join(plain)}; pip install -U {' '.join(upgrades)}"
    odd = [{"install": "pip install a"}, {"install": "conda install b"}, {"install": "pip install a"}]
    assert report_module._one_install(odd) == "pip install a; conda install b"


def test_a_package_named_bare_and_with_a_version_is_installed_once() -> None:
    # bfl asks for `pip install -U diffusers`, layerwise casting for "diffusers>=0.33"
    one = report_module._one_install
    bare, versioned = {"install": "pip install -U diffusers"}, {"install": 'pip install -U "diffusers>=0.33"'}
    assert one([bare, versioned]) == one([versioned, bare]) == 'pip install -U "diffusers>=0.33"'
    two = [{"install": "pip install 'a>=1'"}, {"install": "pip install a<3"}, {"install": "pip install A"}]
    assert one(two) == "pip install 'a>=1' a<3"  # pip takes both versions; the bare one adds nothing
    extras = [{"install": "pip install b"}, {"install": "pip install b[x]"}, {"install": "pip install c_d"}]
    assert one(extras) == "pip install b[x] c_d"


def test_whether_an_engine_is_installed_can_be_unknown(matrix: Matrix) -> None:
    env = copy.deepcopy(H100_LINUX)
    del env["packages"]["gguf"]
    report = report_for(env, matrix)
    assert engine(report, "gguf")["installed"] is None
    assert report["summary"]["exit_code"] == 3


def test_the_report_restates_no_rule_it_only_groups_the_evaluators_findings(
    matrix: Matrix,
) -> None:
    verdicts = evaluate_grid(RX6800_ZLUDA, matrix)
    report = build_report(RX6800_ZLUDA, verdicts, matrix)
    for e in report["engines"]:
        blocking = {
            f.rule
            for v in verdicts
            if v.plan.engine == e["engine"] and v.status == "blocked"
            for f in v.findings
            if f.severity == "block" and f.state == "holds"
        }
        assert {r["rule"] for r in e["blocked"]} == blocking
        for r in e["blocked"]:
            shown = {
                f.message for v in verdicts for f in v.findings if f.rule == r["rule"]
            }  # the evaluator's message, its facts filled in
            assert r["message"] in shown
        passing = sum(v.passes for v in verdicts if v.plan.engine == e["engine"])
        assert e["counts"]["works"] == passing


def test_a_cpu_torch_beside_an_nvidia_gpu_is_flagged_with_the_install_command(
    matrix: Matrix,
) -> None:
    env = with_(
        CPU_ONLY,
        gpus=copy.deepcopy(H100_LINUX["gpus"]),
    )
    report = report_for(env, matrix)
    backend = next(c for c in report["checks"] if c["check"] == "backend")
    assert backend["mark"] == "warn"
    assert "download.pytorch.org/whl/cu" in backend["fix"]


def test_no_torch_is_a_failed_check_with_a_fix(matrix: Matrix) -> None:
    env = with_(CPU_ONLY, torch=None, backend=None)
    torch = next(c for c in report_for(env, matrix)["checks"] if c["check"] == "torch")
    assert torch["mark"] == "fail" and "pip install torch" in torch["fix"]


def test_why_a_fact_is_unknown_is_shown_under_its_check(matrix: Matrix) -> None:
    env = copy.deepcopy(H100_LINUX)
    del env["gpus"], env["backend"]
    env["notes"] = {"gpus": "nvidia: nvidia-smi timed out after 2 s"}
    text = text_of(report_for(env, matrix))
    assert "[?] GPUs: unknown" in text
    assert "nvidia-smi timed out after 2 s" in text


def test_the_text_names_each_check_and_engine_with_its_mark(matrix: Matrix) -> None:
    report = report_for(RX6800_ZLUDA, matrix)
    lines = text_of(report).splitlines()
    assert lines[0].startswith("quantdoctor report")
    marked = "\n".join(lines).replace("\n    ", " ")  # a mark line with its wrapped lines
    for e in report["engines"]:
        assert any(e["engine"] in ln and ln.startswith("[") for ln in marked.splitlines()), e[
            "engine"
        ]
    assert "[✗] bitsandbytes" in "\n".join(lines)
    summary = next(i for i, ln in enumerate(lines) if ln.startswith("• "))
    assert report["summary"]["text"] in " ".join(" ".join(lines[summary:]).split())


def test_rule_ids_and_every_fact_appear_only_with_verbose(matrix: Matrix) -> None:
    report = report_for(RX6800_ZLUDA, matrix, verbose=True)
    rule = engine(report, "bitsandbytes")["blocked"][0]["rule"]
    assert f"[{rule}]" in text_of(report, verbose=True)
    assert "gpus[0].gfx" in text_of(report, verbose=True)
    assert f"[{rule}]" not in text_of(report, verbose=False)
    assert len(report["verdicts"]) == len(evaluate_grid(RX6800_ZLUDA, matrix))


def test_a_report_for_another_machine_says_whose_it_is(matrix: Matrix) -> None:
    report = report_for(H100_LINUX, matrix, source="h100.json")
    assert text_of(report).startswith("quantdoctor report for h100.json")


def test_plain_output_has_no_colour_codes_and_a_terminal_gets_them(matrix: Matrix) -> None:
    import os

    lines = render_report(report_for(RX6800_ZLUDA, matrix))
    assert "\x1b[" not in text_of(report_for(RX6800_ZLUDA, matrix))
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "w", encoding="utf-8") as tty:
        print_lines(lines, tty)
    os.set_blocking(primary, False)
    data = b""
    try:
        while chunk := os.read(primary, 65536):
            data += chunk
    except (BlockingIOError, OSError):
        pass
    os.close(primary)
    assert b"\x1b[" in data and b"bitsandbytes" in data


def test_env_text_lists_gpus_packages_and_why_facts_are_unknown() -> None:
    env = copy.deepcopy(H100_LINUX)
    env["notes"] = {"packages.nncf": "installed, but METADATA has no Version header"}
    out = io.StringIO()
    print_lines(render_env(env), out)
    text = out.getvalue()
    assert "NVIDIA H100 80GB HBM3 (compute capability 9.0, 79.6 GiB)" in text
    assert "bitsandbytes" in text and "0.50.2" in text
    assert "? packages.nncf" in text and "no Version header" in text


def test_the_recommendation_names_only_plans_that_pass_here(matrix: Matrix) -> None:
    verdicts = evaluate_grid(RX6800_ZLUDA, matrix)
    section = recommendation_section(RX6800_ZLUDA, verdicts, matrix)
    assert section is not None
    report = build_report(RX6800_ZLUDA, verdicts, matrix, extra=[section])
    (section,) = report["extra"]
    assert section["title"].startswith("Recommended") and section["items"]
    passing = {v.plan.label() for v in verdicts if v.passes}
    for item in section["items"]:
        label = item["text"].split(" (", 1)[0]
        assert label in passing, item["text"]
        assert not label.startswith("bitsandbytes")  # it cannot work on ZLUDA
    assert section["title"] + ":" in text_of(report)


def test_an_engine_with_unreadable_metadata_is_installed_but_undecided_with_a_fix(
    matrix: Matrix,
) -> None:
    env = copy.deepcopy(RX6800_ZLUDA)
    del env["packages"]["torchao"]
    env["notes"] = {"packages.torchao": "installed, but METADATA has no Version header"}
    report = report_for(env, matrix)
    text = text_of(report)
    assert "torchao: torchao is installed, but METADATA has no Version header" in text
    assert "pip install --force-reinstall --no-deps torchao" in text
    summary = report["summary"]["text"]
    assert "bitsandbytes cannot work" in summary and "torchao is undecided" in summary
    assert report["summary"]["exit_code"] == 1  # what is known to fail outranks the unknown

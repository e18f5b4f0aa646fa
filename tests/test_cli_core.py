"""`quantdoctor check | rules | matrix` as a user runs them: whole processes, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX, RTX2080_WINDOWS

FINDING_KEYS = {"rule", "severity", "message", "fix", "source"}
PLAN_KEYS = {"engine", "scheme", "mode", "offload", "component", "dtype"}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Any:
    def write(data: dict[str, Any], name: str = "env.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return str(path)

    return write


# ---------------------------------------------------------------- check


def test_check_exits_1_and_names_the_rule_when_blocked(env_file: Any) -> None:
    path = env_file(H100_LINUX)
    out = run("check", "--engine", "quanto", "--scheme", "qint8", "--offload", "balanced",
              "--env", path)
    assert out.returncode == 1, out.stderr
    assert "quanto.offload.balanced" in out.stdout
    assert "fix:" in out.stdout and "works instead" in out.stdout


def test_check_json_follows_the_contract(env_file: Any) -> None:
    path = env_file(H100_LINUX)
    out = run("check", "--engine", "quanto", "--scheme", "qint8", "--offload", "sequential",
              "--env", path, "--json")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert {"status", "plan", "findings", "alternatives"} <= set(data)
    assert data["status"] == "blocked"
    assert set(data["plan"]) == PLAN_KEYS
    assert data["plan"]["mode"] == "post"  # the default mode is shown as evaluated
    assert all(set(f) >= FINDING_KEYS for f in data["findings"])
    assert data["alternatives"] and all(set(p) == PLAN_KEYS for p in data["alternatives"])


def test_check_exits_0_when_ok_or_warn(env_file: Any) -> None:
    path = env_file(H100_LINUX)
    ok = run("check", "--engine", "torchao", "--scheme", "int8wo", "--env", path, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["status"] == "ok"
    warn = run("check", "--engine", "gguf", "--scheme", "Q4_K", "--env", path, "--json")
    assert warn.returncode == 0
    assert json.loads(warn.stdout)["status"] == "warn"


def test_check_exits_3_when_a_fact_is_unknown(env_file: Any) -> None:
    path = env_file({"os": "linux", "backend": "cuda"})
    out = run("check", "--engine", "bitsandbytes", "--scheme", "nf4", "--env", path, "--json")
    assert out.returncode == 3, out.stdout + out.stderr
    assert json.loads(out.stdout)["status"] == "unknown"


def test_check_takes_a_partial_environment(env_file: Any) -> None:
    path = env_file({"backend": "cpu", "torch": {"version": "2.13.0"},
                     "packages": {"torchao": "0.18.0", "diffusers": "0.42.1"}})
    out = run("check", "--engine", "torchao", "--scheme", "float8dq", "--env", path, "--json")
    assert out.returncode == 1
    assert "torchao.float8dq.hardware" in {f["rule"] for f in json.loads(out.stdout)["findings"]}


def test_every_alternative_of_a_blocked_check_passes_itself(env_file: Any) -> None:
    path = env_file(RTX2080_WINDOWS)
    out = run("check", "--engine", "torchao", "--scheme", "float8dq", "--env", path, "--json")
    alternatives = json.loads(out.stdout)["alternatives"]
    assert alternatives
    for plan in alternatives:
        args = [x for k, v in plan.items() for x in (f"--{k}", v)]
        again = run("check", *args, "--env", path, "--json")
        assert again.returncode == 0, (plan, again.stdout)


def test_check_reads_overlays_from_matrix_flag_and_env_var(env_file: Any, tmp_path: Path) -> None:
    overlay = tmp_path / "ours.yaml"
    overlay.write_text(
        "rules:\n  - id: studio.no-int8wo\n    select: {engine: torchao, scheme: int8wo}\n"
        "    severity: block\n    message: not here.\n    fix: use float8wo\n    source: policy\n",
        encoding="utf-8",
    )
    path = env_file(H100_LINUX)
    flag = run("check", "--engine", "torchao", "--scheme", "int8wo", "--env", path,
               "--matrix", str(overlay))
    assert flag.returncode == 1 and "studio.no-int8wo" in flag.stdout
    env = {**os.environ, "QUANTDOCTOR_MATRIX": str(overlay), "NO_COLOR": "1"}
    via_env = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "check", "--engine", "torchao", "--scheme",
         "int8wo", "--env", path],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert via_env.returncode == 1 and "studio.no-int8wo" in via_env.stdout


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--engine", "quant", "--scheme", "qint8"], "--engine: 'quant' is not valid; valid values"
         " are bitsandbytes, quanto, torchao, gguf, nncf, sdnq, nunchaku_lite, modelopt, bfl,"
         " auto_round, layerwise_casting (did you mean quanto?)"),
        (["--engine", "quanto", "--scheme", "qint9"], "did you mean qint8?"),
        (["--engine", "quanto", "--scheme", "nf4"], "nf4 is a bitsandbytes scheme"),
        (["--engine", "quanto", "--scheme", "qint8", "--offload", "balance"],
         "--offload: 'balance' is not valid; valid values are none, model, sequential, balanced,"
         " group (did you mean balanced?)"),
        (["--engine", "quanto", "--scheme", "qint8", "--mode", "during"], "--mode: 'during'"),
        (["--engine", "quanto", "--scheme", "qint8", "--component", "unet2"], "did you mean unet?"),
        (["--engine", "quanto", "--scheme", "qint8", "--dtype", "fp12"], "--dtype: 'fp12'"),
        (["--engine", "quanto"], "the following arguments are required: --scheme"),
        (["--engine", "quanto", "--scheme", "qint8", "--matrix", "/nope.yaml"],
         "--matrix /nope.yaml: no such file"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_them(
    args: list[str], expected: str, env_file: Any
) -> None:
    out = run("check", *args, "--env", env_file(H100_LINUX))
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"oss": "linux"}, "oss: unknown key; valid values are os,"),
        ({"torch": {"version": "2.x"}}, "torch.version: '2.x' is not a version"),
        ({"torch": {"verison": "2.5.1"}}, "did you mean version?"),
        ({"backend": "cuda12"}, "backend: 'cuda12' is not valid"),
        ({"gpus": [{"cuda_cc": "eight"}]}, "gpus.cuda_cc: 'eight' is not valid"),
        ({"packages": {"bitsandbytes": "new"}}, "packages.bitsandbytes: 'new' is not a version"),
        ([], "expected a JSON object"),
    ],
)
def test_a_bad_environment_file_exits_2_naming_the_file_and_field(
    content: Any, expected: str, env_file: Any
) -> None:
    path = env_file(content)
    out = run("check", "--engine", "quanto", "--scheme", "qint8", "--env", path)
    assert out.returncode == 2, out.stdout
    assert path in out.stderr and expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_an_unreadable_or_broken_environment_file_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"torch":', encoding="utf-8")
    for path, expected in [
        (str(broken), "not valid JSON"),
        (str(tmp_path / "missing.json"), "no such file"),
        (str(tmp_path), "is a directory"),
    ]:
        out = run("check", "--engine", "quanto", "--scheme", "qint8", "--env", path)
        assert out.returncode == 2 and expected in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_a_malformed_overlay_exits_2_with_file_and_line(tmp_path: Path, env_file: Any) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("rules:\n  - id: a.b\n    severity: fatal\n", encoding="utf-8")
    out = run("check", "--engine", "quanto", "--scheme", "qint8", "--env", env_file(H100_LINUX),
              "--matrix", str(overlay))
    assert out.returncode == 2
    assert f"{overlay}:3: rules[0] (a.b).severity: 'fatal' is not valid" in out.stderr


# ---------------------------------------------------------------- rules and matrix


def test_rules_lists_every_rule_with_its_source() -> None:
    out = run("rules", "--json")
    assert out.returncode == 0
    rules = json.loads(out.stdout)
    assert len(rules) > 90
    assert all(r["source"] for r in rules)
    ids = {r["id"] for r in rules}
    assert {"quanto.offload.balanced", "bitsandbytes.offload.sequential"} <= ids


def test_rules_filters_by_engine() -> None:
    out = run("rules", "--engine", "gguf", "--json")
    rules = json.loads(out.stdout)
    assert rules and all(not r["select"].get("engine") or "gguf" in r["select"]["engine"]
                         for r in rules)
    text = run("rules", "--engine", "gguf")
    assert "gguf.offload.sequential" in text.stdout
    assert run("rules", "--engine", "ggml").returncode == 2


def test_matrix_has_one_column_per_environment(env_file: Any) -> None:
    gpu = env_file(H100_LINUX, "h100.json")
    cpu = env_file(CPU_ONLY, "cpu.json")
    out = run("matrix", "--env", gpu, "--env", cpu, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    rows = data["rows"] if isinstance(data, dict) else data
    row = next(r for r in rows if r["plan"]["engine"] == "bitsandbytes"
               and r["plan"]["scheme"] == "nf4" and r["plan"]["offload"] == "sequential")
    assert set(row["status"].values()) == {"blocked"}
    row = next(r for r in rows if r["plan"]["engine"] == "torchao"
               and r["plan"]["scheme"] == "float8dq" and r["plan"]["offload"] == "none")
    assert list(row["status"].values()) == ["ok", "blocked"]
    text = run("matrix", "--env", gpu, "--env", cpu)
    assert "h100" in text.stdout and "cpu" in text.stdout


def test_matrix_covers_every_engine_scheme_and_offload(env_file: Any) -> None:
    out = run("matrix", "--env", env_file(H100_LINUX), "--json")
    data = json.loads(out.stdout)
    rows = data["rows"] if isinstance(data, dict) else data
    plans = {(r["plan"]["engine"], r["plan"]["scheme"], r["plan"]["offload"]) for r in rows}
    assert ("nncf", "int4_asym", "group") in plans and ("gguf", "Q2_K", "balanced") in plans
    assert len({p[2] for p in plans}) == 5


def test_matrix_shows_the_mode_asked_for_and_names_engines_without_it(env_file: Any) -> None:
    cpu = env_file(CPU_ONLY, "cpu.json")
    out = run("matrix", "--env", cpu, "--mode", "pre", "--engine", "bnb", "--engine", "gguf",
              "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert {(r["plan"]["engine"], r["plan"]["mode"]) for r in rows} == {("bitsandbytes", "pre")}
    assert len(rows) == 3 * 5  # nf4, fp4, int8 x every offload
    # diffusers' load-time bitsandbytes needs a GPU; applied after load it runs on the CPU
    nf4 = next(r for r in rows if r["plan"]["scheme"] == "nf4" and r["plan"]["offload"] == "none")
    assert nf4["status"] == {"cpu": "blocked"}
    assert "bitsandbytes.diffusers.no-gpu" in nf4["rules"]["cpu"]
    assert out.stderr == (
        "quantdoctor: gguf left out: it has no mode pre (its modes: post, prequantized)\n"
    )
    both = run("matrix", "--env", cpu, "--mode", "pre", "--mode", "post", "--engine", "quanto")
    modes = [line.split()[2] for line in both.stdout.splitlines()[1:]]
    assert both.stdout.splitlines()[0].split()[:4] == ["engine", "scheme", "mode", "offload"]
    assert modes == ["pre"] * 25 + ["post"] * 25
    bad = run("matrix", "--env", cpu, "--mode", "pree")
    assert bad.returncode == 2
    assert "--mode: 'pree' is not valid" in bad.stderr and "did you mean pre?" in bad.stderr
    none = run("matrix", "--env", cpu, "--mode", "pre", "--engine", "gguf", "--engine", "nncf")
    assert none.returncode == 2 and none.stdout == ""
    assert none.stderr == (
        "quantdoctor: error: --mode pre: none of the engines asked for has it "
        "(gguf has post, prequantized; nncf has post)\n"
    )


def test_evaluate_grid_takes_the_modes_too() -> None:
    from quantdoctor.errors import InvalidInputError
    from quantdoctor.rules.evaluate import evaluate_grid

    verdicts = evaluate_grid(CPU_ONLY, engines=["nncf", "quanto"], modes=["pre"])
    assert {(v.plan.engine, v.plan.mode) for v in verdicts} == {("quanto", "pre")}
    assert len(verdicts) == 5 * 5  # quanto's 5 schemes x every offload
    # without modes, each engine's default: post for nncf
    assert {v.plan.mode for v in evaluate_grid(CPU_ONLY, engines=["nncf"])} == {"post"}
    # the words people use, as the command takes them; a typo or a bare string is refused
    assert len(evaluate_grid(CPU_ONLY, engines=["quanto"], modes=["prequant"])) == 25
    with pytest.raises(InvalidInputError, match=r"modes: 'pree' is not valid.*did you mean pre"):
        evaluate_grid(CPU_ONLY, modes=["pree"])
    with pytest.raises(InvalidInputError, match=r"modes: expected a list, like \['pre'\]"):
        evaluate_grid(CPU_ONLY, modes="pre")
    # engines= the same way (before, a typo or a bare string silently selected nothing)
    assert len(evaluate_grid(CPU_ONLY, engines=["bnb"])) == 3 * 5
    with pytest.raises(InvalidInputError, match=r"engines: 'quant' is not valid.*mean quanto"):
        evaluate_grid(CPU_ONLY, engines=["quant"])
    with pytest.raises(InvalidInputError, match=r"engines: expected a list"):
        evaluate_grid(CPU_ONLY, engines="quanto")


def test_options_before_the_command_apply_to_it(env_file: Any) -> None:
    out = run("--json", "check", "--engine", "torchao", "--scheme", "int8wo",
              "--env", env_file(H100_LINUX))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "ok"


def test_a_misspelt_command_exits_2_with_a_suggestion() -> None:
    out = run("chek")
    assert out.returncode == 2
    assert "'chek' is not a command" in out.stderr and "did you mean check?" in out.stderr


def test_every_command_takes_the_words_people_use_for_an_option(env_file: Any) -> None:
    # rules/aliases.json: bnb is bitsandbytes, fp16 is float16, for every command
    cpu = env_file(CPU_ONLY)
    for alias, name in (
        (["rules", "--engine", "bnb"], ["rules", "--engine", "bitsandbytes"]),
        (
            ["matrix", "--engine", "bnb", "--env", cpu],
            ["matrix", "--engine", "bitsandbytes", "--env", cpu],
        ),
        (
            ["recommend", "--params", "12B", "--dtype", "fp16", "--env", cpu, "--json"],
            ["recommend", "--params", "12B", "--dtype", "float16", "--env", cpu, "--json"],
        ),
    ):
        said, meant = run(*alias), run(*name)
        assert (said.returncode, said.stdout) == (meant.returncode, meant.stdout), alias
        assert said.returncode != 2, said.stderr
    bad = run("rules", "--engine", "nosuch")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_explain_decides_on_the_machine_python_names() -> None:
    # without --env or --python the text alone decides; --python probes that interpreter,
    # and one that is not there is bad input, as for check
    text = "QBytesTensor.__new__() missing 5 required positional arguments"
    here = run("explain", "--python", sys.executable, text, "--json")
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout)[0]["rule"] == "quanto.offload.balanced"
    gone = run("explain", "--python", "/nonexistent/python3", text)
    assert gone.returncode == 2, gone.stdout
    assert "--python /nonexistent/python3" in gone.stderr and gone.stderr.count("\n") == 1


def test_a_mode_the_engine_does_not_have_is_blocked_with_what_it_does_instead(
    env_file: Any,
) -> None:
    # auto_round loads checkpoints (pre, prequantized), nunchaku_lite prequantized ones
    # only: a plan in another mode is blocked by the engine's own rule, never ok
    import quantdoctor
    from quantdoctor import Plan

    cpu = env_file(CPU_ONLY)
    done = run(
        "check", "--engine", "auto_round", "--scheme", "W4A16", "--mode", "post", "--env", cpu
    )
    assert done.returncode == 1 and "(auto_round.mode.post)" in done.stdout, done.stdout
    verdict = quantdoctor.evaluate(
        Plan(engine="nunchaku_lite", scheme="svdq_w4a4_int4", mode="post"), CPU_ONLY
    )
    assert "nunchaku_lite.mode.quantize" in {f.rule for f in verdict.findings}
    with pytest.raises(quantdoctor.InvalidInputError, match="carry their own quantization_config"):
        Plan(engine="nunchaku_lite", scheme="svdq_w4a4_int4").to_diffusers()

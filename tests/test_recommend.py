"""Specifications of ``quantdoctor recommend`` and its cost model.

Weight memory is checked against bytes real engines produce; rankings against the
machines of tests/envs.py; the CLI in real subprocesses.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX, RTX4090_LINUX

from quantdoctor.advise.recommend import (
    Layout,
    load_costs,
    parse_costs,
    rank_plans,
    recommend,
    scheme_bytes,
)
from quantdoctor.errors import InvalidInputError, MatrixError
from quantdoctor.rules.evaluate import default_matrix, evaluate
from quantdoctor.rules.models import Plan

ROOT = Path(__file__).resolve().parent.parent
FLUX_DEV = 12_000_000_000


def _env(base: dict[str, Any], memory_gb: float) -> dict[str, Any]:
    env = copy.deepcopy(base)
    env["gpus"][0]["memory_gb"] = memory_gb
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", "recommend", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


# ------------------------------------------------------------------ weight memory


def test_gguf_weight_memory_is_the_bytes_gguf_writes() -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    matrix = default_matrix()
    weights = np.random.default_rng(0).standard_normal((96, 512)).astype(np.float32)
    layout = Layout(linears=((96, 512, 1),))
    for scheme in ("Q8_0", "Q4_0", "Q4_1", "Q5_0"):
        real = gguf.quants.quantize(weights, gguf.GGMLQuantizationType[scheme]).nbytes
        predicted = scheme_bytes(matrix.engines["gguf"].schemes[scheme], layout)
        assert predicted == real, scheme


def test_bitsandbytes_nf4_weight_memory_is_the_packed_codes_and_absmax() -> None:
    torch = pytest.importorskip("torch")
    bnb = pytest.importorskip("bitsandbytes")
    weight = torch.randn(256, 384, dtype=torch.bfloat16)
    packed, state = bnb.functional.quantize_4bit(weight, quant_type="nf4", blocksize=64)
    real = packed.numel() * packed.element_size() + state.absmax.numel() * 4
    spec = default_matrix().engines["bitsandbytes"].schemes["nf4"]
    assert scheme_bytes(spec, Layout(linears=((256, 384, 1),))) == real


def test_a_layer_narrower_than_the_block_stays_in_bf16() -> None:
    spec = default_matrix().engines["gguf"].schemes["Q4_K"]  # blocks of 256
    narrow = Layout(linears=((1024, 64, 1),))
    assert scheme_bytes(spec, narrow) == 1024 * 64 * 2


def test_layout_from_a_module_counts_linears_and_the_rest() -> None:
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = torch.nn.Linear(64, 256)
            self.down = torch.nn.Linear(256, 64)
            self.norm = torch.nn.LayerNorm(64)

    model = torch.nn.Sequential(Block(), Block())
    layout = Layout.from_module(model, block_types=["Block"])
    assert layout.params == sum(p.numel() for p in model.parameters())
    assert layout.linears == ((64, 256, 2), (256, 64, 2))
    assert layout.largest_block_params == sum(p.numel() for p in model[0].parameters())


# ------------------------------------------------------------------ ranking


def test_every_recommended_plan_passes_the_rules_here() -> None:
    rec = recommend(RTX4090_LINUX, params=FLUX_DEV, vram_gb=8)
    assert rec.plans
    for e in rec.plans:
        assert evaluate(e.plan, RTX4090_LINUX).passes, e.plan.label()


def test_a_24gb_card_runs_a_12b_model_without_offload_and_not_a_20b_one_in_bf16() -> None:
    rec = recommend(RTX4090_LINUX, params=FLUX_DEV)
    assert rec.best is not None and rec.best.fits and rec.best.plan.offload == "none"
    big = recommend(RTX4090_LINUX, params=20_000_000_000)
    assert big.baseline is not None and big.baseline.fits is False
    assert big.best is not None and big.best.fits and big.best.plan.offload == "none"


def test_an_8gb_card_runs_a_12b_model_in_4bit_without_offload() -> None:
    rec = recommend(_env(RTX4090_LINUX, 8.0), params=FLUX_DEV)
    best = rec.best
    assert best is not None and best.fits and best.plan.offload == "none"
    assert default_matrix().engines[best.plan.engine].schemes[best.plan.scheme].bits == 4
    # quanto fails under balanced, group and sequential offload: its 8-bit cannot fit
    assert "quanto" in {e.plan.engine for e in rec.does_not_fit}


def test_a_6gb_card_needs_offload_for_a_12b_model() -> None:
    rec = recommend(_env(RTX4090_LINUX, 6.0), params=FLUX_DEV)
    assert rec.best is not None and rec.best.plan.offload != "none"
    for e in rec.plans:
        assert e.fits is not False
        assert evaluate(e.plan, RTX4090_LINUX).passes
    assert {e.plan.engine for e in rec.does_not_fit} == {"quanto"}


def test_prefer_quality_puts_the_lowest_measured_error_first() -> None:
    rec = recommend(H100_LINUX, params=FLUX_DEV, prefer="quality")
    errors = [e.error for e in rec.plans if e.error is not None]
    assert rec.best is not None and rec.best.error == min(errors)


def test_prefer_memory_puts_the_smallest_peak_first() -> None:
    rec = recommend(H100_LINUX, params=FLUX_DEV, prefer="memory")
    peaks = [e.peak_gb for e in rec.plans if e.peak_gb is not None]
    assert rec.best is not None and rec.best.peak_gb == min(peaks)


def test_prefer_speed_puts_the_fastest_measured_plan_first_on_the_h100() -> None:
    rec = recommend(H100_LINUX, params=450_000_000)
    speeds = [e.speed for e in rec.plans if e.speed is not None]
    assert rec.best is not None and rec.best.speed is not None
    assert rec.best.speed >= max(speeds) / 1.05  # within the 5% counted as a tie


def test_speed_comes_from_the_measured_table_with_its_source() -> None:
    rec = recommend(H100_LINUX, params=450_000_000)
    nf4 = next(e for e in rec.plans if (e.plan.engine, e.plan.scheme) == ("bitsandbytes", "nf4"))
    assert nf4.speed == 0.86
    assert "gpu-anchor-2026-11-24-h100.md" in nf4.speed_source


def test_on_an_unmeasured_gpu_class_the_speed_names_where_it_was_measured() -> None:
    rec = recommend(RTX4090_LINUX, params=FLUX_DEV)
    assert rec.gpu_class == "ada"
    assert any("not measured on ada" in n for n in rec.notes)
    assert rec.best is not None and "measured on hopper" in rec.best.speed_source


def test_a_scheme_never_measured_has_no_speed_and_no_error() -> None:
    rec = recommend(H100_LINUX, params=FLUX_DEV)
    q5k = next(e for e in rec.plans if e.plan.scheme == "Q5_K")
    assert q5k.speed is None and q5k.error is None
    assert q5k.error_source == "not measured"


def test_rank_plans_puts_plans_that_fit_before_faster_ones_that_do_not() -> None:
    layout = Layout.from_params(FLUX_DEV)
    plans = [Plan(engine="torchao", scheme="int8wo"), Plan(engine="bitsandbytes", scheme="nf4")]
    ranked = rank_plans(plans, H100_LINUX, layout=layout, vram_gb=12)
    assert [p.scheme for p in ranked] == ["nf4", "int8wo"]
    ranked = rank_plans(plans, H100_LINUX, layout=layout, vram_gb=80, prefer="quality")
    assert [p.scheme for p in ranked] == ["int8wo", "nf4"]


def test_bad_prefer_is_an_error_naming_the_valid_values() -> None:
    with pytest.raises(InvalidInputError, match="speed, memory, quality"):
        recommend(H100_LINUX, params=FLUX_DEV, prefer="fast")


# ------------------------------------------------------------------ costs.yaml


def test_every_cost_names_a_scheme_of_the_matrix() -> None:
    costs, matrix = load_costs(), default_matrix()
    keys = set(costs.error) | set(costs.workspace)
    for table in costs.speed.values():
        for tables in table.values():
            for _, values in tables:
                keys |= set(values)
    for key in keys:
        engine, scheme, *mode = key.split(".")
        assert scheme in matrix.engines[engine].schemes, key
        assert not mode or mode[0] in matrix.engines[engine].modes, key


def test_every_measurement_names_its_evidence() -> None:
    costs = load_costs()
    for table in costs.speed.values():
        for tables in table.values():
            for source, _ in tables:
                where = "evidence/" in source or "benchmarks/results/" in source
                assert where and "table" in source
    for m in costs.error.values():
        # an evidence file, a run saved under benchmarks/results/ (sdnq-h200.md), or exact
        assert (
            "evidence/" in m.source
            or "benchmarks/results/" in m.source
            or m.source.startswith("exact")
        )


def test_a_cost_model_with_a_bad_number_names_the_field() -> None:
    data = {
        "reserve_gb": {"value": 0.6, "source": "x"},
        "activation_fraction": {"value": 0.1, "source": "x"},
        "speed": [
            {"gpu": "hopper", "workload": "large", "source": "x", "values": {"quanto.qint8": "fast"}}
        ],
    }
    with pytest.raises(MatrixError, match=r"speed\[0\]\.values\.quanto\.qint8"):
        parse_costs(data)


# ------------------------------------------------------------------ the command


def test_cli_json_ranks_plans_and_exits_0_when_one_fits(tmp_path: Path) -> None:
    env = tmp_path / "env.json"
    env.write_text(json.dumps(RTX4090_LINUX))
    done = _cli("--env", str(env), "--params", "12B", "--vram", "8", "--json", "--top", "3")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["plans"]) == 3
    assert out["best"] == out["plans"][0]
    assert {"weight_gb", "peak_gb", "relative_speed", "relative_error", "offload"} <= set(
        out["best"]
    )


def test_cli_text_shows_the_ranked_plans_and_whether_bf16_fits(tmp_path: Path) -> None:
    env = tmp_path / "env.json"
    env.write_text(json.dumps(RTX4090_LINUX))
    done = _cli("--env", str(env), "--params", "2.6B", "--top", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[:2] == ["#", "plan"]
    assert lines[2].split()[0] == "1" and lines[3].split()[0] == "2"
    assert "unquantized bf16" in done.stdout and "fits" in done.stdout


def test_cli_exits_1_when_nothing_passes(tmp_path: Path) -> None:
    env = tmp_path / "env.json"
    env.write_text(json.dumps({**CPU_ONLY, "torch": None}))
    done = _cli("--env", str(env), "--params", "1B", "--json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["plans"] == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--prefer", "fastest"], "--prefer"),
        (["--vram", "-3"], "--vram"),
        (["--params", "many"], "--params"),
        (["--model", "/no/such/file.safetensors"], "/no/such/file.safetensors"),
    ],
)
def test_cli_bad_input_is_one_line_naming_the_argument(args: list[str], named: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2
    assert named in done.stderr and "Traceback" not in done.stderr


def test_model_size_comes_from_the_file_header(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    np = pytest.importorskip("numpy")
    path = tmp_path / "model.safetensors"
    tensors = {
        "blocks.0.ff.weight": np.zeros((3072, 768), dtype=np.float16),
        "blocks.0.ff.bias": np.zeros((3072,), dtype=np.float16),
    }
    st.save_file(tensors, str(path))
    rec = recommend(H100_LINUX, model=path)
    assert rec.model["params"] == 3072 * 768 + 3072
    assert rec.best is not None and rec.best.weight_gb is not None


def test_a_prequantized_file_is_recommended_as_it_is_stored(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "flux-q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), "flux")
    weight = np.random.default_rng(0).standard_normal((3072, 3072)).astype(np.float32)
    q8 = gguf.quants.quantize(weight, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor(
        "double_blocks.0.img_attn.qkv.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0
    )
    writer.add_tensor("double_blocks.0.img_attn.qkv.bias", np.zeros(3072, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    rec = recommend(H100_LINUX, model=path)
    assert {(e.plan.engine, e.plan.scheme, e.plan.mode) for e in rec.plans} == {
        ("gguf", "Q8_0", "prequantized")
    }
    assert rec.best is not None and rec.best.weight_gb is not None
    assert rec.best.weight_gb * 2**30 == q8.nbytes + 3072 * 4


def test_recommend_imports_no_torch() -> None:
    code = (
        "import sys, json; sys.path.insert(0, 'tests'); from envs import H100_LINUX; "
        "import quantdoctor; quantdoctor.recommend(H100_LINUX, params=10**9); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'bitsandbytes', 'optimum', 'torchao', 'nncf', 'gguf', 'rich'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_an_overlays_costs_section_is_merged_over_costs_yaml(tmp_path: Path) -> None:
    from quantdoctor.rules.matrix import load_matrix

    overlay = tmp_path / "costs.yaml"
    overlay.write_text(
        "costs:\n"
        "  speed:\n"
        "    - gpu: hopper\n"
        "      workload: large\n"
        "      source: my own run\n"
        "      values: {bitsandbytes.nf4: 2.5}\n",
        encoding="utf-8",
    )
    matrix = load_matrix(extra=str(overlay), defaults=False)
    costs = load_costs(matrix=matrix)
    assert costs.speed_of(("bitsandbytes.nf4",), "hopper", None).value == 2.5
    assert costs.speed_of(("bitsandbytes.fp4",), "hopper", None).value == 0.87  # the rest stays
    rec = recommend(H100_LINUX, params=450_000_000, matrix=matrix)
    assert rec.best is not None and (rec.best.plan.engine, rec.best.plan.scheme) == (
        "bitsandbytes",
        "nf4",
    )
    assert rec.best.speed_source.startswith("my own run")


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("speed: [{gpu: hopper, source: x, values: {quanto.qint9: 1.0}}]", "quanto.qint9"),
        ("speed: [{gpu: hopper, source: x, values: {quanto.qint8: -1}}]", ">= 0"),
        ("speed: [{gpu: hopper, source: x, values: {quanto.qint8: .inf}}]", "finite"),
        ("speed: [{gpu: hopper, source: x, values: {quanto.qint8: .nan}}]", "finite"),
        ("reserve_gb: {value: .inf, source: x}", "reserve_gb"),
        ("reserve: {value: 1}", "reserve"),
        ("gpu_classes: [{class: big, when: {fact: gpu.nope, ge: 1}}]", "gpu.nope"),
        ("offload_speed: [{gpu: hopper, source: x, values: {fast: 1.0}}]", "fast"),
    ],
)
def test_a_bad_costs_section_in_an_overlay_is_refused_naming_it(
    tmp_path: Path, section: str, problem: str
) -> None:
    from quantdoctor.rules.matrix import load_matrix

    overlay = tmp_path / "bad.yaml"
    overlay.write_text("costs:\n  " + section + "\n", encoding="utf-8")
    with pytest.raises(MatrixError, match="bad.yaml") as err:
        load_matrix(extra=str(overlay), defaults=False)
    assert problem in str(err.value)


def test_the_speed_step_is_the_5_percent_logarithm() -> None:
    import math
    import random

    from quantdoctor.advise.recommend import _speed_step

    rng = random.Random(17)
    speeds = [1.0, 1.05, 0.95, 0.5, 2.0, 1e-6, 1e6] + [
        math.exp(rng.uniform(-15, 15)) for _ in range(20000)
    ]
    for speed in speeds:
        assert _speed_step(speed) == round(math.log(speed) / math.log(1.05)), speed
    assert _speed_step(1e300) == 400 and _speed_step(1e-300) == -400  # clamped

"""recommend as a new user types it: counts in any common spelling, implausible ones
refused, --vram on a machine without a GPU, pre mode where post would not fit, and a
table that says what its columns and marks mean."""

from __future__ import annotations

import argparse

import pytest
from envs import CPU_ONLY, RTX4090_LINUX

from quantdoctor.advise.recommend import recommend
from quantdoctor.cli import main
from quantdoctor.cli.common import param_count as _count


def test_params_take_12b_12e9_and_1_2e10() -> None:
    assert _count("12B") == _count("12e9") == _count("12b") == 12_000_000_000
    assert _count("1.2e10") == 12_000_000_000
    assert _count("450M") == 450_000_000


@pytest.mark.parametrize("text", ["12", "0.5", "3e20", "999"])
def test_implausible_params_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        _count(text)
    assert "not a model's size" in str(err.value)


def test_params_12_suggests_12b(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["recommend", "--params", "12"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean 12B?" in err and err.count("\n") == 1


def test_vram_without_a_gpu_does_not_rank_by_cpu_speeds() -> None:
    rec = recommend(CPU_ONLY, params=12_000_000_000, vram_gb=16)
    assert any("no GPU here" in n for n in rec.notes)
    cpu = recommend(CPU_ONLY, params=12_000_000_000)
    assert [e.speed_source for e in rec.plans] != [e.speed_source for e in cpu.plans]
    assert all("cpu" not in e.speed_source.split(":")[0] for e in rec.plans if e.speed)


def test_pre_mode_is_offered_where_post_would_load_past_the_memory() -> None:
    # 12B in bf16 is 22 GiB: post mode loads that first, which a 16 GiB card cannot
    rec = recommend(RTX4090_LINUX, params=12_000_000_000, vram_gb=16)
    for e in rec.plans:
        if e.plan.mode == "post" and e.plan.offload == "none":
            assert e.peak_gb is not None and e.peak_gb <= 16
    assert any(e.plan.mode == "pre" and e.plan.offload == "none" for e in rec.plans)


def test_the_table_explains_its_error_column_and_marks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--params", "12B"]) in (0, 1, 3)
    out = " ".join(capsys.readouterr().out.split())
    for words in ("error: relative L2 error", "!: works with a caveat", "within 5%"):
        assert words in out

"""The public surface: ``from quantdoctor import ...`` gives the documented objects."""

from __future__ import annotations

import subprocess
import sys

import quantdoctor

DESIGN_NAMES = (
    "Plan Environment Verdict probe evaluate preflight guard quantize "
    "IncompatiblePlanError QuantDoctorError"
).split()


def test_the_names_design_promises_are_public() -> None:
    assert set(DESIGN_NAMES) <= set(quantdoctor.__all__)
    for name in DESIGN_NAMES:
        assert getattr(quantdoctor, name) is not None


def test_guard_and_recommend_stay_functions_after_their_modules_are_imported() -> None:
    code = (
        "import quantdoctor, types\n"
        "quantdoctor.preflight\n"
        "import quantdoctor.recommend\n"
        "from quantdoctor.guard import preflight\n"
        "assert not isinstance(quantdoctor.guard, types.ModuleType), quantdoctor.guard\n"
        "assert callable(quantdoctor.recommend) and callable(quantdoctor.guard)\n"
        "assert quantdoctor.guard is sys.modules['quantdoctor.guard'].guard\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_import_quantdoctor_loads_no_torch_no_engine_no_rich_no_pydantic() -> None:
    code = (
        "import sys, quantdoctor\n"
        "heavy = {'torch', 'rich', 'pydantic', 'yaml', 'bitsandbytes', 'optimum', 'torchao',"
        " 'gguf', 'nncf', 'diffusers', 'numpy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

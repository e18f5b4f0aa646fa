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


def test_no_module_shares_a_name_with_a_public_name() -> None:
    """A submodule named like a public function would bind over it once imported."""
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(quantdoctor.__path__)}
    assert not modules & set(quantdoctor.__all__)


def test_public_functions_stay_functions_after_every_module_is_imported() -> None:
    code = (
        "import importlib, pkgutil, types, quantdoctor\n"
        "for m in pkgutil.walk_packages(quantdoctor.__path__, 'quantdoctor.'):\n"
        "    if not m.name.startswith('quantdoctor.testing'):\n"
        "        importlib.import_module(m.name)\n"
        "for name in quantdoctor.__all__:\n"
        "    assert not isinstance(getattr(quantdoctor, name), types.ModuleType), name\n"
        "assert callable(quantdoctor.recommend) and callable(quantdoctor.guard)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
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


def test_dir_lists_each_public_name_once_after_it_loaded() -> None:
    assert quantdoctor.Plan is not None and quantdoctor.evaluate is not None
    names = dir(quantdoctor)
    assert len(names) == len(set(names)) and {"Plan", "evaluate"} <= set(names)

"""Engines: apply a plan that ``rules/`` allows, through the engine itself.

The registry is the matrix: each engine in its ``engines:`` section (built-in or from an
overlay) names its module (``module:``, default ``quantdoctor.engines.<name>``), and the
module provides what only code can (see ``engines.base``): ``ADAPTER``, the class that
applies a plan; optionally ``diffusers_config(plan, spec)``, the diffusers quantization
config; optionally ``fingerprint`` and ``scheme_from_config``, how ``detect`` recognises
the engine's files (see ``engines.base``).

Import-light: nothing here imports torch or an engine until ``quantize`` is called.
"""

from __future__ import annotations

from types import ModuleType

from quantdoctor import _module
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    import torch

    from quantdoctor.engines.base import Adapter
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Environment, Plan

__all__ = ["get_adapter", "load_gguf", "module_for", "quantize", "save_gguf", "to_diffusers"]


def _matrix(matrix: Matrix | None) -> Matrix:
    if matrix is not None:
        return matrix
    from quantdoctor.rules.evaluate import default_matrix

    return default_matrix()


def module_for(engine: str, matrix: Matrix | None = None) -> ModuleType:
    """The module of ``engine`` that its matrix section names (imported now; the module
    imports its engine only when asked to apply a plan)."""
    m = _matrix(matrix)
    spec = m.engines.get(engine)
    if spec is None:
        from quantdoctor.rules.vocab import suggest

        raise InvalidInputError(f"engine: {engine!r} is not valid; {suggest(engine, m.engines)}")
    name = spec.module_name(engine)
    try:
        module: ModuleType = _module(name)
    except ImportError as err:
        raise InvalidInputError(
            f"engines.{engine}.module: {name!r} cannot be imported ({err})"
        ) from None
    return module


def get_adapter(engine: str, matrix: Matrix | None = None) -> Adapter:
    """The adapter for ``engine`` (its module is imported now, its engine on ``apply``)."""
    m = _matrix(matrix)
    module = module_for(engine, m)
    adapter_class = getattr(module, "ADAPTER", None)
    if adapter_class is None:
        raise InvalidInputError(
            f"engine: {engine!r} has no adapter ({module.__name__} defines no ADAPTER)"
        )
    adapter: Adapter = adapter_class(m.engines[engine])
    return adapter


def to_diffusers(plan: Plan, matrix: Matrix | None = None) -> Any:
    """The ``diffusers`` quantization config object for ``plan`` (mode "pre", or a
    prequantized file's loader config), built by the engine's module; ``InvalidInputError``
    for a plan in mode "post" and where diffusers has none for the engine."""
    if plan.mode == "post":
        raise InvalidInputError(
            "mode: to_diffusers() builds the config that quantizes while loading (mode 'pre'); "
            "a plan in mode 'post' is applied to the loaded model by quantdoctor.quantize"
        )
    m = _matrix(matrix)
    plan = m.check_plan(plan)
    build = getattr(module_for(plan.engine, m), "diffusers_config", None)
    if build is None:
        if "post" not in m.modes(plan.engine):
            raise InvalidInputError(
                f"engine: quantdoctor builds no diffusers config for {plan.engine}: its "
                "checkpoints carry their own quantization_config, which from_pretrained reads"
            )
        raise InvalidInputError(
            f"engine: diffusers has no quantization config for {plan.engine}; load the model "
            "unquantized and apply the plan after load with quantdoctor.quantize(model, plan, "
            "example_input=...) (mode 'post')"
        )
    return build(plan, m.engines[plan.engine])


def _check_mode(plan: Plan) -> None:
    if plan.mode == "post":
        return
    if plan.mode == "pre":
        raise InvalidInputError(
            "mode: 'pre' quantizes while the weights load: pass plan.to_diffusers() as "
            "quantization_config to from_pretrained; quantize() applies mode 'post' to a "
            "loaded module"
        )
    hint = getattr(module_for(plan.engine), "PREQUANTIZED_HINT", "")
    if hint:
        raise InvalidInputError(f"mode: {hint}; quantize() applies mode 'post'")
    raise InvalidInputError(
        f"mode: a 'prequantized' {plan.engine} checkpoint is loaded by from_pretrained, which "
        "reads its quantization_config; quantize() applies mode 'post' to a loaded module"
    )


def quantize(
    module: torch.nn.Module,
    plan: Plan | Mapping[str, Any],
    *,
    env: Environment | None = None,
    example_input: Any = None,
    progress: bool = False,
) -> torch.nn.Module:
    """Quantize ``module`` with ``plan`` through the plan's engine; return the module to run.

    The plan is evaluated first (``env=None`` probes this machine): a blocked plan raises
    ``IncompatiblePlanError`` before the module is touched; an unknown or warn verdict
    warns (``QuantDoctorWarning``). Most engines quantize in place and return ``module``;
    nncf may return a wrapper around an ``nn.Sequential`` root. nncf needs
    ``example_input`` (one input the model accepts). ``progress=True`` shows a progress
    bar over the layers. If the engine fails midway, the module is restored to exactly
    what was passed and an ``EngineError`` says so (or names the tensors the engine changed
    in place, which cannot be restored).
    """
    from quantdoctor.gate import _as_plan, _check, _evaluate

    # the verdict's plan is the one evaluated: checked against the matrix, its mode filled in
    verdict = _evaluate(_as_plan(plan), env, None)
    # "works instead" offers only what quantize() itself applies: mode post
    alternatives = tuple(a for a in verdict.alternatives if a.mode == "post")
    verdict = verdict.model_copy(update={"alternatives": alternatives})
    plan = _check(verdict, strict=False, stacklevel=2).plan
    _check_mode(plan)
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    from quantdoctor.engines._atomic import restored_on_failure
    from quantdoctor.engines.base import layer_progress, named_linears

    adapter = get_adapter(plan.engine)
    if isinstance(module, torch.nn.Linear) and not adapter.quantizes_root:
        raise InvalidInputError(
            f"module: {plan.engine} replaces the layers below the module it is given, and a "
            "bare nn.Linear has none; quantize torch.nn.Sequential(layer) and use its [0]"
        )
    total = len(named_linears(module)) if progress else 0
    # A failure midway restores the module (or says exactly what it could not restore).
    with (
        restored_on_failure(module, plan.engine),
        layer_progress(progress, f"{plan.engine} {plan.scheme}", total) as bar,
    ):
        return adapter.apply(module, plan, example_input=example_input, progress=bar)


def load_gguf(*args: Any, **kwargs: Any) -> torch.nn.Module:
    """``quantdoctor.engines.gguf_loader.load_gguf`` (imported on first call)."""
    from quantdoctor.engines.gguf_loader import load_gguf as _load

    return _load(*args, **kwargs)


def save_gguf(*args: Any, **kwargs: Any) -> int:
    """``quantdoctor.engines.gguf_loader.save_gguf`` (imported on first call)."""
    from quantdoctor.engines.gguf_loader import save_gguf as _save

    return _save(*args, **kwargs)

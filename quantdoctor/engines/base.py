"""The one small interface every engine module implements, and the helpers they share.

An engine is its section of matrix.yaml plus one module (``quantdoctor.engines.<name>``,
or the section's ``module:``). The module defines:

- ``ADAPTER`` (for engines with mode "post"; an engine whose checkpoints only load
  pre-quantized has none, and ``quantize`` says so): a class whose instances apply a
  plan that ``rules/`` has already allowed
  (``Adapter`` below); it never decides compatibility, and imports its engine inside
  ``apply``, so importing the module costs nothing but torch.
- ``diffusers_config(plan, spec)`` (optional): the diffusers quantization config that
  loads the plan in mode "pre"; without it, ``Plan.to_diffusers()`` says to quantize
  after load.
- ``PREQUANTIZED_HINT`` (optional): how a "prequantized" plan of the engine is loaded,
  where ``from_pretrained`` is not the way.
- ``fingerprint(view, spec)`` (optional): the engine's quantized weights recognised in a
  safetensors model's headers, for ``detect`` (``quantdoctor.files.fingerprint``);
  ``scheme_from_config(qc, spec)`` (optional): the scheme a saved ``quantization_config``
  of the engine (its ``quant_method``) names.

A new engine is that module plus its section of matrix.yaml (or of an overlay, whose
``module:`` may name a module outside quantdoctor): ``tests/throwaway_engine.py`` is one.

The scheme's API name, family, bits, layout and diffusers spelling come from the
section (``spec``), not from tables here.
"""

from __future__ import annotations

from quantdoctor import _module
from quantdoctor.errors import EngineError, InvalidInputError

TYPE_CHECKING = False  # detect imports every engine's module: typing would cost it ~3 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, Protocol

    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.schema import EngineSpec
else:  # the protocols below are for type checkers: at run time, plain classes
    Protocol = object


class Progress(Protocol):
    """What an adapter sees of the progress bar: one step per layer."""

    def advance(self, steps: int = 1) -> None: ...


class Adapter(Protocol):
    """Applies a validated plan to a module, through the engine itself."""

    engine: str
    #: ``EngineAdapter.quantizes_root``
    quantizes_root: bool

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        """Quantize ``module`` (in place where the engine does) and return the module to run.

        ``progress`` is ``None`` when no bar is shown: the adapter then makes the engine's
        whole-model call; with a bar it may work layer by layer to advance it.
        """
        ...


class EngineAdapter:
    """What adapters share: the engine's matrix section (``spec``), given when made.

    ``spec.schemes[plan.scheme].api`` is the engine's own name for a scheme."""

    engine = ""
    #: Whether ``apply`` quantizes a module that is itself an ``nn.Linear``; most engines
    #: replace the layers below the root, and a bare layer has none.
    quantizes_root = False

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec


def engine_module(name: str) -> Any:
    """Import an engine (or diffusers) module; an import that crashes becomes an EngineError.

    Typed ``Any``: the engines ship no usable type information.
    """
    try:
        return _module(name)
    except Exception as exc:  # an engine's import can fail in any way (ABI, CUDA libs, ...)
        package = name.partition(".")[0]
        raise EngineError(
            f"import {name} failed ({type(exc).__name__}: {exc}); check the {package} "
            "installation: python -m pip show " + package
        ) from exc


class _RichProgress:
    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task

    def advance(self, steps: int = 1) -> None:
        self._bar.advance(self._task, steps)


class layer_progress:  # used as a function: with layer_progress(...) as bar
    """A progress bar over ``total`` layers, or ``None``, as a context manager; rich is
    imported only when shown (a class, not ``contextlib``: ``detect`` imports this module,
    and contextlib imports ``collections``)."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self._args = (enabled, description, total)
        self._bar: Any = None

    def __enter__(self) -> Progress | None:
        enabled, description, total = self._args
        if not enabled:
            return None
        from rich import progress

        bar = progress.Progress(
            "[progress.description]{task.description}",
            progress.BarColumn(),
            progress.MofNCompleteColumn(),
            progress.TimeElapsedColumn(),
            transient=False,
        )
        bar.__enter__()
        try:
            task = bar.add_task(description, total=total)
        except BaseException:  # no __exit__ follows a failed __enter__: stop the bar here
            bar.__exit__(None, None, None)
            raise
        self._bar = bar
        return _RichProgress(bar, task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype the vocabulary's ``dtype`` names."""
    import torch

    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name not in dtypes:
        raise InvalidInputError(
            f"dtype: {name!r} is not valid; valid values are {', '.join(dtypes)}"
        )
    return dtypes[name]


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of the module's first parameter or buffer (CPU for an empty module)."""
    import torch

    for param in module.parameters():
        return param.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def named_linears(module: torch.nn.Module) -> list[tuple[str, torch.nn.Linear]]:
    """Every ``nn.Linear`` below ``module`` (subclasses included) with its qualified name.

    The root itself is left out: it has no name to replace it by."""
    import torch

    return [(n, m) for n, m in module.named_modules() if n and isinstance(m, torch.nn.Linear)]


def set_submodule(root: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    """Replace the submodule called ``name`` (a dotted path) by ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def swap_linears(
    module: torch.nn.Module,
    linears: Iterable[tuple[str, torch.nn.Linear]],
    make: Callable[[str, torch.nn.Linear], torch.nn.Module],
    progress: Progress | None,
) -> torch.nn.Module:
    """Replace each of ``linears`` (name, layer) below ``module`` by ``make(name, layer)``,
    one step of the bar each; return ``module``."""
    for name, linear in linears:
        set_submodule(module, name, make(name, linear))
        if progress is not None:
            progress.advance()
    return module


def scheme_api(spec: EngineSpec, plan: Plan) -> str:
    """The engine's own name for the plan's scheme (its ``api`` in the matrix)."""
    try:
        return spec.schemes[plan.scheme].api
    except KeyError:
        raise InvalidInputError(
            f"scheme: {plan.scheme!r} is not a {plan.engine} scheme; "
            f"valid values are {', '.join(spec.schemes)}"
        ) from None

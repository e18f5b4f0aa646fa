"""Hypothesis strategies for plans and environments.

They compose with the user's own strategies (``st.builds``, ``.filter``, ``.map``,
``.flatmap``). Every choice lists its plainest value first (an ordinary, fully known
Linux/CUDA machine with every engine installed at its newest version; the first engine,
its first scheme, its default mode, no offload, the transformer, bfloat16), but
Hypothesis shrinks to the shortest sequence of choices: a minimal example may leave
torch or the GPU unknown (fewer draws) or pick an engine with a single mode.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from itertools import product
from typing import Any

from hypothesis import strategies as st

from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.aliases import resolve
from quantdoctor.rules.core import FACETS
from quantdoctor.rules.evaluate import EnvLike, default_matrix, to_facts
from quantdoctor.rules.matrix import Matrix
from quantdoctor.rules.models import Environment, Plan
from quantdoctor.rules.vocab import BACKEND_ROWS, FACET_VALUES, suggest

__all__ = ["environments", "plans", "supported_plans"]

#: A facet is fixed by a value, given a strategy, or left free (``None``).
Facet = Any


# --------------------------------------------------------------------------- plans


def _is_strategy(value: Any) -> bool:
    return isinstance(value, st.SearchStrategy)


def _choices(facet: str, engine: str, matrix: Matrix) -> tuple[str, ...]:
    """The values ``facet`` may take in a plan of ``engine``, the shrink target first."""
    spec = matrix.engines[engine]
    if facet == "scheme":
        return tuple(spec.schemes)
    if facet == "mode":
        return tuple(sorted(spec.modes, key=lambda m: m != spec.default_mode))
    return FACET_VALUES[facet]


def _check_fixed(caller: str, fixed: dict[str, Facet], matrix: Matrix) -> list[str]:
    """Validate the facets fixed by value, each spelt as the vocabulary spells it in
    ``fixed`` (an alias resolved: ``rules.aliases``); return the engines that can honour
    them all."""
    every = {
        "engine": matrix.engine_names,
        "scheme": tuple(
            dict.fromkeys(s for e in matrix.engines for s in matrix.engines[e].schemes)
        ),
        **FACET_VALUES,
    }
    values = {k: v for k, v in fixed.items() if v is not None and not _is_strategy(v)}
    for facet, value in values.items():
        if isinstance(value, str):
            # another spelling of a valid value (bnb, fp16), as the command line takes it;
            # a scheme's aliases are its engine's (Q4_K_M is gguf's): read with it fixed
            engine = values.get("engine") if facet == "scheme" else None
            value = fixed[facet] = values[facet] = resolve(facet, value, every[facet], engine)
        if not isinstance(value, str) or value not in every[facet]:
            raise InvalidInputError(
                f"{caller}({facet}={value!r}): not valid; {suggest(str(value), every[facet])}"
            )
    engines = [
        e
        for e in every["engine"]
        if all(v in _choices(f, e, matrix) for f, v in values.items() if f != "engine")
        and values.get("engine", e) == e
    ]
    if not engines:
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise InvalidInputError(f"{caller}({shown}): no engine has all of these")
    return engines


def _facet(value: Facet, choices: Sequence[str]) -> st.SearchStrategy[str]:
    if value is None:
        return st.sampled_from(choices)
    if _is_strategy(value):
        allowed = frozenset(choices)
        return value.filter(lambda v: v in allowed)  # type: ignore[no-any-return]
    return st.just(value)


def plans(
    *,
    engine: Facet = None,
    scheme: Facet = None,
    mode: Facet = None,
    offload: Facet = None,
    component: Facet = None,
    dtype: Facet = None,
    matrix: Matrix | None = None,
) -> st.SearchStrategy[Plan]:
    """Valid plans. Any facet can be fixed (``plans(engine="quanto")``, or a spelling the
    command line takes: ``engine="bnb"``, ``dtype="fp16"``, a scheme's alias with its
    engine fixed) or given a strategy (``plans(offload=st.sampled_from(["model",
    "group"]))``); schemes and modes are always ones the drawn engine has. A value fixed
    here is checked at once: a scheme or mode no engine has raises ``InvalidInputError``
    naming the argument and the valid values."""
    m = matrix or default_matrix()
    fixed = {
        "engine": engine,
        "scheme": scheme,
        "mode": mode,
        "offload": offload,
        "component": component,
        "dtype": dtype,
    }
    engines = _check_fixed("plans", fixed, m)

    def for_engine(e: str) -> st.SearchStrategy[Plan]:
        facets = {f: _facet(fixed[f], _choices(f, e, m)) for f in FACETS[1:]}
        return st.builds(Plan, engine=st.just(e), **facets)

    return _facet(fixed["engine"], engines).flatmap(for_engine)


# --------------------------------------------------------------------------- environments

#: GPUs as the probe reports them, each vendor's ordinary first: (vendor, name, memory in
#: GB, the vendor's own id: CUDA compute capability for NVIDIA, gfx target for AMD).
_GPUS: tuple[tuple[str, str, float, str | None], ...] = (
    ("nvidia", "NVIDIA GeForce RTX 4090", 24.0, "8.9"),
    ("nvidia", "NVIDIA H100 80GB HBM3", 79.6, "9.0"),
    ("nvidia", "NVIDIA GeForce RTX 3090", 24.0, "8.6"),
    ("nvidia", "NVIDIA A100-SXM4-80GB", 79.2, "8.0"),
    ("nvidia", "NVIDIA GeForce RTX 5090", 31.8, "12.0"),
    ("nvidia", "NVIDIA B200", 178.4, "10.0"),
    ("nvidia", "NVIDIA GeForce RTX 2080", 8.0, "7.5"),
    ("nvidia", "Tesla T4", 15.0, "7.5"),
    ("nvidia", "Tesla V100-SXM2-16GB", 16.0, "7.0"),
    ("nvidia", "NVIDIA GeForce GTX 1080", 8.0, "6.1"),
    ("nvidia", "NVIDIA GeForce GTX 980", 4.0, "5.2"),
    ("amd", "AMD Radeon RX 7900 XTX", 24.0, "gfx1100"),
    ("amd", "AMD Instinct MI300X", 192.0, "gfx942"),
    ("amd", "AMD Instinct MI250X", 64.0, "gfx90a"),
    ("amd", "AMD Radeon RX 6800", 16.0, "gfx1030"),
    ("amd", "AMD Radeon RX 9070 XT", 16.0, "gfx1201"),
    ("amd", "AMD Instinct MI355X", 288.0, "gfx950"),
    ("intel", "Intel Arc A770", 16.0, None),
    ("intel", "Intel Arc B580", 12.0, None),
    ("intel", "Intel Data Center GPU Max 1550", 128.0, None),
    ("apple", "Apple M2 Max", 32.0, None),
    ("apple", "Apple M1", 8.0, None),
)
_BY_VENDOR = {v: tuple(g for g in _GPUS if g[0] == v) for v in dict.fromkeys(g[0] for g in _GPUS)}
#: DirectML runs on any vendor's card and the probe learns only its name and memory.
_ANY_VENDOR: tuple[tuple[str, str, float, str | None], ...] = (
    ("amd", "AMD Radeon RX 580", 8.0, None),
    ("intel", "Intel Arc A770", 16.0, None),
    ("nvidia", "NVIDIA GeForce GTX 1660", 6.0, None),
)

#: (backend, os, wsl): every backend, an ordinary Linux/CUDA machine first.
_MACHINES: tuple[tuple[str, str, bool], ...] = (
    ("cuda", "linux", False),
    ("cuda", "windows", False),
    ("cuda", "linux", True),
    ("rocm", "linux", False),
    ("zluda", "windows", False),
    ("xpu", "linux", False),
    ("xpu", "windows", False),
    ("directml", "windows", False),
    ("mps", "darwin", False),
    ("cpu", "linux", False),
    ("cpu", "windows", False),
    ("cpu", "darwin", False),
    ("openvino", "linux", False),
    ("openvino", "windows", False),
)
_TORCH = (
    "2.11.0",
    "2.13.0",
    "2.10.0",
    "2.9.1",
    "2.8.0",
    "2.7.1",
    "2.6.0",
    "2.5.1",
    "2.4.1",
    "2.3.1",
)
_CUDA = ("13.0", "12.8", "12.6", "12.4", "11.8")
_HIP = ("7.2", "6.4", "6.2")
_PYTHON = ("3.12.3", "3.11.7", "3.13.1", "3.10.14")

#: Each distribution's versions, newest first; ``None`` is "not installed" (known absent).
#: The engines' own come from their matrix sections (``versions``), before these.
_PACKAGES: dict[str, tuple[str | None, ...]] = {
    "diffusers": ("0.42.1", "0.40.0", "0.38.0", "0.35.2", "0.33.1", "0.32.2", "0.30.3", None),
    "accelerate": ("1.15.0", "1.7.0", "1.2.1", "0.34.2", None),
    "transformers": ("5.24.0", "4.57.1", "4.46.3", None),
    "mslk": (None, "1.1.0"),
    "fbgemm-gpu-genai": (None, "1.2.0"),
    "kernels": (None, "0.10.4"),
}
#: Distributions that belong to one backend: installed there (or not), absent elsewhere.
_BACKEND_PACKAGES: dict[str, dict[str, tuple[str | None, ...]]] = {
    "xpu": {"intel-extension-for-pytorch": (None, "2.8.10", "2.3.110")},
    "directml": {"torch-directml": ("0.2.5.dev240914", "0.2.4.dev240913")},
    "openvino": {"openvino": ("2026.2.1", "2025.3.0")},
}


def _gpu(draw: st.DrawFn, backend: str) -> dict[str, Any] | None:
    """The GPU the backend runs on: one of its vendor's (BACKEND_TABLE), none without an
    accelerator, any vendor's where the backend numbers none (DirectML)."""
    row = BACKEND_ROWS[backend]
    if not row.accelerator:
        return None
    vendor, name, mem, ident = draw(
        st.sampled_from(_ANY_VENDOR if row.vendor is None else _BY_VENDOR[row.vendor])
    )
    gpu: dict[str, Any] = {"vendor": vendor, "name": name, "memory_gb": mem}
    if row.vendor == "nvidia":
        gpu.update(cuda_cc=ident, gfx=None)
    elif row.vendor == "amd":
        gpu.update(cuda_cc=None, gfx=ident)
    return gpu


def _torch(draw: st.DrawFn, backend: str) -> dict[str, Any]:
    version = draw(st.sampled_from(_TORCH))
    info: dict[str, Any] = {"version": version, "cuda": None, "hip": None, "xpu": False}
    if backend in ("cuda", "zluda"):
        cuda = "11.8" if backend == "zluda" else draw(st.sampled_from(_CUDA))
        info.update(version=f"{version}+cu{cuda.replace('.', '')}", cuda=cuda)
    elif backend == "rocm":
        hip = draw(st.sampled_from(_HIP))
        info.update(version=f"{version}+rocm{hip}", hip=hip)
    elif backend == "xpu":
        info.update(version=f"{version}+xpu", xpu=True)
    elif not BACKEND_ROWS[backend].accelerator:
        info.update(version=f"{version}+cpu")
    return info


def _triton(draw: st.DrawFn, backend: str, os: str) -> dict[str, Any] | None:
    # Triton runs where it has a device kind (BACKEND_TABLE); off Linux, only CUDA's
    if BACKEND_ROWS[backend].triton and (os == "linux" or backend == "cuda"):
        return draw(
            st.sampled_from(
                [
                    {"version": "3.6.0", "works": True},
                    None,
                    {"version": "3.1.0", "works": True},
                    {"version": "3.3.1", "works": False},
                ]
            )
        )
    return None


def package_versions(matrix: Matrix) -> dict[str, tuple[str | None, ...]]:
    """Each distribution an environment may have, with its versions newest first and
    ``None`` (not installed) last: every engine of ``matrix``, then the others."""
    engines = {
        spec.package: (*spec.versions, None)
        for spec in matrix.engines.values()
        if spec.package not in _PACKAGES
    }
    return {**engines, **_PACKAGES}


@st.composite
def _full_environment(
    draw: st.DrawFn,
    machines: tuple[tuple[str, str, bool], ...],
    catalog: dict[str, tuple[str | None, ...]],
) -> dict[str, Any]:
    """A fully known machine (every key present; absent things are ``null``)."""
    backend, os, wsl = draw(st.sampled_from(machines))
    gpu = _gpu(draw, backend)
    # One machine in ten has no torch at all: a doctor runs on broken machines.
    no_torch = draw(st.integers(0, 9)) == 9
    packages = {name: draw(st.sampled_from(vs)) for name, vs in catalog.items()}
    for b, extra in _BACKEND_PACKAGES.items():
        for name, vs in extra.items():
            packages[name] = draw(st.sampled_from(vs)) if b == backend else None
    return {
        "os": os,
        "wsl": wsl,
        "arch": {"linux": "x86_64", "windows": "AMD64", "darwin": "arm64"}[os],
        "python": draw(st.sampled_from(_PYTHON)),
        "backend": backend,
        "torch": None if no_torch else _torch(draw, backend),
        "gpus": [gpu] if gpu else [],
        "triton": None if no_torch else _triton(draw, backend, os),
        "packages": packages,
    }


#: Facts a partial environment may not know: a top-level key, or a dotted key inside one
#: (and ``packages.<name>`` for each distribution: ``forgettable(matrix)``).
_FORGETTABLE: tuple[str, ...] = (
    "os",
    "wsl",
    "arch",
    "python",
    "backend",
    "torch",
    "torch.version",
    "torch.cuda",
    "torch.hip",
    "torch.xpu",
    "gpus",
    "gpus.vendor",
    "gpus.name",
    "gpus.cuda_cc",
    "gpus.gfx",
    "gpus.memory_gb",
    "triton",
    "triton.version",
    "triton.works",
    "packages",
)


def forgettable(matrix: Matrix) -> tuple[str, ...]:
    """Facts a partial environment may not know, the packages of ``matrix``'s engines included."""
    names = (*package_versions(matrix), *(n for e in _BACKEND_PACKAGES.values() for n in e))
    return (*_FORGETTABLE, *(f"packages.{name}" for name in names))


def __getattr__(name: str) -> Any:
    if name == "FORGETTABLE":  # the built-in matrix's, read when first asked for
        return forgettable(default_matrix())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def forget(data: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """A copy of an Environment JSON mapping in which ``keys`` (see ``FORGETTABLE``) are
    unknown: removed, never set to ``null``. The input is not modified."""
    out: dict[str, Any] = json.loads(json.dumps(data))
    for key in keys:
        top, _, sub = key.partition(".")
        value = out.get(top)
        if not sub:
            out.pop(top, None)
        elif isinstance(value, dict):
            value.pop(sub, None)
        elif isinstance(value, list):
            for item in value:
                item.pop(sub, None)
    return out


_ENV_KEYS = tuple(Environment.model_fields)


def _check_env_fixed(fixed: dict[str, Any]) -> None:
    from quantdoctor.rules.envfile import parse_env

    for key, value in fixed.items():
        if key not in _ENV_KEYS:
            raise InvalidInputError(
                f"environments({key}=...): not an Environment key; {suggest(key, _ENV_KEYS)}"
            )
        if not _is_strategy(value):
            parse_env({key: value}, f"environments({key}=...)")


def environments(
    *, partial: bool = True, matrix: Matrix | None = None, **fixed: Any
) -> st.SearchStrategy[Environment]:
    """Realistic environments across every backend: fully known ones, partial ones (facts
    missing: unknown) and known-absent ones (``null``: no torch, no triton, an engine not
    installed, no GPU). ``partial=False`` gives fully known ones only.

    Keyword arguments fix top-level keys with a value or a strategy
    (``environments(backend="rocm")``, ``environments(gpus=[])``); a fixed ``backend`` or
    ``os`` also picks machines that match it, and a fixed ``packages`` mapping is merged
    into the drawn one. Fixed keys are always known."""
    _check_env_fixed(fixed)

    def matches(machine: tuple[str, str, bool], keys: tuple[str, ...]) -> bool:
        return all(
            k not in fixed or _is_strategy(fixed[k]) or fixed[k] == machine[i]
            for i, k in enumerate(("backend", "os"))
            if k in keys
        )

    # A fixed backend and os pick the machines that have both, else those of the backend.
    machines = (
        tuple(m for m in _MACHINES if matches(m, ("backend", "os")))
        or tuple(m for m in _MACHINES if matches(m, ("backend",)))
        or _MACHINES
    )
    m = matrix or default_matrix()
    drawn: st.SearchStrategy[dict[str, Any]] = _full_environment(machines, package_versions(m))
    if partial:
        forgotten = st.lists(st.sampled_from(forgettable(m)), unique=True, max_size=6)
        drawn = st.tuples(drawn, forgotten).map(lambda t: forget(t[0], t[1]))
    fixed_values = st.fixed_dictionaries(
        {k: v if _is_strategy(v) else st.just(v) for k, v in fixed.items()}
    )

    def apply(t: tuple[dict[str, Any], dict[str, Any]]) -> Environment:
        data, values = t
        packages = values.pop("packages", None)
        data.update(values)
        if packages is not None:
            data["packages"] = {**data.get("packages", {}), **packages}
        return Environment.model_validate(data)

    return st.tuples(drawn, fixed_values).map(apply)


# --------------------------------------------------------------------------- supported plans

_PASSING: OrderedDict[str, tuple[Matrix, list[tuple[str, ...]]]] = OrderedDict()


def _passing(env: EnvLike, matrix: Matrix) -> list[tuple[str, ...]]:
    """Every plan (as a facet tuple) that evaluates ok or warn on ``env``, in shrink order.

    A plan passes exactly when no block rule that selects it holds or might hold (the
    evaluator's definition), so each block rule's condition is evaluated once here and
    only the selectors are tested per plan. Cached per environment."""
    data = env.to_json_dict() if isinstance(env, Environment) else env
    key = json.dumps(data, sort_keys=True, default=str)
    cached = _PASSING.get(key)
    if cached is not None and cached[0] is matrix:
        _PASSING.move_to_end(key)
        return cached[1]
    facts = to_facts(data)
    out: list[tuple[str, ...]] = []
    for engine in matrix.engine_names:
        boxes = [
            tuple(
                frozenset(getattr(r.select, f)) if getattr(r.select, f) else None
                for f in FACETS[1:]
            )
            for r in matrix.rules_for(engine)
            if r.severity == "block"
            and not r.signature_only
            and r.condition.eval(facts, set()) is not False
        ]
        for facets in product(*(_choices(f, engine, matrix) for f in FACETS[1:])):
            if not any(
                all(allowed is None or v in allowed for allowed, v in zip(box, facets, strict=True))
                for box in boxes
            ):
                out.append((engine, *facets))
    _PASSING[key] = (matrix, out)
    if len(_PASSING) > 64:
        _PASSING.popitem(last=False)
    return out


def supported_plans(
    env: EnvLike, *, matrix: Matrix | None = None, **fixed: Facet
) -> st.SearchStrategy[Plan]:
    """Plans that evaluate ok or warn on ``env`` (an ``Environment`` or its JSON mapping).
    Facets can be fixed or given strategies as in ``plans``. Where no plan passes (a
    machine without torch), the example is rejected, as ``assume(False)`` would."""
    unknown = set(fixed) - set(FACETS)
    if unknown:
        raise TypeError(
            f"supported_plans() got an unexpected keyword argument {sorted(unknown)[0]!r}; "
            f"valid are {', '.join(FACETS)}, matrix"
        )
    m = matrix or default_matrix()
    _check_fixed("supported_plans", fixed, m)
    values = {FACETS.index(f): v for f, v in fixed.items() if v is not None and not _is_strategy(v)}
    drawn = [(FACETS.index(f), v) for f, v in fixed.items() if _is_strategy(v)]

    @st.composite
    def draw_plan(draw: st.DrawFn) -> Plan:
        candidates = [c for c in _passing(env, m) if all(c[i] == v for i, v in values.items())]
        for i, strategy in drawn:
            value = draw(strategy)
            candidates = [c for c in candidates if c[i] == value]
        if not candidates:
            from hypothesis import reject

            reject()
        return Plan(**dict(zip(FACETS, draw(st.sampled_from(candidates)), strict=True)))

    return draw_plan()

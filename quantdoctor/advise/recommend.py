"""Recommend: every plan that passes here, ranked by what it costs on this machine.

Each plan gets its weight memory (exact, from the scheme's bits and block layout in
matrix.yaml), its peak memory in a forward, its speed and error relative to bf16 (measured
on real hardware, from costs.yaml, each with its source) and the offload mode it needs to
fit the memory available. Where nothing was measured the estimate says so (``None``).

``rank_plans`` orders any list of plans by the same model (the verdict's alternatives).
No torch, no engine: a model's size comes from ``detect`` (headers only) or from the
caller (``params=``, or a ``Layout`` built from a module already in memory).
"""

from __future__ import annotations

import os

from quantdoctor.errors import InvalidInputError, MatrixError

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from functools import lru_cache
    from typing import Any, NamedTuple, TypeVar

    from quantdoctor.rules.conditions import Node
    from quantdoctor.rules.core import Core, Facets, SchemeView
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Environment, Plan, Verdict
    from quantdoctor.rules.records import VerdictRecord

    #: ``Plan`` models (the public API) or ``Facets`` (the evaluator's named tuples)
    PlanLike = TypeVar("PlanLike", Plan, Facets)

    from quantdoctor.rules.schema import SchemeSpec
else:  # collections.abc and functools import collections: ~3 ms of a command
    from _collections_abc import Mapping

    from quantdoctor._memo import lru_cache
    from quantdoctor._namedtuple import NamedTuple

__all__ = [
    "PREFERS",
    "Costs",
    "Estimate",
    "Layout",
    "Recommendation",
    "estimate",
    "gpu_class",
    "load_costs",
    "rank_plans",
    "recommend",
]

GIB = float(2**30)
PREFERS: tuple[str, ...] = ("speed", "memory", "quality")
#: Offload modes in the order a plan tries them: the first that passes and fits is taken.
#: "model" saves nothing for one component, so it only serves a plan that "none" cannot.
OFFLOAD_ORDER: tuple[str, ...] = ("none", "model", "balanced", "group", "sequential")
COSTS_FILE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "costs.yaml")
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


# ----------------------------------------------------------------------------- the model


class Layout(NamedTuple):
    """A model's shape as far as memory goes.

    ``linears`` are ``(out_features, in_features, count)``: the weights a scheme quantizes.
    ``other_params`` stay in the compute dtype (biases, norms, embeddings). ``exact`` is
    false when only a parameter count was known: then every parameter counts as a linear
    weight and the largest layer and block are unknown.
    """

    linears: tuple[tuple[int, int, int], ...]
    other_params: int = 0
    largest_block_params: int | None = None
    exact: bool = True
    #: a pre-quantized file's (engine, scheme, bytes of tensor data): what loading it costs
    stored: tuple[str, str, int] | None = None

    @classmethod
    def from_params(cls, params: int) -> Layout:
        if params <= 0:
            raise InvalidInputError(f"params: {params} is not a parameter count; give a number > 0")
        width = 4096  # only the per-row scales depend on it: < 0.1% of the bytes
        rows, rest = divmod(int(params), width)
        return cls(linears=((rows, width, 1),), other_params=rest, exact=False)

    @classmethod
    def from_module(cls, module: Any, *, block_types: Iterable[str] = ()) -> Layout:
        """The layout of a torch module in memory (duck-typed: no torch import here).

        A leaf with a 2-D ``weight`` and ``in_features``/``out_features`` is a linear;
        every other parameter is "other". ``block_types`` names the classes whose
        instances are offloaded as one group (``FluxTransformerBlock`` ...).
        """
        counts: dict[tuple[int, int], int] = {}
        seen: set[int] = set()
        linear_params = 0
        for _, mod in module.named_modules():
            weight = getattr(mod, "weight", None)
            if weight is None or getattr(weight, "ndim", 0) != 2 or not hasattr(mod, "in_features"):
                continue
            shape = (int(mod.out_features), int(mod.in_features))
            counts[shape] = counts.get(shape, 0) + 1
            seen.add(id(weight))
            linear_params += shape[0] * shape[1]
        other = sum(int(p.numel()) for p in module.parameters() if id(p) not in seen)
        wanted = set(block_types)
        blocks = [
            sum(int(p.numel()) for p in m.parameters())
            for _, m in module.named_modules()
            if type(m).__name__ in wanted
        ]
        return cls(
            linears=tuple((o, i, c) for (o, i), c in sorted(counts.items())),
            other_params=other,
            largest_block_params=max(blocks) if blocks else None,
        )

    @property
    def params(self) -> int:
        return sum(o * i * c for o, i, c in self.linears) + self.other_params

    @property
    def largest_linear(self) -> int | None:
        """Weights in the largest linear layer; None when only a count is known."""
        if not self.exact or not self.linears:
            return None
        return max(o * i for o, i, _ in self.linears)


def _quantizes(spec: SchemeSpec | SchemeView, in_features: int) -> bool:
    """A layer narrower than the scheme's block stays in the compute dtype: GGUF writers
    store it as F16, nncf's group-size fallback leaves it, torchao int4 skips it."""
    return spec.block <= 1 or in_features % spec.block == 0


def scheme_bytes(spec: SchemeSpec | SchemeView, layout: Layout, dtype: str = "bfloat16") -> float:
    """Exact bytes of the weights under ``spec``: blocks, scales and the layers kept whole."""
    dbytes = _DTYPE_BYTES.get(dtype, 2)
    total = float(layout.other_params * dbytes)
    for out_f, in_f, count in layout.linears:
        numel = out_f * in_f
        per = numel * (spec.bytes_per_weight(in_f) if _quantizes(spec, in_f) else dbytes)
        total += per * count
    return total


# ----------------------------------------------------------------------------- costs.yaml


class Measured(NamedTuple):
    value: float | None
    source: str
    #: where it was measured when that is not this machine's class (else None)
    measured_on: str | None = None


class Costs(NamedTuple):
    """The cost model, checked and indexed: costs.yaml with the overlays' ``costs:`` over it.

    Tables are listed per GPU class (and workload) in the order they are read: the
    overlays' first (the last overlay first), then costs.yaml's; the first that has a
    key wins.
    """

    reserve_gb: float
    activation_fraction: float
    activation_cap_gb: float
    large_model_params: int
    classes: tuple[tuple[str, Node], ...]
    speed: Mapping[str, Mapping[str, list[tuple[str, Mapping[str, float | None]]]]]
    offload_speed: Mapping[str, list[tuple[str, Mapping[str, float]]]]
    error: Mapping[str, Measured]
    workspace: Mapping[str, float]
    workspace_source: str

    def speed_of(self, key: Sequence[str], gpu: str, params: int | None) -> Measured:
        """The scheme's speed on ``gpu``; from the nearest measured class if not this one."""
        table = self.speed.get(gpu)
        measured_on = None
        if not table:
            measured_on = "cpu" if gpu == "cpu" else "hopper"
            table = self.speed.get(measured_on) or {}
        # no model given: the large table, since the models people quantize are large
        big = params is None or params >= self.large_model_params
        order = ("large", "small") if big else ("small", "large")
        for workload in order:
            found = _lookup(table.get(workload, ()), key)
            if found is not None:
                source, value = found
                if value is None:
                    continue  # measured as failing or not measured: try the other workload
                return Measured(value, f"{source} [{workload} model]", measured_on)
        return Measured(None, f"not measured on {measured_on or gpu}", measured_on)

    def offload_factor(self, offload: str, gpu: str) -> Measured:
        tables = self.offload_speed.get(gpu)
        measured_on = None
        if not tables:
            measured_on = next(iter(self.offload_speed), None)
            tables = self.offload_speed.get(measured_on or "") or []
        found = _lookup(tables, (offload,))
        if found is None or found[1] is None:
            return Measured(None, f"offload {offload}: not measured", measured_on)
        return Measured(found[1], found[0], measured_on)


def _lookup(
    tables: Iterable[tuple[str, Mapping[str, float | None]]], keys: Sequence[str]
) -> tuple[str, float | None] | None:
    """(source, value) of the first table holding the first key found, most specific first."""
    for source, values in tables:
        for k in keys:
            if k in values:
                return source, values[k]
    return None


def _keys(plan: Plan | Facets) -> tuple[str, ...]:
    return (f"{plan.engine}.{plan.scheme}.{plan.mode}", f"{plan.engine}.{plan.scheme}")


def index_costs(layers: Sequence[Mapping[str, Any]], name: str = "costs.yaml") -> Costs:
    """Index validated cost data (``CostsFile`` as plain data), highest priority first."""
    from quantdoctor.rules.conditions import parse

    def scalar(key: str) -> float:
        for layer in layers:
            if layer.get(key) is not None:
                return float(layer[key]["value"])
        raise MatrixError(f"{name}: missing field {key!r}")

    speed: dict[str, dict[str, list[tuple[str, Mapping[str, float | None]]]]] = {}
    offload: dict[str, list[tuple[str, Mapping[str, float]]]] = {}
    error: dict[str, Measured] = {}
    workspace: dict[str, float] = {}
    ws_sources: list[str] = []
    classes: list[tuple[str, Node]] = []
    for layer in layers:
        classes.extend((c["class"], parse(c["when"])) for c in layer.get("gpu_classes") or ())
        for i, t in enumerate(layer.get("speed") or ()):
            if not t.get("gpu"):
                raise MatrixError(f"{name}: speed[{i}]: a speed table names its gpu class")
            for workload in (t["workload"],) if t.get("workload") else ("large", "small"):
                speed.setdefault(t["gpu"], {}).setdefault(workload, []).append(
                    (t["source"], t["values"])
                )
        for i, t in enumerate(layer.get("offload_speed") or ()):
            if not t.get("gpu"):
                raise MatrixError(f"{name}: offload_speed[{i}]: an offload table names its gpu")
            values = {k: v for k, v in t["values"].items() if v is not None}
            offload.setdefault(t["gpu"], []).append((t["source"], values))
        for t in layer.get("error") or ():
            for k, v in t["values"].items():
                error.setdefault(k, Measured(v, t["source"]))
        for t in layer.get("workspace_layers") or ():
            ws_sources.append(t["source"])
            for k, v in t["values"].items():
                if v is not None:
                    workspace.setdefault(k, v)
    return Costs(
        reserve_gb=scalar("reserve_gb"),
        activation_fraction=scalar("activation_fraction"),
        activation_cap_gb=scalar("activation_cap_gb"),
        large_model_params=int(scalar("large_model_params")),
        classes=tuple(classes),
        speed=speed,
        offload_speed=offload,
        error=error,
        workspace=workspace,
        workspace_source="; ".join(ws_sources),
    )


def validate_costs(data: Any, name: str = "costs.yaml") -> dict[str, Any]:
    """Check a cost-model mapping against the schema (``rules.schema.CostsFile``); return it
    as plain data. Errors name the file and the field."""
    from pydantic import ValidationError

    from quantdoctor.rules.schema import CostsFile

    if not isinstance(data, Mapping):
        raise MatrixError(f"{name}: expected a mapping at the top")
    try:
        parsed = CostsFile.model_validate(dict(data))
    except ValidationError as err:
        lines = []
        for e in err.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            lines.append(f"{name}: {where.lstrip('.')}: {e['msg'].removeprefix('Value error, ')}")
        raise MatrixError("\n".join(lines)) from None
    plain: dict[str, Any] = parsed.model_dump(mode="json", by_alias=True)
    return plain


def parse_costs(data: Any, name: str = "costs.yaml") -> Costs:
    """Check and index a whole cost model; errors name the file and the field."""
    return index_costs([validate_costs(data, name)], name)


def _read_costs(path: str) -> dict[str, Any]:
    import yaml

    from quantdoctor.rules.untrusted import OVERLAY_LIMIT, read_user_file

    # A regular file of bounded size, opened without blocking (a FIFO, /dev/zero, ...).
    text = read_user_file(path, "", MatrixError, OVERLAY_LIMIT)
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise MatrixError(f"{path}: not valid YAML: {err}") from None
    plain = validate_costs(data, path)
    from quantdoctor.rules.matrix import check_cost_keys, load_matrix

    check_cost_keys(plain, load_matrix(defaults=False).engine_data, path)
    index_costs([plain], path)  # the built-in file must be whole on its own
    return plain


@lru_cache(maxsize=4)
def _base_costs(path: str) -> dict[str, Any]:
    """costs.yaml as validated plain data, read back from the cache while the code is the same."""
    from quantdoctor._dirs import code_digest, digest, read_entry, write_entry
    from quantdoctor.rules.matrix import costs_ok

    key = digest(code_digest(), os.path.abspath(path))
    cached = read_entry("costs", key)
    if costs_ok(cached) and path == COSTS_FILE:
        return cached  # type: ignore[no-any-return]
    plain = _read_costs(path)
    if path == COSTS_FILE:
        write_entry("costs", key, plain, keep=4)  # one per install sharing the folder
    return plain


@lru_cache(maxsize=8)
def _merged(path: str, matrix: Matrix | None) -> Costs:
    overlays = [o["costs"] for o in reversed(matrix.cost_overlays)] if matrix else []
    return index_costs([*overlays, _base_costs(path)], path)


def load_costs(
    path: str | os.PathLike[str] | None = None, *, matrix: Matrix | None = None
) -> Costs:
    """The cost model: ``costs.yaml`` beside the matrix (or ``path``), with the ``costs:``
    sections of ``matrix``'s overlays read before it."""
    if matrix is not None and not matrix.cost_overlays:
        matrix = None
    return _merged(str(path or COSTS_FILE), matrix)


# ----------------------------------------------------------------------------- the machine


def _facts(env: Environment | Mapping[str, Any], device: int) -> dict[str, Any]:
    from quantdoctor.rules.evaluate import to_facts

    return to_facts(env, device)


def gpu_class(facts: Mapping[str, Any], costs: Costs | None = None) -> str | None:
    """The row of the speed tables this machine reads (``hopper``, ``ada``, ``cpu`` ...):
    the first of the cost model's GPU classes whose condition holds on these facts."""
    costs = costs or load_costs()
    for name, condition in costs.classes:
        if condition.eval(dict(facts), set()) is True:
            return name
    return None


def available_gb(
    facts: Mapping[str, Any], vram_gb: float | None, costs: Costs
) -> tuple[float | None, str]:
    """Memory the model may use: the card (or ``vram_gb``) less the CUDA context."""
    if vram_gb is not None:
        total, where = float(vram_gb), f"--vram {vram_gb:g}"
    else:
        mem = facts.get("gpu.memory_gb")
        if not isinstance(mem, (int, float)):
            return None, "GPU memory unknown (give --vram)"
        total, where = float(mem), f"gpu memory {mem:g} GiB"
    usable = max(total - costs.reserve_gb, 0.0)
    return usable, f"{where} less {costs.reserve_gb:g} GiB for the CUDA context"


# ----------------------------------------------------------------------------- estimates


class Estimate(NamedTuple):
    """What one plan costs here. Memory in GiB; speed and error relative to bf16."""

    #: a ``Plan`` from ``recommend``; ``Facets`` (its attributes, plain) inside the doctor
    plan: Plan | Facets
    status: str
    bytes_per_param: float
    weight_gb: float | None
    peak_gb: float | None
    speed: float | None
    speed_source: str
    error: float | None
    error_source: str
    fits: bool | None
    notes: tuple[str, ...] = ()
    #: false when the peak is a lower bound (an offloaded block of unknown size)
    peak_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 3) -> float | None:
            return None if x is None else round(x, n)

        return {
            "plan": self.plan.to_json()
            if isinstance(self.plan, tuple)
            else self.plan.model_dump(mode="json"),
            "status": self.status,
            "offload": self.plan.offload,
            "bytes_per_param": r(self.bytes_per_param, 4),
            "weight_gb": r(self.weight_gb),
            "peak_gb": r(self.peak_gb),
            "peak_exact": self.peak_exact,
            "relative_speed": r(self.speed),
            "speed_source": self.speed_source,
            "relative_error": r(self.error, 4),
            "error_source": self.error_source,
            "fits": self.fits,
            "notes": list(self.notes),
        }


def _peak_bytes(
    plan: Plan | Facets, weights: float, layout: Layout, activations: float, costs: Costs
) -> tuple[float, list[str]]:
    notes: list[str] = []
    largest = layout.largest_linear
    ws = 0.0
    if largest is not None and plan.scheme.upper() not in ("BF16", "F32", "F16"):
        k = next((costs.workspace[key] for key in _keys(plan) if key in costs.workspace), None)
        if k is None:
            # the workspace comes from how the engine's layers run their forward: another
            # scheme of the same engine is the nearest measurement, the median the next
            same = [v for key, v in costs.workspace.items() if key.startswith(plan.engine + ".")]
            import statistics

            k = max(same) if same else statistics.median(costs.workspace.values() or [0.0])
            notes.append(
                "forward workspace not measured for this scheme: "
                + ("the engine's largest measured used" if same else "the median measured used")
            )
        ws = k * largest * 2
    elif largest is None:
        notes.append("layer shapes unknown: peak counts weights and activations only")
    resident = weights
    if plan.mode == "post" and plan.offload == "none":
        # the rule mode.post: a full-precision load first, then quantization in place
        unquantized = layout.params * _DTYPE_BYTES.get(plan.dtype, 2)
        if unquantized > weights + ws:
            notes.append("mode post loads the unquantized weights first: that is the peak")
            return max(resident + activations + ws, unquantized), notes
    if plan.offload in ("group", "balanced", "sequential"):
        unit = layout.largest_block_params if plan.offload != "sequential" else largest
        if unit is None:
            notes.append(f"offload {plan.offload}: block size unknown, peak is a lower bound")
            resident = 0.0
        else:
            resident = min(weights, weights * unit / max(layout.params, 1))
    return resident + activations + ws, notes


def estimate(
    plan: Plan | Facets,
    facts: Mapping[str, Any],
    *,
    layout: Layout | None = None,
    matrix: Matrix | None = None,
    costs: Costs | None = None,
    activation_gb: float | None = None,
    memory_gb: float | None = None,
    status: str = "ok",
    speed_class: str | None = None,
) -> Estimate:
    """The cost of ``plan`` on the machine described by ``facts`` (see ``to_facts``);
    ``speed_class`` reads the speed tables of another GPU class than this machine's."""
    if matrix is None:
        from quantdoctor.rules.evaluate import default_matrix

        matrix = default_matrix()
    costs = costs or load_costs(matrix=matrix)
    spec = matrix.scheme(plan.engine, plan.scheme)
    per_param = spec.bytes_per_weight()  # a 4096-wide layer, which every block divides
    gpu = speed_class or gpu_class(facts, costs) or "unknown"
    keys = _keys(plan)
    notes: list[str] = []
    speed = costs.speed_of(keys, gpu, layout.params if layout else None)
    factor = costs.offload_factor(plan.offload, gpu)
    value = None
    if speed.value is not None and factor.value is not None:
        # offload never speeds a plan up: a measured ratio above 1 (model offload, 1.17)
        # is run-to-run noise, which the evidence puts at about 15%
        value = speed.value * (min(factor.value, 1.0) if plan.offload != "none" else 1.0)
    source = speed.source
    if speed.measured_on and speed.value is not None:
        source = f"measured on {speed.measured_on}, not on {gpu}: {source}"
    if plan.offload != "none":
        source += f"; x{factor.value} for offload {plan.offload}: {factor.source}"
    err = next((costs.error[k] for k in keys if k in costs.error), None)
    weight_gb = peak_gb = None
    fits = None
    exact = True
    if layout is not None:
        weights = scheme_bytes(spec, layout, plan.dtype)
        if layout.stored and layout.stored[:2] == (plan.engine, plan.scheme):
            weights = float(layout.stored[2])
        if activation_gb is not None:
            acts = activation_gb * GIB
        else:  # activations grow with width and tokens, not depth: hence the cap
            acts = min(
                costs.activation_fraction * layout.params * _DTYPE_BYTES.get(plan.dtype, 2),
                costs.activation_cap_gb * GIB,
            )
        peak, more = _peak_bytes(plan, weights, layout, acts, costs)
        notes += more
        weight_gb, peak_gb = weights / GIB, peak / GIB
        exact = not any("lower bound" in n for n in more)
        if memory_gb is not None:
            fits = peak_gb <= memory_gb
            if fits and not exact:
                fits = None  # a lower bound that fits proves nothing
    return Estimate(
        plan=plan,
        status=status,
        bytes_per_param=per_param,
        weight_gb=weight_gb,
        peak_gb=peak_gb,
        speed=value,
        speed_source=source,
        error=err.value if err else None,
        error_source=err.source if err else "not measured",
        fits=fits,
        notes=tuple(notes),
        peak_exact=exact,
    )


def _speed_step(speed: float) -> int:
    """``round(log(speed, 1.05))``: the speed in steps of 5%, found by bisecting the steps'
    bounds (``math`` is an extension module: loading it costs a process ~0.3 ms). A speed
    within a rounding error of a half step may fall on its other side; clamped to 400
    steps either side (1.05 ** 400 is 3e8)."""
    lo, hi = -400, 400
    while lo < hi:  # the least step whose upper bound lies above the speed
        mid = (lo + hi) // 2
        if speed < 1.05 ** (mid + 0.5):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _sort_key(e: Estimate, prefer: str) -> tuple[Any, ...]:
    """Smaller is better. Unknowns sort after every known value of their kind."""
    big = float("inf")
    # speeds within 5% of each other are a tie (machine-to-machine noise is about that
    # size): then the lower error wins
    speed = -_speed_step(e.speed) if e.speed else big
    error = e.error if e.error is not None else big
    memory = e.peak_gb if e.peak_gb is not None else e.bytes_per_param
    # a plan that may fit (its peak is a lower bound) competes with those that fit: the
    # alternative is to recommend only what is certain, which for large models on small
    # cards is nothing at all
    fits = 1 if e.fits is False else 0
    clean = 0 if e.status == "ok" else 1
    if prefer == "memory":
        return (fits, memory, speed, error, clean)
    if prefer == "quality":
        return (fits, error, speed, memory, clean)
    return (fits, speed, error, memory, clean)


def _check_prefer(prefer: str) -> None:
    if prefer not in PREFERS:
        from quantdoctor.rules.vocab import suggest

        raise InvalidInputError(f"prefer: {prefer!r} is not valid; {suggest(prefer, PREFERS)}")


def rank_plans(
    plans: Iterable[PlanLike],
    env: Environment | Mapping[str, Any] | None = None,
    *,
    facts: Mapping[str, Any] | None = None,
    layout: Layout | None = None,
    prefer: str = "speed",
    vram_gb: float | None = None,
    activation_gb: float | None = None,
    matrix: Matrix | None = None,
    device: int = 0,
) -> list[PlanLike]:
    """``plans`` best first by the cost model (rules are not evaluated here).

    Give ``env`` (an Environment or its JSON) or ``facts`` (``to_facts(env)``, which the
    evaluator already holds). Plans that fit the memory come first, then by ``prefer``;
    the sort is stable, so equal plans keep the caller's order.
    """
    _check_prefer(prefer)
    costs = load_costs(matrix=matrix)
    if facts is None:
        facts = _facts(env, device) if env is not None else {}
    memory = available_gb(facts, vram_gb, costs)[0] if layout is not None else None
    scored = [
        (
            estimate(
                p,
                facts,
                layout=layout,
                matrix=matrix,
                costs=costs,
                memory_gb=memory,
                activation_gb=activation_gb,
            ),
            p,
        )
        for p in plans
    ]
    return [p for _, p in sorted(scored, key=lambda t: _sort_key(t[0], prefer))]


# ----------------------------------------------------------------------------- recommend


class Recommendation(NamedTuple):
    gpu: str | None
    gpu_class: str | None
    memory_gb: float | None
    memory_source: str
    model: dict[str, Any]
    prefer: str
    plans: tuple[Estimate, ...]
    does_not_fit: tuple[Estimate, ...]
    blocked: int
    baseline: Estimate | None
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> Estimate | None:
        return self.plans[0] if self.plans else None

    @property
    def exit_code(self) -> int:
        """0 when a plan passes (and fits, where that is known); 1 when none does."""
        return 0 if self.plans else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "gpu_class": self.gpu_class,
            "memory_gb": None if self.memory_gb is None else round(self.memory_gb, 3),
            "memory_source": self.memory_source,
            "model": self.model,
            "prefer": self.prefer,
            "best": self.best.to_dict() if self.best else None,
            "plans": [e.to_dict() for e in self.plans],
            "does_not_fit": [e.to_dict() for e in self.does_not_fit],
            "blocked": self.blocked,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "notes": list(self.notes),
        }


def _model_layout(
    model: str | os.PathLike[str] | None, params: int | None, component: str
) -> tuple[Layout | None, dict[str, Any], dict[str, str] | None]:
    """The layout, a description of the model, and the plan a pre-quantized file fixes."""
    if model is not None and params is not None:
        raise InvalidInputError("--model and --params: give one, not both")
    if params is not None:
        return Layout.from_params(int(params)), {"params": int(params), "source": "--params"}, None
    if model is None:
        return None, {"params": None, "source": "none given: memory per parameter only"}, None
    from quantdoctor.files.detect import checked, detect

    found = checked(detect(model))  # a scheme the matrix lacks gives no plan to evaluate
    part = next((p for p in found.parts if p.component == component), None)
    chosen = part or found
    if chosen.parameters <= 0:
        raise InvalidInputError(f"--model {model}: no parameter count found in its headers")
    info = {
        "params": chosen.parameters,
        "source": f"detect {chosen.path}",
        "format": chosen.format,
        "engine": chosen.engine,
        "scheme": chosen.scheme,
    }
    fixed = chosen.plan if chosen.engine else None
    layout = Layout.from_params(chosen.parameters)
    if fixed and chosen.scheme:
        # a quantized file's bytes are what loads: count them, not a re-quantization
        info["note"] = "pre-quantized file: only its own engine and scheme load it as is"
        stored = (fixed["engine"], fixed["scheme"], chosen.bytes)
        layout = Layout(
            linears=layout.linears, other_params=layout.other_params, exact=False, stored=stored
        )
    return layout, info, fixed


def _candidates(
    matrix: Matrix, component: str, dtype: str, fixed: Mapping[str, str] | None
) -> list[list[Facets]]:
    """Per engine x scheme, its plans in OFFLOAD_ORDER, each offload in every mode the
    engine quantizes in (its default first)."""
    from quantdoctor.rules.core import Facets

    out: list[list[Facets]] = []
    for engine in matrix.engine_names:
        for scheme in matrix.scheme_names(engine):
            if fixed and (engine, scheme) != (fixed["engine"], fixed["scheme"]):
                continue
            if not fixed and matrix.bits(engine, scheme) >= 16:
                continue  # plain float storage is the baseline, not a quantization
            if fixed:
                modes: list[str] = [fixed.get("mode") or matrix.default_mode(engine)]
            else:  # the default first; pre where post would load at the unquantized size
                modes = [matrix.default_mode(engine)]
                modes += [
                    m
                    for m in matrix.modes(engine)
                    if m not in (matrix.default_mode(engine), "prequantized")
                ]
            out.append(
                [
                    Facets(engine, scheme, mode, o, component, dtype)
                    for o in OFFLOAD_ORDER
                    for mode in modes
                ]
            )
    return out


def _no_gpu(facts: Mapping[str, Any]) -> bool:
    """Whether this machine is known to run models on its CPU (no GPU backend)."""
    from quantdoctor.rules.vocab import BACKEND_ROWS

    row = BACKEND_ROWS.get(str(facts.get("backend")))
    return (row is not None and not row.accelerator) or facts.get("gpu.count") == 0


def _baseline(
    facts: Mapping[str, Any],
    layout: Layout | None,
    component: str,
    dtype: str,
    memory: float | None,
    matrix: Matrix,
    costs: Costs,
    activation_gb: float | None,
) -> Estimate | None:
    """Unquantized weights (as gguf BF16/F32 stores them), for comparison."""
    from quantdoctor.rules.core import Facets

    scheme = "F32" if dtype == "float32" else "BF16"
    if scheme not in matrix.scheme_names("gguf"):
        return None
    plan = Facets("gguf", scheme, matrix.default_mode("gguf"), "none", component, dtype)
    e = estimate(
        plan,
        facts,
        layout=layout,
        matrix=matrix,
        costs=costs,
        activation_gb=activation_gb,
        memory_gb=memory,
    )
    return e._replace(speed=1.0, speed_source="bf16 itself", status="baseline")


def recommend(
    env: Environment | Mapping[str, Any] | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    params: int | None = None,
    layout: Layout | None = None,
    component: str = "transformer",
    dtype: str = "bfloat16",
    vram_gb: float | None = None,
    prefer: str = "speed",
    activation_gb: float | None = None,
    matrix: Matrix | None = None,
    device: int = 0,
    verdicts: Iterable[Verdict] | None = None,
    limit: int | None = None,
) -> Recommendation:
    """Every plan that passes here, best first, with what it costs.

    ``env`` defaults to the probed machine. The model's size comes from ``model`` (a
    file or folder, read by ``detect``), ``params`` or ``layout``; with none, plans are
    ranked by speed and error alone. ``verdicts`` are verdicts already computed for this
    env (the doctor's grid): plans found there are not evaluated again.
    """
    from quantdoctor.rules.evaluate import default_matrix

    matrix = matrix or default_matrix()
    if env is None:
        from quantdoctor.doctor.probe import probe

        env = probe(packages=matrix.packages())
    found = plain_recommend(
        env,
        model=model,
        params=params,
        layout=layout,
        component=component,
        dtype=dtype,
        vram_gb=vram_gb,
        prefer=prefer,
        activation_gb=activation_gb,
        matrix=matrix,
        device=device,
        verdicts=verdicts,
        limit=limit,
    )
    # the public API's plans are ``Plan`` models; the evaluator's are named tuples
    from quantdoctor.rules.evaluate import _plan

    def public(e: Estimate) -> Estimate:
        return e._replace(plan=_plan(e.plan.to_json())) if isinstance(e.plan, tuple) else e

    return found._replace(
        plans=tuple(public(e) for e in found.plans),
        does_not_fit=tuple(public(e) for e in found.does_not_fit),
        baseline=public(found.baseline) if found.baseline is not None else None,
    )


def plain_recommend(
    env: Environment | Mapping[str, Any] | None,
    *,
    model: str | os.PathLike[str] | None = None,
    params: int | None = None,
    layout: Layout | None = None,
    component: str = "transformer",
    dtype: str = "bfloat16",
    vram_gb: float | None = None,
    prefer: str = "speed",
    activation_gb: float | None = None,
    matrix: Matrix,
    device: int = 0,
    verdicts: Iterable[Verdict | VerdictRecord] | None = None,
    limit: int | None = None,
    facts: Mapping[str, Any] | None = None,
    core: Core | None = None,
) -> Recommendation:
    """``recommend`` on plain data: its estimates' plans are ``Facets`` (named tuples
    with ``Plan``'s attributes), and ``facts`` (``facts_from_json`` of a probed machine,
    already checked) spare validating ``env`` again. What the doctor report uses: it
    builds no pydantic model. ``core``: the evaluator that judged ``verdicts`` (on
    ``facts`` and ``matrix``), whose conditions need not be evaluated again."""
    from quantdoctor.rules.core import FACETS, Core, Facets
    from quantdoctor.rules.vocab import COMPONENTS, DTYPES, suggest

    _check_prefer(prefer)
    if component not in COMPONENTS:
        raise InvalidInputError(
            f"component: {component!r} is not valid; {suggest(component, COMPONENTS)}"
        )
    if dtype not in DTYPES:
        raise InvalidInputError(f"dtype: {dtype!r} is not valid; {suggest(dtype, DTYPES)}")
    if vram_gb is not None and vram_gb <= 0:
        raise InvalidInputError(f"vram: {vram_gb:g} is not a memory size; give GiB > 0")
    costs = load_costs(matrix=matrix)
    if facts is None:
        if env is None:
            raise InvalidInputError("recommend: give an environment or its facts")
        facts = _facts(env, device)
    fixed = None
    if layout is None:
        layout, model_info, fixed = _model_layout(model, params, component)
    else:
        model_info = {"params": layout.params, "source": "layout"}
    if fixed and fixed["engine"] not in matrix.engine_names:
        raise InvalidInputError(f"--model {model}: holds {fixed['engine']}, an unknown engine")
    if fixed and fixed["scheme"] not in matrix.scheme_names(fixed["engine"]):
        raise InvalidInputError(
            f"--model {model}: holds {fixed['engine']} {fixed['scheme']}, a scheme the matrix "
            f"does not know; known {fixed['engine']} schemes are "
            + ", ".join(matrix.scheme_names(fixed["engine"]))
        )
    memory, memory_source = available_gb(facts, vram_gb, costs)
    notes = []
    gpu = gpu_class(facts, costs)
    speed_class = None
    if vram_gb is not None and _no_gpu(facts):
        # --vram sizes a GPU this machine does not have: its CPU's speeds say nothing of it
        speed_class = "unknown"
        notes.append(
            "no GPU here: --vram sizes a GPU quantdoctor cannot see, so speeds are those "
            "measured on an H100; which plans pass is still decided for this machine"
        )
    if core is None:
        core = Core(dict(facts), matrix)
    known = {
        p if type(p) is Facets else Facets(*(getattr(p, f) for f in FACETS)): v.status
        for v in verdicts or ()
        if (p := v.plan).mode  # a verdict's plan always names its mode
    }

    families = _candidates(matrix, component, dtype, fixed)
    # the statuses of the plans the verdicts given leave out, found all at once
    rest = [p for family in families for p in family if p not in known]
    known.update(zip(rest, core.statuses(rest), strict=True))

    def cost(plan: Facets, st: str) -> Estimate:
        return estimate(
            plan,
            facts,
            layout=layout,
            matrix=matrix,
            costs=costs,
            activation_gb=activation_gb,
            memory_gb=memory,
            status=st,
            speed_class=speed_class,
        )

    chosen: list[Estimate] = []
    too_big: list[Estimate] = []
    blocked = 0
    for family in families:
        passing = [(p, st) for p in family if (st := known[p]) in ("ok", "warn")]
        if not passing:
            blocked += 1
            continue
        best = next((e for p, st in passing if (e := cost(p, st)).fits is not False), None)
        if best is None:
            too_big.append(cost(*passing[-1]))
        else:
            chosen.append(best)
    chosen.sort(key=lambda e: _sort_key(e, prefer))
    too_big.sort(key=lambda e: e.peak_gb or 0.0)
    if gpu and not costs.speed.get(gpu) and speed_class is None:
        notes.append(
            f"speed not measured on {gpu} GPUs: the ratios shown were measured on hopper (H100)"
        )
    if layout is not None and not layout.exact:
        notes.append(
            "from a parameter count: layer shapes unknown, narrow layers counted as quantized"
        )
    baseline = _baseline(facts, layout, component, dtype, memory, matrix, costs, activation_gb)
    if baseline is not None and baseline.fits:
        notes.append(
            "unquantized bf16 fits here: quantizing saves memory; relative speed shows its cost"
        )
    return Recommendation(
        gpu=facts.get("gpu.name"),
        gpu_class=gpu,
        memory_gb=memory,
        memory_source=memory_source,
        model=model_info,
        prefer=prefer,
        plans=tuple(chosen[:limit] if limit else chosen),
        does_not_fit=tuple(too_big),
        blocked=blocked,
        baseline=baseline,
        notes=tuple(notes),
    )


def cost_rank(plans: list[Plan], facts: Mapping[str, Any], matrix: Matrix) -> list[Plan]:
    """``rank_plans`` in the shape the evaluator takes as its ``rank`` (``rules.evaluate``)."""
    return rank_plans(plans, facts=facts, matrix=matrix)

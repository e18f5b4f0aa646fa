"""Hypothesis strategies for plans and environments. They compose with ``st.builds``,
``.filter`` and ``.map``, and shrink towards the first values listed (a fully known,
ordinary Linux/CUDA machine; the first engine and scheme)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from quantdoctor.rules.evaluate import EnvLike, default_matrix, evaluate
from quantdoctor.rules.models import Environment, Plan
from quantdoctor.rules.vocab import COMPONENTS, DTYPES, ENGINES, OFFLOADS

_Fixed = Any  # a value, or a strategy for the value


def _facet(value: _Fixed, default: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    return st.just(value)


def plans(
    *,
    engine: _Fixed = None,
    scheme: _Fixed = None,
    mode: _Fixed = None,
    offload: _Fixed = None,
    component: _Fixed = None,
    dtype: _Fixed = None,
) -> st.SearchStrategy[Plan]:
    """Valid plans; any facet can be fixed (``plans(engine="quanto")``) or given a strategy.
    Schemes and modes are always ones the chosen engine has."""
    matrix = default_matrix()

    def for_engine(e: str) -> st.SearchStrategy[Plan]:
        spec = matrix.engines[e]
        schemes = _facet(scheme, st.sampled_from(list(spec.schemes))).filter(
            lambda s: s in spec.schemes
        )
        return st.builds(
            Plan,
            engine=st.just(e),
            scheme=schemes,
            mode=_facet(mode, st.sampled_from(list(spec.modes))),
            offload=_facet(offload, st.sampled_from(OFFLOADS)),
            component=_facet(component, st.sampled_from(COMPONENTS)),
            dtype=_facet(dtype, st.sampled_from(DTYPES)),
        )

    return _facet(engine, st.sampled_from(ENGINES)).flatmap(for_engine)


_VERSIONS: dict[str, list[str | None]] = {
    "bitsandbytes": ["0.50.2", "0.49.1", "0.48.2", "0.47.0", "0.46.1", "0.45.5", "0.44.1", None],
    "optimum-quanto": ["0.2.7", "0.2.6", "0.2.4", None],
    "torchao": ["0.18.0", "0.17.0", "0.16.0", "0.15.0", "0.14.1", "0.13.0", "0.7.0", None],
    "gguf": ["0.19.0", "0.17.1", "0.10.0", None],
    "nncf": ["3.4.0", "3.1.0", "2.19.0", "2.14.1", None],
    "diffusers": ["0.42.1", "0.40.0", "0.38.0", "0.35.2", "0.33.1", "0.32.2", "0.30.3", None],
    "accelerate": ["1.15.0", "1.7.0", "1.2.1", "0.34.2", None],
    "mslk": [None, "1.1.0"],
    "fbgemm-gpu-genai": [None, "1.2.0"],
    "intel-extension-for-pytorch": [None, "2.3.110", "2.8.10"],
    "openvino": [None, "2026.2.1"],
}

_MACHINES: list[dict[str, Any]] = [
    {"backend": "cuda", "vendor": "nvidia", "os": "linux", "cuda": "13.0"},
    {"backend": "cuda", "vendor": "nvidia", "os": "windows", "cuda": "12.6"},
    {"backend": "rocm", "vendor": "amd", "os": "linux", "hip": "7.2"},
    {"backend": "zluda", "vendor": "amd", "os": "windows", "cuda": "11.8"},
    {"backend": "xpu", "vendor": "intel", "os": "linux", "xpu": True},
    {"backend": "directml", "vendor": "amd", "os": "windows"},
    {"backend": "mps", "vendor": "apple", "os": "darwin"},
    {"backend": "cpu", "vendor": None, "os": "linux"},
    {"backend": "openvino", "vendor": None, "os": "linux"},
]
_CC = ["9.0", "8.9", "8.6", "8.0", "7.5", "7.0", "6.1", "5.2", "12.0", "10.0"]
_GFX = ["gfx1100", "gfx942", "gfx90a", "gfx1030", "gfx1201", "gfx950"]
_TORCH = ["2.13.0", "2.11.0", "2.10.0", "2.9.1", "2.8.0", "2.7.1", "2.6.0", "2.5.1", "2.4.1", "2.3.1"]


@st.composite
def _full_environment(draw: st.DrawFn) -> dict[str, Any]:
    machine = draw(st.sampled_from(_MACHINES))
    torch_version = draw(st.sampled_from(_TORCH))
    gpu: dict[str, Any] | None = None
    if machine["vendor"] is not None:
        gpu = {"vendor": machine["vendor"], "name": f"{machine['vendor']} GPU"}
        if machine["vendor"] == "nvidia":
            gpu["cuda_cc"] = draw(st.sampled_from(_CC))
        if machine["vendor"] == "amd":
            gpu["gfx"] = draw(st.sampled_from(_GFX))
        gpu["memory_gb"] = draw(st.sampled_from([8.0, 12.0, 16.0, 24.0, 48.0, 80.0]))
    triton = draw(
        st.sampled_from([None, {"version": "3.6.0", "works": True}, {"version": "3.1.0", "works": False}])
    )
    return {
        "os": machine["os"],
        "wsl": False,
        "arch": "arm64" if machine["os"] == "darwin" else "x86_64",
        "python": draw(st.sampled_from(["3.12.3", "3.11.7", "3.10.14"])),
        "backend": machine["backend"],
        "torch": draw(
            st.sampled_from(
                [
                    {
                        "version": torch_version,
                        "cuda": machine.get("cuda"),
                        "hip": machine.get("hip"),
                        "xpu": machine.get("xpu", False),
                    },
                    None,
                ]
            ).filter(lambda t: True)
        )
        if draw(st.integers(0, 9)) == 0
        else {
            "version": torch_version,
            "cuda": machine.get("cuda"),
            "hip": machine.get("hip"),
            "xpu": machine.get("xpu", False),
        },
        "gpus": [gpu] if gpu else [],
        "triton": triton,
        "packages": {name: draw(st.sampled_from(vs)) for name, vs in _VERSIONS.items()},
    }


def _forget(data: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """Make facts unknown by removing their keys (dotted paths reach into nested objects)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key in keys:
        top, _, sub = key.partition(".")
        if not sub:
            out.pop(top, None)
        elif isinstance(out.get(top), dict):
            out[top].pop(sub, None)
        elif top == "gpus" and out.get("gpus"):
            out["gpus"] = [{k: v for k, v in out["gpus"][0].items() if k != sub}]
    return out


_FORGETTABLE = [
    "os",
    "backend",
    "torch",
    "torch.version",
    "torch.cuda",
    "gpus",
    "gpus.cuda_cc",
    "gpus.gfx",
    "gpus.vendor",
    "triton",
    *(f"packages.{name}" for name in _VERSIONS),
]


def environment_dicts(*, partial: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Environment JSON mappings; with ``partial`` some facts are left unknown."""
    full = _full_environment()
    if not partial:
        return full
    return st.tuples(full, st.lists(st.sampled_from(_FORGETTABLE), unique=True, max_size=6)).map(
        lambda t: _forget(t[0], t[1])
    )


def environments(*, partial: bool = True, **fixed: Any) -> st.SearchStrategy[Environment]:
    """Realistic environments across every backend, including partial ones (missing facts)
    and known-absent ones (``null``). Keyword arguments fix top-level keys
    (``environments(backend="cuda")`` ...); a fixed ``packages`` mapping is merged in."""

    def apply(data: dict[str, Any]) -> Environment:
        data = dict(data)
        packages = fixed.get("packages")
        data.update({k: v for k, v in fixed.items() if k != "packages"})
        if packages is not None:
            data["packages"] = {**data.get("packages", {}), **packages}
        return Environment.model_validate(data)

    return environment_dicts(partial=partial).map(apply)


def supported_plans(env: EnvLike, **fixed: _Fixed) -> st.SearchStrategy[Plan]:
    """Plans that evaluate ok or warn on ``env`` (facets can be fixed as in ``plans``)."""
    return plans(**fixed).filter(lambda p: evaluate(p, env, alternatives=0).passes)

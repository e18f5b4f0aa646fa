"""quantdoctor.quantize applies each engine for real on a tiny model built here.

Every engine x scheme that runs on a CPU today (evidence: cpu-2026-11-25.md) quantizes
the model; its output is compared with the float model's under a per-scheme bound (about
twice the relative error the evidence measured) and its weights must take fewer bytes.
Blocked plans raise before the module is touched.
"""

from __future__ import annotations

import importlib.metadata as md
import io
import platform
import warnings

import pytest

torch = pytest.importorskip("torch")

from quantdoctor import quantize  # noqa: E402
from quantdoctor.engines import get_adapter  # noqa: E402
from quantdoctor.errors import IncompatiblePlanError, InvalidInputError  # noqa: E402
from quantdoctor.rules.models import Environment, Plan  # noqa: E402

_PACKAGES = (
    "bitsandbytes",
    "optimum-quanto",
    "torchao",
    "gguf",
    "nncf",
    "diffusers",
    "accelerate",
    "transformers",
    "safetensors",
    "mslk",
    "fbgemm-gpu-genai",
    "numpy",
)


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def cpu_env() -> Environment:
    """This machine as a CPU-only environment (package versions read from metadata)."""
    triton = _version("triton")
    return Environment.model_validate(
        {
            "os": "linux",
            "wsl": False,
            "arch": platform.machine(),
            "python": platform.python_version(),
            "backend": "cpu",
            "torch": {"version": torch.__version__, "cuda": None, "hip": None, "xpu": False},
            "gpus": [],
            "triton": None if triton is None else {"version": triton, "works": None},
            "packages": {name: _version(name) for name in _PACKAGES},
        }
    )


class MLP(torch.nn.Module):
    """A plain module (not nn.Sequential): 256 -> 512 -> 512 -> 256 with GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.l0 = torch.nn.Linear(256, 512)
        self.l1 = torch.nn.Linear(512, 512)
        self.l2 = torch.nn.Linear(512, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gelu = torch.nn.functional.gelu
        return self.l2(gelu(self.l1(gelu(self.l0(x)))))


def make_model() -> MLP:
    torch.manual_seed(0)
    return MLP().eval()


def make_input() -> torch.Tensor:
    return torch.randn(16, 256, generator=torch.Generator().manual_seed(1))


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.float() - ref.float()).norm() / ref.float().norm())


def state_bytes(module: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# engine, scheme, max relative output error, max state_dict bytes vs float32
CPU_CASES = [
    ("bitsandbytes", "nf4", 0.20, 0.30),
    ("bitsandbytes", "fp4", 0.25, 0.30),
    ("bitsandbytes", "int8", 0.02, 0.40),
    ("quanto", "qint8", 0.02, 0.40),
    ("quanto", "qint4", 0.15, 0.30),
    ("quanto", "qint2", 0.80, 0.25),
    ("quanto", "qfloat8_e4m3fn", 0.06, 0.40),
    ("quanto", "qfloat8_e5m2", 0.12, 0.40),
    ("torchao", "int8wo", 0.02, 0.40),
    ("torchao", "int8dq", 0.04, 0.40),
    ("torchao", "float8wo", 0.06, 0.40),
    ("torchao", "int4dq", 0.15, 0.45),
    ("nncf", "int8_sym", 0.02, 0.40),
    ("nncf", "int8_asym", 0.02, 0.40),
    ("nncf", "int4_sym", 0.15, 0.30),
    ("nncf", "int4_asym", 0.15, 0.30),
    ("gguf", "Q8_0", 0.02, 0.35),
    ("gguf", "Q5_1", 0.08, 0.30),
    ("gguf", "Q5_0", 0.08, 0.30),
    ("gguf", "Q4_1", 0.15, 0.30),
    ("gguf", "Q4_0", 0.15, 0.25),
    ("gguf", "BF16", 0.01, 0.60),
    ("gguf", "F16", 0.005, 0.60),
]


@pytest.mark.parametrize(("engine", "scheme", "max_err", "max_size"), CPU_CASES)
def test_quantize_runs_on_cpu_within_error_bound_and_shrinks_weights(
    engine: str, scheme: str, max_err: float, max_size: float
) -> None:
    model, x = make_model(), make_input()
    with torch.no_grad():
        ref = model(x)
    base = state_bytes(model)
    plan = Plan(engine=engine, scheme=scheme, mode="post", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = quantize(model, plan, env=cpu_env(), example_input=x)
        with torch.no_grad():
            y = qmodel(x)
    assert y.shape == ref.shape
    assert torch.isfinite(y).all()
    err = rel_err(y, ref)
    assert err <= max_err, f"{engine} {scheme}: rel err {err:.4f} > {max_err}"
    assert err > 0, f"{engine} {scheme}: output identical to float; nothing was quantized"
    ratio = state_bytes(qmodel) / base
    assert ratio <= max_size, f"{engine} {scheme}: weights take {ratio:.2f} of float32"


def test_gguf_f32_post_is_exact() -> None:
    model, x = make_model(), make_input()
    with torch.no_grad():
        ref = model(x)
    plan = Plan(engine="gguf", scheme="F32", mode="post", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = quantize(model, plan, env=cpu_env())
    with torch.no_grad():
        assert torch.equal(qmodel(x), ref)


def test_adapters_swap_the_engine_layers_in() -> None:
    import bitsandbytes as bnb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = quantize(
            make_model(), Plan(engine="bitsandbytes", scheme="nf4", dtype="float32"), env=cpu_env()
        )
    assert all(isinstance(m, bnb.nn.Linear4bit) for m in (model.l0, model.l1, model.l2))
    assert model.l0.weight.dtype == torch.uint8


BLOCKED_PLANS = [
    # evidence gpu-diffusers-2026-11-25-h100.md: fails with every environment
    Plan(engine="quanto", scheme="qint8", offload="sequential"),
    Plan(engine="bitsandbytes", scheme="nf4", offload="sequential"),
    # evidence cpu-2026-11-25.md: these fail on a CPU
    Plan(engine="torchao", scheme="int4wo", mode="post"),
    Plan(engine="torchao", scheme="float8dq", mode="post"),
]


@pytest.mark.parametrize("plan", BLOCKED_PLANS, ids=lambda p: p.label())
def test_blocked_plan_raises_before_touching_the_module(plan: Plan) -> None:
    model = make_model()
    before = snapshot(model)
    types = [type(m) for m in model.modules()]
    with pytest.raises(IncompatiblePlanError) as info:
        quantize(model, plan, env=cpu_env(), example_input=make_input())
    assert info.value.verdict.status == "blocked"
    assert [type(m) for m in model.modules()] == types
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_nncf_without_example_input_names_the_argument_and_leaves_the_module() -> None:
    model = make_model()
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidInputError, match="example_input"):
            quantize(model, Plan(engine="nncf", scheme="int8_asym"), env=cpu_env())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_nncf_compresses_a_sequential_root_through_a_wrapper() -> None:
    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256)
    ).eval()
    x = make_input()
    with torch.no_grad():
        ref = seq(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compressed = quantize(
            seq, Plan(engine="nncf", scheme="int8_asym"), env=cpu_env(), example_input=x
        )
        with torch.no_grad():
            y = compressed(x)
    assert rel_err(y, ref) < 0.02


def test_mode_pre_points_to_to_diffusers() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidInputError, match="to_diffusers"):
            quantize(make_model(), Plan(engine="quanto", scheme="qint8", mode="pre"), env=cpu_env())


def test_gguf_prequantized_points_to_load_gguf() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidInputError, match="load_gguf"):
            quantize(make_model(), Plan(engine="gguf", scheme="Q8_0"), env=cpu_env())


def test_gguf_post_refuses_k_quants_before_touching_the_module() -> None:
    model = make_model()
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            quantize(model, Plan(engine="gguf", scheme="Q4_K", mode="post"), env=cpu_env())
        except (InvalidInputError, IncompatiblePlanError) as exc:
            assert "Q4_K" in str(exc)
        else:
            pytest.fail("gguf-py cannot quantize Q4_K: quantize must refuse")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("engine", ["bitsandbytes", "quanto", "torchao", "gguf", "nncf"])
def test_progress_bar_runs_over_the_layers(engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    scheme = {
        "bitsandbytes": "int8",
        "quanto": "qint8",
        "torchao": "int8wo",
        "gguf": "Q8_0",
        "nncf": "int8_asym",
    }[engine]
    model, x = make_model(), make_input()
    with torch.no_grad():
        ref = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = Plan(engine=engine, scheme=scheme, mode="post", dtype="float32")
        qmodel = quantize(model, plan, env=cpu_env(), example_input=x, progress=True)
        with torch.no_grad():
            assert rel_err(qmodel(x), ref) < 0.02
    bars = [line for line in capsys.readouterr().out.splitlines() if f"{engine} {scheme}" in line]
    assert bars, "no progress bar named after the plan"
    assert "3/3" in bars[-1].replace(" ", ""), bars[-1]


def test_quantize_accepts_a_plan_as_a_mapping() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = quantize(
            make_model(),
            {"engine": "torchao", "scheme": "int8wo", "dtype": "float32"},
            env=cpu_env(),
        )
    assert type(model.l0.weight).__name__ != "Parameter"


def test_unknown_engine_has_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="valid values"):
        get_adapter("tensorrt")


def test_engine_package_is_import_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, quantdoctor.engines; print(any(m in sys.modules for m in ('torch', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_scheme_api_name_in_the_matrix_is_one_the_engine_has() -> None:
    import importlib

    from quantdoctor.engines import get_adapter
    from quantdoctor.engines.gguf_dequant import TYPES
    from quantdoctor.rules.matrix import load_matrix

    matrix = load_matrix(defaults=False)
    namespaces = {
        "quanto": importlib.import_module("optimum.quanto"),
        "torchao": importlib.import_module("torchao.quantization"),
        "nncf": importlib.import_module("nncf").CompressWeightsMode,
    }
    for engine, spec in matrix.engines.items():
        if "post" in spec.modes:
            assert get_adapter(engine, matrix).engine == engine
        else:  # checkpoints that only load pre-quantized: nothing to apply, said plainly
            with pytest.raises(InvalidInputError, match="has no adapter"):
                get_adapter(engine, matrix)
        for scheme, s in spec.schemes.items():
            if engine in namespaces:
                assert hasattr(namespaces[engine], s.api), f"{engine} {scheme}: {s.api}"
            elif engine == "bitsandbytes":
                assert s.api in ("nf4", "fp4", "int8"), scheme
            elif engine == "gguf":
                assert s.api == scheme and scheme in TYPES, f"gguf {scheme}: no dequantizer"


@pytest.mark.parametrize(
    ("engine", "scheme"),
    [
        ("bitsandbytes", "nf4"),
        ("bitsandbytes", "int8"),
        ("quanto", "qint8"),
        ("torchao", "int8wo"),
        ("torchao", "float8dq"),
        ("nncf", "int8_asym"),
        ("gguf", "Q8_0"),
    ],
)
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quantize_on_gpu(engine: str, scheme: str) -> None:
    from quantdoctor.doctor.probe import probe

    model, x = make_model().cuda().to(torch.bfloat16), make_input().cuda().to(torch.bfloat16)
    with torch.no_grad():
        ref = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel = quantize(
            model, Plan(engine=engine, scheme=scheme, mode="post"), env=probe(), example_input=x
        )
        with torch.no_grad():
            y = qmodel(x)
    assert y.device.type == "cuda"
    assert rel_err(y, ref) < 0.25


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bitsandbytes_int8_quantizes_a_module_already_on_the_gpu() -> None:
    """Int8Params quantizes only on a move from the CPU: a module on the GPU must still
    end with int8 weights and their row scales, not bf16 ones re-quantized per forward."""
    from quantdoctor.doctor.probe import probe

    model = make_model().cuda().to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize(model, Plan(engine="bitsandbytes", scheme="int8"), env=probe())
    for layer in (model.l0, model.l1, model.l2):
        assert layer.weight.device.type == "cuda"
        assert layer.weight.dtype == torch.int8
        assert layer.weight.SCB is not None


@pytest.mark.parametrize("scheme", ["nf4", "fp4"])
def test_bitsandbytes_4bit_stores_what_the_matrix_block_layout_says(scheme: str) -> None:
    """36 bytes per block of 64 (packed codes + an fp32 absmax), as diffusers stores it."""
    from quantdoctor.rules.matrix import load_matrix

    spec = load_matrix(defaults=False).engines["bitsandbytes"].schemes[scheme]
    model = torch.nn.Sequential(torch.nn.Linear(256, 512, bias=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize(model, Plan(engine="bitsandbytes", scheme=scheme, mode="post"), env=cpu_env())
    weight = model[0].weight
    stored = weight.data.numel() * weight.data.element_size()
    state = weight.quant_state
    stored += state.absmax.numel() * state.absmax.element_size()
    assert state.nested is False
    assert stored == 256 * 512 * spec.block_bytes // spec.block


def test_a_bare_layer_is_refused_where_the_engine_replaces_layers_below_the_root() -> None:
    # quanto, bitsandbytes, sdnq... swap the layers below the module they are given: a
    # bare nn.Linear would come back unchanged or broken, so it is refused untouched;
    # wrapped in nn.Sequential it is quantized. torchao quantizes the layer it is given.
    layer = torch.nn.Linear(64, 64)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(InvalidInputError, match=r"^module: quanto .* torch\.nn\.Sequential"):
        quantize(layer, Plan(engine="quanto", scheme="qint8", mode="post"))
    assert type(layer.weight) is torch.nn.Parameter
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    wrapped = quantize(torch.nn.Sequential(layer), Plan(engine="quanto", scheme="qint8"))
    assert type(wrapped[0]).__name__ == "QLinear"
    x = torch.randn(3, 64)
    alone = torch.nn.Linear(64, 64)
    reference = alone(x)
    done = quantize(alone, Plan(engine="torchao", scheme="int8wo"))
    assert type(done.weight).__name__ != "Parameter"
    assert (done(x) - reference).norm() / reference.norm() < 0.05


def test_to_diffusers_refuses_a_plan_in_mode_post() -> None:
    with pytest.raises(InvalidInputError, match=r"^mode: to_diffusers\(\) builds"):
        Plan(engine="bitsandbytes", scheme="nf4", mode="post").to_diffusers()

"""What a model file is, from its header alone: format, engine, scheme, component, size.

``detect(path)`` reads only headers (a safetensors JSON header, a GGUF key/value and
tensor-info block, a diffusers ``config.json``/``model_index.json``, a sharded
``*.safetensors.index.json``), never tensor data, and never writes. It needs only the
standard library, so it works where torch or the engines are missing or broken. A file
that is truncated, random or lies about its sizes raises ``UnreadableFileError`` naming
the file and what is wrong with it.

How each engine shows in a file (reference/engines.md section 9) is its module's
``fingerprint`` (``quantdoctor.engines.<name>``, found through the matrix's engines
section; see ``files.fingerprint``), and a ``quantization_config`` its
``scheme_from_config``. Besides those:
- plain float8 dtypes with no engine's weights: fp8 weights, not an engine.
- GGUF: every tensor's ggml type; the scheme is the quantized type holding most bytes;
  the engine is the one whose section lists the format (``formats: [gguf]``).
"""

from __future__ import annotations

import os
from types import MappingProxyType

from quantdoctor._fileio import open_regular, read_exact, unreadable
from quantdoctor.files import _comfy, _gguf_header, _safetensors_header
from quantdoctor.files._layouts import (
    CONFIG_CLASSES,
    GGUF_IMAGE_ARCHS,
    GGUF_TEXT_ARCHS,
    Recognised,
    base_name,
    classify,
)
from quantdoctor.files._safetensors_header import SafetensorsHeader
from quantdoctor.files.fingerprint import Quantized, TensorView, read_json

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path
    from typing import Any, NamedTuple, TypeVar

    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import EngineRecord

    K = TypeVar("K")
else:
    from quantdoctor._namedtuple import NamedTuple

__all__ = ["Detection", "checked", "detect"]

MAX_SHARDS = 10_000

FLOAT8 = {"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_FLOAT_STORAGE = {"F32", "F16", "BF16", "F64"}


class Detection(NamedTuple):
    """What a model file (or folder) holds, and the plan that would load it."""

    path: str
    format: str
    engine: str | None = None
    scheme: str | None = None
    component: str | None = None
    architecture: str | None = None
    #: the released size or version within the architecture's family (``14B``, ``klein-4B``)
    variant: str | None = None
    #: the key layout it was recognised in (``original``, ``diffusers``, ``transformers``...)
    layout: str | None = None
    #: where the markers that recognised it come from
    recognised_by: str | None = None
    parameters: int = 0
    bytes: int = 0
    tensors: int = 0
    #: storage dtype (safetensors) or ggml type (GGUF) -> bytes of tensor data
    dtypes: Mapping[str, int] = MappingProxyType({})
    notes: tuple[str, ...] = ()
    #: a diffusers pipeline folder's components
    parts: tuple[Detection, ...] = ()
    #: False when the engine or scheme found is not one the matrix can evaluate
    plannable: bool = True

    @property
    def plan(self) -> dict[str, str] | None:
        """The plan facets that load this file as it is (mode ``prequantized``)."""
        if self.engine is None or self.scheme is None or not self.plannable:
            return None
        plan = {"engine": self.engine, "scheme": self.scheme, "mode": "prequantized"}
        if self.component is not None:
            plan["component"] = self.component
        return plan

    def to_plan(self) -> Plan | None:
        """A ``Plan`` for ``quantdoctor check``; None when no engine quantized this file."""
        facets = self.plan
        if facets is None:
            return None
        from pydantic import ValidationError

        from quantdoctor.errors import InvalidInputError
        from quantdoctor.rules.models import Plan

        try:
            return Plan(**facets)
        except ValidationError as err:
            problem = err.errors()[0]["msg"].removeprefix("Value error, ")
            raise InvalidInputError(f"{self.path}: detected plan is not valid: {problem}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "engine": self.engine,
            "scheme": self.scheme,
            "component": self.component,
            "architecture": self.architecture,
            "variant": self.variant,
            "layout": self.layout,
            "recognised_by": self.recognised_by,
            "parameters": self.parameters,
            "bytes": self.bytes,
            "tensors": self.tensors,
            "dtypes": dict(self.dtypes),
            "plan": self.plan,
            "notes": list(self.notes),
            "parts": [p.to_dict() for p in self.parts],
        }


def checked(found: Detection, matrix: Matrix | None = None) -> Detection:
    """``found`` with its plan withdrawn, and a note, where the matrix does not know it.

    ``detect`` names what the file holds, whatever it is (a GGUF in ``IQ2_XXS``, a torchao
    ``nvfp4`` checkpoint); the plan it offers must be one ``quantdoctor check`` accepts.
    This reads the matrix (``matrix``, else the default one), so it is kept apart from
    the header reading.
    """
    if matrix is None:
        from quantdoctor.rules.records import engine_sections

        engines = engine_sections()
    else:
        engines = matrix.records
    return _checked(found, engines)


def _checked(found: Detection, engines: dict[str, EngineRecord]) -> Detection:
    parts = tuple(_checked(p, engines) for p in found.parts)
    if found.plan is None:
        return found._replace(parts=parts)
    engine, scheme = found.plan["engine"], found.plan["scheme"]
    if engine in engines and scheme in engines[engine].schemes:
        return found._replace(parts=parts)
    known = ", ".join(engines[engine].schemes if engine in engines else engines)
    note = (
        f"{engine} {scheme} is not a plan quantdoctor's matrix knows, so it offers none to "
        f"check (known: {known})"
    )
    return found._replace(parts=parts, plannable=False, notes=(*found.notes, note))


def detect(path: str | os.PathLike[str]) -> Detection:
    """Recognise the model at ``path`` (file or folder) from its headers alone."""
    shown = path_text(path)  # "" is ".", "a.index.json/." is "a.index.json", as Path says
    if os.path.isdir(shown) or os.path.basename(shown).endswith(".index.json"):
        from pathlib import Path  # folders and shards: a single file needs no pathlib

        p = Path(shown)
        return _detect_dir(p) if p.is_dir() else _detect_index(p)
    f, size = open_regular(shown)
    with f:
        prefix = read_exact(f, min(size, 9), shown, "the first bytes")
    name = os.path.basename(shown)
    dot = name.rfind(".")
    suffix = name[dot:] if 0 < dot < len(name) - 1 else ""  # PurePath.suffix
    if _gguf_header.looks_like_gguf(prefix) or (
        suffix == ".gguf" and not _safetensors_header.looks_like_safetensors(prefix)
    ):
        return _detect_gguf(shown)  # a .gguf that is not one: the parser names what is wrong
    if _safetensors_header.looks_like_safetensors(prefix) or suffix == ".safetensors":
        return _detect_safetensors(shown)
    raise unreadable(shown, "not a safetensors or GGUF file, nor a diffusers folder")


def path_text(path: str | os.PathLike[str]) -> str:
    """``str(Path(path))`` without importing pathlib (a third of a process's start-up):
    repeated separators and ``.`` parts dropped, ``..`` kept, ``//`` kept as a root."""
    text = os.fspath(path)
    if os.name != "posix" or os.sep != "/":
        from pathlib import Path

        return str(Path(text))
    root = "/" if text.startswith("/") else ""
    if text.startswith("//") and not text.startswith("///"):
        root = "//"
    parts = [part for part in text.split("/") if part and part != "."]
    return (root + "/".join(parts)) or "."


# ----------------------------------------------------------------------------- GGUF


def _format_engine(fmt: str) -> str | None:
    """The engine whose files are this format (its matrix section's ``formats``)."""
    from quantdoctor.rules.records import engine_sections

    # the sections alone (plain data): no engine's module is imported for this
    return next((name for name, spec in engine_sections().items() if fmt in spec.formats), None)


def _detect_gguf(path: str | Path) -> Detection:
    header = _gguf_header.read_header(path)
    by_type: dict[str, int] = {}
    for t in header.tensors:
        by_type[t.type_name] = by_type.get(t.type_name, 0) + t.nbytes
    quantized = {k: v for k, v in by_type.items() if k not in _FLOAT_STORAGE}
    notes: list[str] = []
    scheme = _gguf_file_type(header.metadata.get("general.file_type"), by_type, notes)
    if scheme is None:
        scheme = max(quantized or by_type, key=lambda k: (quantized or by_type)[k], default=None)
    if len(by_type) > 1:
        total = sum(by_type.values()) or 1
        mix = ", ".join(f"{k} {v / total:.0%}" for k, v in _largest_first(by_type))
        notes.append(f"tensor types by bytes: {mix}")
    label_value = header.metadata.get("general.architecture")
    label = label_value if isinstance(label_value, str) else None
    shapes = {t.name: tuple(reversed(t.shape)) for t in header.tensors}
    found, component, arch = _gguf_architecture(label, classify(shapes), notes)
    return Detection(
        path=str(path),
        format="gguf",
        engine=_format_engine("gguf"),
        scheme=scheme,
        component=component,
        architecture=arch,
        variant=found.variant,
        layout=found.layout,
        recognised_by=found.origin,
        parameters=sum(t.numel for t in header.tensors),
        bytes=sum(t.nbytes for t in header.tensors),
        tensors=len(header.tensors),
        dtypes=dict(_largest_first(by_type)),
        notes=tuple(notes),
    )


def _gguf_file_type(value: object, by_type: dict[str, int], notes: list[str]) -> str | None:
    """The scheme ``general.file_type`` names (llama.cpp's ``LlamaFileType``), or None.

    A mix such as ``MOSTLY_Q4_K_M`` is named for the ggml type that holds most of it
    (``Q4_K``): that is the scheme the matrix knows; the mix's name goes in a note.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    known = _gguf_header.LLAMA_FILE_TYPES.get(value)
    if known is None:
        notes.append(f"general.file_type {value} is not a llama.cpp file type gguf-py knows")
        return None
    name, ggml_type = known
    if ggml_type is None:
        return None
    notes.append(f"general.file_type {name}")
    if ggml_type not in by_type:
        notes.append(f"general.file_type says {name} but no tensor is stored as {ggml_type}")
    return ggml_type


def _gguf_architecture(
    label: str | None, found: Recognised, notes: list[str]
) -> tuple[Recognised, str | None, str | None]:
    """(recognised layout, component, architecture): the label checked against the names.

    ``general.architecture`` is what the converter wrote; ComfyUI-GGUF's converter writes
    ``flux`` for every model with BFL's ``double_blocks`` (Chroma and Flux.2 too). The
    tensor names decide the family; a label that covers it is kept quiet when it is the
    family's own, named when it is a broader one, and reported when it contradicts them.
    """
    if label in (None, "pig", "cow"):
        # ComfyUI-GGUF "compatibility mode" (stable-diffusion.cpp files): names decide.
        return found, found.component, found.family
    covers: frozenset[str] | None = None
    component: str | None = None
    if label in GGUF_IMAGE_ARCHS:
        component, covers = GGUF_IMAGE_ARCHS[label]
    elif label in GGUF_TEXT_ARCHS:
        component, covers = "text_encoder", GGUF_TEXT_ARCHS[label]
    if found.family is None:
        if covers is not None:
            notes.append(
                f"general.architecture is {label!r}; the tensor names match no layout detect knows"
            )
        return found, component, label
    if covers is None:
        notes.append(f"general.architecture {label!r} is not a label ComfyUI-GGUF or detect knows")
    elif found.family not in covers:
        notes.append(
            f"general.architecture says {label!r} but the tensor names are {found.family}'s "
            f"({found.origin}): the label is wrong"
        )
    elif found.family != label:
        notes.append(
            f"general.architecture {label!r} is the converter's broader label; "
            f"the tensor names are {found.family}'s"
        )
    return found, found.component or component, found.family


# ---------------------------------------------------------------------- safetensors


def _detect_safetensors(path: str) -> Detection:
    """One file (``path_text``'s spelling: ``str(Path(path))``), without pathlib."""
    header = _safetensors_header.read_header(path)
    return _analyse(path, "safetensors", [header], os.path.dirname(path) or ".")


def _engines() -> list[tuple[str, Any, Any]]:
    """(name, matrix section, module) of every engine: the registry is the matrix."""
    from quantdoctor import _module
    from quantdoctor.rules.records import engine_sections

    # engines' modules are found by the name their section gives, not imported here
    return [
        (name, spec, _module(spec.module_name(name))) for name, spec in engine_sections().items()
    ]


def _fingerprints(view: TensorView) -> list[Quantized]:
    """Each engine's quantized weights in the file, as its module recognises them."""
    found: list[Quantized] = []
    for _, spec, module in _engines():
        fingerprint = getattr(module, "fingerprint", None)
        if fingerprint is not None:
            found.extend(fingerprint(view, spec))
    return found


def _analyse(where: str, fmt: str, headers: list[SafetensorsHeader], folder: str) -> Detection:
    tensors = [t for h in headers for t in h.tensors]
    by_name = {t.name: t for t in tensors}
    metadata = {k: v for h in headers for k, v in h.metadata.items()}
    comfy = _comfy.find(by_name, metadata)
    found = [*_fingerprints(TensorView(where, headers, by_name, folder)), *_comfyui(comfy)]
    counted: dict[str, int] = {}
    for q in found:
        counted.update(q.weights)
    parameters = 0
    names: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    weight_dtypes: dict[str, int] = {}
    for t in tensors:
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + t.nbytes
        base = base_name(t.name)
        if base is None and t.name not in counted:
            continue
        parameters += counted.get(t.name, t.numel)
        if base is not None:
            names[base] = t.shape
        if t.name not in counted:
            weight_dtypes[t.dtype] = weight_dtypes.get(t.dtype, 0) + t.nbytes
    recognised = classify(names)
    engine, scheme, notes = _decide(found)
    plannable = True
    if engine == "comfyui" and comfy is not None:
        plannable = False
        notes.extend(_comfy.notes(scheme, comfy.how))
    elif engine is None and weight_dtypes:
        top = _largest_first(weight_dtypes)[0][0]
        scaled = any(n.endswith((".weight_scale", ".scale_weight")) for n in by_name)
        if top in FLOAT8 and scaled:
            notes.append(
                f"fp8 weights ({FLOAT8[top]}) with per-layer scales (weight_scale or "
                f"scale_weight): a scaled fp8 format; {_comfy.NEEDS_SCALES}"
            )
        elif top in FLOAT8:
            notes.append(
                f"fp8 weights ({FLOAT8[top]}), not an engine: a plain checkpoint stored in "
                "float8; it loads without a quantization engine (upcast on load or layerwise "
                "casting)"
            )
    return Detection(
        path=where,
        format=fmt,
        engine=engine,
        scheme=scheme,
        component=recognised.component,
        architecture=recognised.family,
        variant=recognised.variant,
        layout=recognised.layout,
        recognised_by=recognised.origin,
        parameters=parameters,
        bytes=sum(t.nbytes for t in tensors),
        tensors=len(tensors),
        dtypes=dict(_largest_first(dtypes)),
        notes=tuple(notes),
        plannable=plannable,
    )


def _comfyui(comfy: _comfy.ComfyFinding | None) -> list[Quantized]:
    found: dict[str, Quantized] = {}
    for name, (fmt, params) in (comfy.weights if comfy else {}).items():
        q = found.setdefault(fmt, Quantized("comfyui", fmt))
        q.weights[name] = params
    return list(found.values())


def _largest_first(counts: Mapping[K, int]) -> list[tuple[K, int]]:
    """``Counter(counts).most_common()``: the largest first, ties in the order counted
    (``collections``, which Counter needs, costs a command ~3 ms of imports)."""
    return sorted(counts.items(), key=_count, reverse=True)


def _count(item: tuple[Any, int]) -> int:
    return item[1]


def _summed(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """``sum(map(Counter, parts), Counter())``: totals by key, keys in the order first
    met, those that total zero or less left out."""
    total: dict[str, int] = {}
    for part in parts:
        for key, n in part.items():
            total[key] = total.get(key, 0) + n
    return {key: n for key, n in total.items() if n > 0}


def _decide(found: list[Quantized]) -> tuple[str | None, str | None, list[str]]:
    """The engine and scheme holding the most quantized weights, with notes on any mix."""
    if not found:
        return None, None, []
    by_plan: dict[tuple[str, str | None], int] = {}
    for q in found:
        plan = (q.engine, q.scheme)
        by_plan[plan] = by_plan.get(plan, 0) + sum(q.weights.values())
    ranked = _largest_first(by_plan)
    (engine, scheme), _ = ranked[0]
    notes: list[str] = []
    if len(by_plan) > 1:
        total = sum(by_plan.values()) or 1
        mix = ", ".join(f"{e} {s} {n / total:.0%}" for (e, s), n in ranked)
        notes.append(f"mixed quantization by parameters: {mix}")
    return engine, scheme, notes


# ---------------------------------------------------------------- folders and shards


def _shard_paths(index: Path) -> list[Path]:
    data = read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise unreadable(index, "no weight_map in the index")
    if not all(isinstance(f, str) for f in weight_map.values()):
        raise unreadable(index, "weight_map values must be file names")
    files = sorted(set(weight_map.values()))
    if len(files) > MAX_SHARDS:
        raise unreadable(index, f"{len(files)} shards (limit {MAX_SHARDS})")
    for name in files:
        # A shard must sit beside its index: a path here could point anywhere on disk.
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise unreadable(index, f"shard name {name[:80]!r} is not a plain file name")
    return [index.parent / name for name in files]


def _detect_index(index: Path) -> Detection:
    shards = _shard_paths(index)
    headers = [_safetensors_header.read_header(s) for s in shards]
    found = _analyse(str(index), "safetensors-sharded", headers, str(index.parent))
    return found._replace(notes=(f"{len(shards)} shards", *found.notes))


def _weights_in(folder: Path) -> Detection | None:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        return _detect_index(indexes[0])
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.gguf"))
    if not files:
        return None
    parts = [detect(f) for f in files]
    if len(parts) == 1:
        return parts[0]
    # Several weight files and no index: describe the largest, count them all.
    main = max(parts, key=lambda d: d.bytes)
    return main._replace(
        parameters=sum(d.parameters for d in parts),
        bytes=sum(d.bytes for d in parts),
        tensors=sum(d.tensors for d in parts),
        notes=(f"{len(parts)} weight files without an index", *main.notes),
    )


def _config_plan(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """(engine, scheme) from a diffusers/transformers ``quantization_config``: the engine
    whose ``quant_method`` it names, the scheme as that engine's module reads the config."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        return None, None
    method = qc.get("quant_method")
    if not isinstance(method, str):
        return None, None
    for name, spec, module in _engines():
        if (spec.quant_method or name) == method:
            read = getattr(module, "scheme_from_config", None)
            return name, read(qc, spec) if read is not None else None
    return method, None  # an engine the matrix does not know: named, with no scheme


def _component_of(folder: Path, config: dict[str, Any]) -> str | None:
    name = str(config.get("_class_name") or "")
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else ""
    if "UNet" in name:
        return "unet"
    if "Transformer" in name:
        return "transformer"
    if "Autoencoder" in name or "VAE" in name.upper():
        return "vae"
    if arch.endswith(("EncoderModel", "TextModel", "TextModelWithProjection")) or (
        folder.name.startswith("text_encoder")
    ):
        return "text_encoder"
    for component in ("transformer", "unet", "vae"):
        if folder.name == component:
            return component
    return None


def _detect_component(folder: Path) -> Detection:
    config_path = folder / "config.json"
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise unreadable(config_path, "expected a JSON object")
    weights = _weights_in(folder)
    engine, scheme = _config_plan(config)
    notes: list[str] = []
    if weights is None:
        notes.append("no weight files beside config.json")
        weights = Detection(path=str(folder), format="diffusers")
    elif engine and weights.engine and weights.engine != engine:
        notes.append(f"config says {engine} but the weights look like {weights.engine}")
    architecture = _config_family(config, weights, notes)
    return weights._replace(
        path=str(folder),
        format="diffusers",
        engine=engine or weights.engine,
        scheme=scheme or weights.scheme,
        component=_component_of(folder, config) or weights.component,
        architecture=architecture,
        notes=(*notes, *weights.notes),
    )


def _config_family(config: dict[str, Any], weights: Detection, notes: list[str]) -> str | None:
    """The family: the weights' layout, checked against the class config.json names."""
    named = config.get("_class_name") or config.get("model_type")
    families = CONFIG_CLASSES.get(named) if isinstance(named, str) else None
    if families is None:
        return weights.architecture
    if weights.architecture is None:
        return min(families) if len(families) == 1 else weights.architecture
    if weights.architecture not in families:
        notes.append(
            f"config.json names {named} ({', '.join(sorted(families))}) but the weights' "
            f"layout is {weights.architecture}'s"
        )
    return weights.architecture


def _detect_pipeline(folder: Path) -> Detection:
    index = read_json(folder / "model_index.json")
    if not isinstance(index, dict):
        raise unreadable(folder / "model_index.json", "expected a JSON object")
    parts: list[Detection] = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list):
            continue
        sub = folder / name
        # Plain names only: model_index.json must not send detect outside the folder.
        if (
            "/" in name
            or "\\" in name
            or name in (".", "..")
            or not (sub / "config.json").is_file()
        ):
            continue
        parts.append(_detect_component(sub))
    rank = {"transformer": 0, "unet": 1, "text_encoder": 2, "vae": 3}
    quantized = sorted((p for p in parts if p.engine), key=lambda p: rank.get(p.component or "", 9))
    lead = quantized[0] if quantized else None
    class_name = index.get("_class_name")
    return Detection(
        path=str(folder),
        format="diffusers",
        engine=lead.engine if lead else None,
        scheme=lead.scheme if lead else None,
        component=lead.component if lead else None,
        architecture=class_name if isinstance(class_name, str) else None,
        parameters=sum(p.parameters for p in parts),
        bytes=sum(p.bytes for p in parts),
        tensors=sum(p.tensors for p in parts),
        dtypes=dict(_largest_first(_summed(p.dtypes for p in parts))),
        notes=tuple(f"{os.path.basename(p.path)}: {p.engine} {p.scheme}" for p in quantized),
        parts=tuple(parts),
    )


def _detect_dir(folder: Path) -> Detection:
    if (folder / "model_index.json").is_file():
        return _detect_pipeline(folder)
    if (folder / "config.json").is_file():
        return _detect_component(folder)
    weights = _weights_in(folder)
    if weights is None:
        raise unreadable(
            folder, "no model_index.json, config.json, .safetensors or .gguf file in this folder"
        )
    return weights

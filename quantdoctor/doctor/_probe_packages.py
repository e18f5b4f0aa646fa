"""Installed distributions, torch's build and Triton, read from files: nothing is imported.

Versions come from ``*.dist-info/METADATA`` (``*.egg-info/PKG-INFO``) headers found by
listing each site dir once; importing ``importlib.metadata`` alone costs ~40 ms, more
than this whole probe. torch's build facts come from ``torch/version.py`` read as text:
a generated module of plain assignments (``__version__``, ``cuda``, ``hip``, ``xpu``).
"""

from __future__ import annotations

import os

from quantdoctor.doctor._probe_util import (
    Json,
    Notes,
    ProbeContext,
    is_version,
    line_end,
    listdir,
    read_text,
)
from quantdoctor.rules.vocab import canonical_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Iterator, Sequence

#: What the probe reads besides the distributions the matrix names (its engines and the
#: packages its rules test: ``rules.named``): what decides backends and kernels, and what
#: a report on a model stack shows.
PACKAGES: tuple[str, ...] = (
    "openvino",
    "intel-extension-for-pytorch",
    "torch-directml",
    "triton",
    "triton-windows",
    "pytorch-triton-rocm",
    "pytorch-triton-xpu",
    "accelerate",
    "diffusers",
    "transformers",
    "mslk",
    "fbgemm-gpu-genai",
    "fbgemm-gpu",
    "kernels",
    "safetensors",
    "numpy",
)

#: Distributions that provide ``import triton``, in the order a platform would pick them.
TRITON_DISTS: tuple[str, ...] = (
    "triton",
    "triton-windows",
    "pytorch-triton-rocm",
    "pytorch-triton-xpu",
    "pytorch-triton",
)

#: An egg-info entry's name (the grammar: ``dist_name`` reads it with ``str`` methods, and
#: ``tests/test_probe_patterns.py`` holds the two to the same answers).
_EGG_INFO = r"^(?P<name>[^-]+)(?:-(?P<version>[^-]+))?(?:-py\d.*)?\.egg-info$"


def dist_name(entry: str) -> str | None:
    """The distribution a site dir's entry is the metadata of, as its name says:
    ``^(?P<name>.+)-(?P<version>[^-]+)\\.dist-info$`` (said with ``str`` methods: ``re``
    costs a process half its start-up) or ``_EGG_INFO`` (legacy installs; a source tree
    ``pip install -e`` built holds one), the same way."""
    stem = line_end(entry)
    if stem.endswith(".dist-info"):
        name, dash, version = stem[: -len(".dist-info")].rpartition("-")
        return name if dash and name and version and "\n" not in name else None
    if not stem.endswith(".egg-info"):
        return None
    # name, then -version, then -py3.11...: a name and a version hold no "-"
    name, dash, rest = stem[: -len(".egg-info")].partition("-")
    if not name or not dash:
        return name or None
    version, dash, tail = rest.partition("-")
    if version and (not dash or _py_tag(tail)):
        return name
    return name if _py_tag(rest) else None


def _py_tag(text: str) -> bool:
    """``py\\d.*`` (``.`` takes no newline): an egg's Python tag, like ``py3.11``."""
    return text.startswith("py") and text[2:3].isdecimal() and "\n" not in text


class Dist:
    """One installed distribution's metadata location: ``path`` is the .dist-info or
    .egg-info folder (or egg-info file). Plain classes here, not NamedTuples: creating
    one costs ~0.5 ms of import on ``env --json``'s path."""

    __slots__ = ("name", "path", "site")

    def __init__(self, name: str, path: str, site: str) -> None:
        self.name = name
        self.path = path
        self.site = site

    def metadata_file(self) -> str:
        if self.path.endswith(".dist-info"):
            return os.path.join(self.path, "METADATA")
        if os.path.isdir(self.path):
            return os.path.join(self.path, "PKG-INFO")
        return self.path  # a single-file .egg-info is the PKG-INFO itself


def index_distributions(
    site_dirs: Iterable[str], wanted: Container[str] | None = None
) -> dict[str, Dist]:
    """Canonical name -> the first distribution found, in ``sys.path`` order (as import);
    only those ``wanted`` names (canonical), when given."""
    found: dict[str, Dist] = {}
    for site in site_dirs:
        # only a metadata entry ends in -info (or -info and a newline, which ``$`` allows):
        # the others (packages, modules: most of a site dir) need no reading
        for entry in sorted(e for e in listdir(site, ordered=False) if "-info" in e[-6:]):
            raw = dist_name(entry)
            if raw is None:
                continue
            name = canonical_name(raw)
            if name not in found and (wanted is None or name in wanted):
                found[name] = Dist(name=name, path=os.path.join(site, entry), site=site)
    return found


def read_version(dist: Dist) -> tuple[str | None, str | None]:
    """``(version, None)`` from the metadata headers, or ``(None, why it is unreadable)``."""
    path = dist.metadata_file()
    text = read_text(path, 16384)
    if text is None:
        return None, f"{path} is missing or unreadable"
    for line in _lines(text):
        if not line.strip():
            break  # the headers end at the first blank line
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "version":
            version = value.strip()
            if is_version(version):
                return version, None
            return None, f"{path} names version {version[:40]!r}, which is not a version"
    return None, f"{path} has no Version header"


def _lines(text: str, head: int = 4096) -> Iterator[str]:
    """``text.splitlines()``, splitting the rest only when the lines of its first ``head``
    characters are read (the headers are short; a description may be long). Every line of
    the head but its last, which the cut may shorten, is a line of the whole."""
    lines = text[:head].splitlines()
    if len(text) <= head:
        yield from lines
        return
    yield from lines[:-1]
    yield from text.splitlines()[len(lines) - 1 :]


def probe_packages(
    dists: dict[str, Dist], names: Sequence[str], notes: Notes
) -> dict[str, str | None]:
    """``{dist: version}`` for each name, ``None`` when not installed; broken ones noted."""
    out: dict[str, str | None] = {}
    for raw in names:
        name = canonical_name(raw)
        dist = dists.get(name)
        if dist is None:
            out[name] = None
            continue
        version, why = read_version(dist)
        if version is None:
            notes[f"packages.{name}"] = f"installed, but {why}"
        else:
            out[name] = version
    return out


# ---------------------------------------------------------------------------- torch

_ASSIGN = r"^(\w+)\s*(?::[^=]+)?=\s*(.+?)\s*$"


def _assignment(line: str) -> tuple[str, str] | None:
    """``(name, value)`` of a line as ``_ASSIGN`` reads it. A plain line (``x = 'a'``,
    ``cuda: Optional[str] = None``: ASCII name, spaces) is read with ``str`` methods;
    any other goes to the pattern (``re`` costs a process half its start-up)."""
    head, eq, raw = line.partition("=")
    if not eq:
        return None  # no "=": the pattern cannot match
    name, colon, _ = head.partition(":")
    key, value = name.rstrip(" "), raw.strip(" ")
    if (
        key.isascii()
        and key.replace("_", "a").isalnum()
        and (not colon or head[len(name) + 1 :])
        and value
        and "\n" not in value
        and not (value[0].isspace() or value[-1].isspace())
    ):
        return key, value
    import re

    m = re.match(_ASSIGN, line)
    return (m.group(1), m.group(2)) if m else None


def parse_version_py(text: str) -> dict[str, str | bool | None]:
    """Plain assignments of ``torch/version.py``: strings, ``None``, ``True``/``False``."""
    out: dict[str, str | bool | None] = {}
    for line in text.splitlines():
        pair = _assignment(line)
        if pair is None:
            continue
        key, raw = pair
        if raw == "None":
            out[key] = None
        elif raw in ("True", "False"):
            out[key] = raw == "True"
        elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            out[key] = raw[1:-1]
    return out


def _cuda_from_tag(tag: str) -> str | None:
    digits = tag[2:]
    return f"{digits[:-1]}.{digits[-1]}" if digits.isdigit() and len(digits) >= 2 else None


def _hip_number(text: str) -> str | None:
    import re  # ROCm builds only

    m = re.match(r"^\d+(\.\d+)*", text)
    return m.group(0) if m else None


class TorchFacts:
    """``info`` is the Environment's ``torch`` value (``None``: not installed)."""

    __slots__ = ("info", "package_dir")

    def __init__(self, info: dict[str, Json] | None, package_dir: str | None = None) -> None:
        self.info = info
        self.package_dir = package_dir


def probe_torch(ctx: ProbeContext, dists: dict[str, Dist], notes: Notes) -> TorchFacts:
    """torch's version and build; a field that cannot be read is left out and noted."""
    dist = dists.get("torch")
    package_dir = _find_package_dir(
        "torch", [dist.site] if dist else [], ctx.site_dirs, "version.py"
    )
    if dist is None and package_dir is None:
        return TorchFacts(info=None)
    info: dict[str, Json] = {}
    version: str | None = None
    if dist is not None:
        version, why = read_version(dist)
        if why:
            notes["torch.version"] = f"installed, but {why}"
    fields: dict[str, str | bool | None] | None = None
    if package_dir is not None:
        text = read_text(os.path.join(package_dir, "version.py"))
        fields = parse_version_py(text) if text is not None else None
    if fields and isinstance(fields.get("__version__"), str):
        from_dist = version
        version = _importable_version(str(fields["__version__"]), version, notes)
        if from_dist is None and version is not None:
            notes.pop("torch.version", None)  # broken metadata; version.py still answers
    if version is not None:
        info["version"] = version
    local = version.partition("+")[2].lower() if version else ""
    if fields is not None:
        cuda = fields.get("cuda")
        info["cuda"] = cuda if isinstance(cuda, str) and is_version(cuda) else None
        hip = fields.get("hip")
        info["hip"] = _hip_number(hip) if isinstance(hip, str) else None
        xpu = fields.get("xpu")
        info["xpu"] = bool(xpu) or local.startswith("xpu")
    elif local:
        # No version.py to read: the wheel's local tag still names its build.
        info["cuda"] = _cuda_from_tag(local) if local.startswith("cu") else None
        info["hip"] = _hip_number(local[4:]) if local.startswith("rocm") else None
        info["xpu"] = local.startswith("xpu")
        notes["torch.build"] = "torch/version.py is unreadable; the build is from the version tag"
    else:
        notes["torch.build"] = "torch/version.py is missing or unreadable"
    return TorchFacts(info=info, package_dir=package_dir)


def _importable_version(module: str, dist: str | None, notes: Notes) -> str | None:
    """``torch.__version__`` as ``version.py`` states it, over the distribution's.

    The two differ where the wheel's metadata drops the local tag: PyPI's default
    CUDA wheels install as ``2.11.0`` while ``torch.__version__`` is ``2.11.0+cu130``
    (H100 evidence, benchmarks/results/probe-gpu-check-h100.json). A different release
    means the package and its metadata come from two installs.
    """
    if not is_version(module):
        return dist
    if dist is None or module.partition("+")[0] == dist.partition("+")[0]:
        return module
    notes["torch.version"] = (
        f"torch/version.py says {module} but torch's metadata says {dist}: two installs "
        "are mixed; reinstall torch"
    )
    return module


def _find_package_dir(
    package: str, preferred: Sequence[str], site_dirs: Sequence[str], marker: str
) -> str | None:
    for site in [*preferred, *site_dirs]:
        candidate = os.path.join(site, package)
        if os.path.isfile(os.path.join(candidate, marker)):
            return candidate
    return None


# ---------------------------------------------------------------------------- ZLUDA

#: NVIDIA's cublas64_11.dll is ~100 MB; ZLUDA's replacement (a hipBLAS redirect) is a
#: few MB. The patchers copy it over torch's own (ComfyUI ``patchzluda.bat``, Applio
#: ``patch_zluda_hip61.bat``, SD.Next ``modules/zluda_installer.py`` DLL_MAPPING).
_SMALL_CUBLAS = 32 * 1024 * 1024


def zluda_evidence(ctx: ProbeContext, torch_dir: str | None) -> str | None:
    """Why this torch runs on ZLUDA, read from disk and the environment; ``None`` if no sign.

    Every app that ships ZLUDA checks ``get_device_name().endswith("[ZLUDA]")`` after
    importing torch (SD.Next ``modules/devices.py::has_zluda``); the traces it leaves on
    disk are what this reads instead.
    """
    if torch_dir is not None:
        lib = os.path.join(torch_dir, "lib")
        # ComfyUI-Zluda and Applio keep torch's own nvrtc as nvrtc_cuda.dll before patching.
        if os.path.isfile(os.path.join(lib, "nvrtc_cuda.dll")):
            return "torch/lib/nvrtc_cuda.dll: torch's CUDA libraries were replaced by ZLUDA's"
        size = _file_size(os.path.join(lib, "cublas64_11.dll"))
        if size is not None and size < _SMALL_CUBLAS:
            return "torch/lib/cublas64_11.dll is ZLUDA's small redirect, not NVIDIA's cuBLAS"
    zluda_dir = ctx.environ.get("ZLUDA")  # SD.Next: os.environ.get('ZLUDA', '.zluda')
    candidates = [zluda_dir] if zluda_dir else []
    candidates.append(os.path.join(ctx.cwd, ".zluda"))
    for folder in candidates:
        for lib_name in ("nvcuda.dll", "libcuda.so", "libcuda.so.1"):
            if os.path.isfile(os.path.join(folder, lib_name)):
                return f"ZLUDA's {lib_name} in {folder}"
    # ZLUDA on Linux and older Windows setups: its folder leads the library search path.
    for var in ("LD_LIBRARY_PATH", "PATH"):
        for folder in ctx.environ.get(var, "").split(os.pathsep):
            if "zluda" not in folder.lower():
                continue
            for lib_name in ("libcuda.so", "libcuda.so.1", "nvcuda.dll", "zluda_redirect.dll"):
                if os.path.isfile(os.path.join(folder, lib_name)):
                    return f"{var} puts ZLUDA's {lib_name} first ({folder})"
    return None


def _file_size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def probe_triton(dists: dict[str, Dist], notes: Notes) -> tuple[bool, Json]:
    """``(known, value)``: ``{"version": v}`` from whichever distribution provides
    ``triton``, ``None`` when none is installed; unknown (noted) when its metadata is broken.
    """
    for name in TRITON_DISTS:
        dist = dists.get(name)
        if dist is None:
            continue
        version, why = read_version(dist)
        if version is not None:
            return True, {"version": version}
        notes["triton"] = f"{name} is installed, but {why}"
        return False, None
    return True, None

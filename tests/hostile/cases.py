"""The hostile corpus of issue #18: each case is an input, the exit code, the one line and
a time bound (tests/hostile/harness.py runs it and checks nothing outside quantdoctor's
cache changed and no planted code ran). ``owner`` names the teammate whose part fixes a
case that is not this module's (``speed``: the caches, items 1-3; ``explain``: regexes).

Families: overlays, env-files, machine (a broken or lying host), model-files,
pasted-errors, api, cli, caches.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

from hostile.harness import REPO, TARGET, Case, Sandbox

ESC = "\x1b]0;owned\x07\x1b[2J\x1b[31m"  # retitle the window, clear the screen, go red

GOOD_ENV = {
    "os": "linux",
    "wsl": False,
    "arch": "x86_64",
    "python": "3.11.7",
    "backend": "cuda",
    "torch": {"version": "2.6.0", "cuda": "12.4", "hip": None, "xpu": False},
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 4090",
            "cuda_cc": "8.9",
            "gfx": None,
            "memory_gb": 24.0,
        }
    ],
    "triton": {"version": "3.1.0", "works": True},
    "packages": {"optimum-quanto": "0.2.7", "diffusers": "0.32.2", "bitsandbytes": "0.45.0"},
}
# The doctor report on GOOD_ENV exits 1: diffusers 0.32.2 has neither BFL checkpoints nor
# layerwise casting, two engines that come with diffusers (a ✗ each).
CHECK = ["check", "--engine", "quanto", "--scheme", "qint8"]


def env_file(sb: Sandbox, data: object, name: str = "work/env.json") -> str:
    return str(sb.write(name, json.dumps(data)))


def overlay(sb: Sandbox, text: str, name: str = "work/overlay.yaml") -> str:
    return str(sb.write(name, text))


def rule_yaml(**fields: str) -> str:
    base = {
        "id": "hostile.rule",
        "select": "{engine: [quanto]}",
        "when": "{fact: os, is: linux}",
        "severity": "warn",
        "message": '"an overlay rule"',
        "source": '"overlay"',
    }
    base.update(fields)
    return "rules:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in base.items()) + "\n"


def yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


# ------------------------------------------------------------------ fake NVML libraries

_NVML_SOURCE = REPO / "tests" / "fixtures_probe" / "fake_nvml.c"


def nvml(variant: str) -> str:
    """A fake libnvidia-ml built once per source version (``-D<variant>``)."""
    import hashlib
    import shutil
    import subprocess
    import tempfile

    digest = hashlib.sha256(_NVML_SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"quantdoctor-hostile-nvml-{digest}"
    lib = out / f"libnvidia-ml-{variant}.so.1"
    if not lib.exists():
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler to build the fake NVML")
        out.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [cc, "-shared", "-fPIC", "-O1", f"-D{variant}", "-o", str(tmp), str(_NVML_SOURCE)],
            check=True,
        )
        os.replace(tmp, lib)
    return str(lib)


# The probe on a fake machine: the GPU names are printed raw (a terminal escape in them
# would reach the terminal), and the result must be a valid Environment (what check does).
PROBE = """
import sys
from quantdoctor.doctor._probe_util import ProbeContext
from quantdoctor.doctor.probe import probe_dict
from quantdoctor.rules.models import Environment
root, site, path, *libs = sys.argv[1:]
ctx = ProbeContext(root=root, site_dirs=[site], environ={"PATH": path}, system="linux",
    machine="x86_64", python_version="3.11.7",
    nvml_libs=libs or [root + "/no-libnvidia-ml.so.1"], timeout=1.0, cwd=root)
env = probe_dict(ctx)
Environment.model_validate(env)
gpus = env.get("gpus")
if gpus is None:
    print("gpus: unknown: " + env["notes"]["gpus"])
else:
    print(f"gpus: {len(gpus)}: " + ", ".join(str(g.get("name")) for g in gpus[:4]))
"""


def probe_args(sb: Sandbox, *libs: str) -> list[str]:
    return [PROBE, str(sb.root), str(sb.site), str(sb.bin), *libs]


def nvidia_host(sb: Sandbox) -> None:
    sb.write("root/dev/nvidiactl", "")


def amd_host(sb: Sandbox) -> None:
    """An AMD card in DRM but no KFD topology: the probe asks rocminfo."""
    pci = "root/sys/devices/pci0000:00/0000:03:00.0"
    sb.write(f"{pci}/vendor", "0x1002\n")
    sb.write(f"{pci}/device", "0x744c\n")
    sb.write(f"{pci}/class", "0x030000\n")
    (sb.root / "sys/class/drm/card0").mkdir(parents=True)
    (sb.root / "sys/class/drm/card0/device").symlink_to(sb.base / pci)


def kfd_node(sb: Sandbox, props: str, banks: str = "") -> None:
    node = "root/sys/class/kfd/kfd/topology/nodes/1"
    sb.write(f"{node}/properties", props)
    if banks:
        sb.write(f"{node}/mem_banks/0/properties", banks)


def rocminfo_agent(name: str, gfx: str = "gfx1100") -> str:
    return (
        "*******\nAgent 2\n*******\n"
        f"  Name:                    {gfx}\n  Marketing Name:          {name}\n"
        "  Vendor Name:             AMD\n  Device Type:             GPU\n"
    )


# ------------------------------------------------------------------------ model files


def gguf_bytes(arch: str, tensors: list[tuple[str, list[int], int]] | None = None) -> bytes:
    def s(text: str | bytes) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return struct.pack("<Q", len(raw)) + raw

    tensors = tensors if tensors is not None else [("blk.0.attn_q.weight", [32, 32], 0)]
    kv = s("general.architecture") + struct.pack("<I", 8) + s(arch)
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1) + kv
    offset = 0
    for name, dims, qtype in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", qtype, offset)
        n = 1
        for d in dims:
            n *= d
        offset += (n * 4 + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    return out + b"\0" * min(offset, 1 << 20)


def safetensors_bytes(header: dict[str, object], data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


# ------------------------------------------------------------------------- the caches


def _matrix_cache_name() -> str:
    st = (TARGET / "quantdoctor" / "matrix.yaml").stat()
    return f"matrix-{st.st_mtime_ns}-{st.st_size}.pickle"


class _Planted:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def plant_pickle(sb: Sandbox) -> None:
    sb.write(f"cache/{_matrix_cache_name()}", pickle.dumps(_Planted(str(sb.pwned))))
    sb.own.append("cache/*")


def plant_bytes(data: bytes) -> object:
    def setup(sb: Sandbox) -> None:
        sb.write(f"cache/{_matrix_cache_name()}", data)
        sb.own.append("cache/*")

    return setup


# ------------------------------------------------------------------------------ cases

CASES: list[Case] = []


def case(
    id: str,
    family: str,
    what: str,
    exit: int,
    line: str,
    *,
    item: int,
    **kw: object,
) -> object:
    def register(setup: object) -> object:
        CASES.append(
            Case(
                id=id, family=family, what=what, setup=setup, exit=exit, line=line, item=item, **kw
            )
        )  # type: ignore[arg-type]
        return setup

    return register


# ------------------------------------------------------------------------- overlays

_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    + "rules: []\n"
)


@case(
    "overlay-message-escape",
    "overlays",
    "an overlay's message reaches the terminal raw",
    0,
    "an overlay says",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    o = overlay(sb, rule_yaml(message=yaml_str(ESC + "an overlay says"), fix=yaml_str(ESC + "fix")))
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", o]


@case(
    "overlay-source-escape",
    "overlays",
    "an overlay's source shown by check -v",
    0,
    "an overlay rule",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    o = overlay(sb, rule_yaml(source=yaml_str(ESC + "trusted")))
    return [*CHECK, "-v", "--env", env_file(sb, GOOD_ENV), "--matrix", o]


@case(
    "overlay-rules-listing-escape",
    "overlays",
    "an overlay's message in `rules`",
    0,
    "an overlay says",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    o = overlay(sb, rule_yaml(message=yaml_str("an overlay says \x1b[8m hidden \u202e reversed")))
    return ["rules", "--matrix", o]


@case(
    "overlay-report-escape", "overlays", "an overlay's message in the doctor report", 1, "", item=4
)
def _(sb: Sandbox) -> list[str]:
    o = overlay(sb, rule_yaml(message=yaml_str(ESC + "report")))
    return ["--env", env_file(sb, GOOD_ENV), "--matrix", o]


@case(
    "overlay-error-escape",
    "overlays",
    "an unknown field with escapes echoed in the error",
    2,
    "overlay.yaml",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    o = overlay(sb, rule_yaml(**{yaml_str("sev\x1b[2Jerity"): "x"}))
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", o]


@case(
    "overlay-alias-bomb",
    "overlays",
    "a YAML alias bomb hangs the loader",
    2,
    "overlay.yaml",
    item=5,
    seconds=20,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, _BOMB)]


@case(
    "overlay-alias-bomb-in-rule",
    "overlays",
    "an alias bomb inside a rule's condition",
    2,
    "overlay.yaml",
    item=5,
    seconds=20,
)
def _(sb: Sandbox) -> list[str]:
    bomb = _BOMB.replace("rules: []\n", "")
    text = (
        bomb
        + "rules:\n  - id: hostile.bomb\n    when: {all: *i}\n    severity: warn\n    message: m\n    source: s\n"
    )
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, text)]


@case(
    "overlay-48mb",
    "overlays",
    "a 48 MB overlay takes a minute and 2.5 GB",
    2,
    "overlay.yaml",
    item=5,
    seconds=20,
)
def _(sb: Sandbox) -> list[str]:
    body = "rules:\n" + "".join(
        f"  - {{id: hostile.r{i}, severity: info, message: m, source: s}}\n" for i in range(900_000)
    )
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, body)]


@case(
    "overlay-deep-nesting",
    "overlays",
    "1000 levels of nesting in an overlay",
    2,
    "overlay.yaml",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    text = (
        "rules:\n  - id: hostile.deep\n    when: "
        + "[" * 3000
        + "]" * 3000
        + "\n    severity: warn\n    message: m\n    source: s\n"
    )
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, text)]


@case(
    "overlay-deep-mapping",
    "overlays",
    "1000 nested mappings in an overlay",
    2,
    "overlay.yaml",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    text = (
        "rules:\n  - id: hostile.deep\n    when: "
        + "{not: " * 1000
        + "{fact: os, is: linux}"
        + "}" * 1000
        + "\n    severity: warn\n    message: m\n    source: s\n"
    )
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, text)]


@case(
    "overlay-alias-chain",
    "overlays",
    "a 3000-deep alias chain in an overlay",
    2,
    "overlay.yaml",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    text = (
        "a0: &a0 [x]\n"
        + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 3000))
        + "rules: []\n"
    )
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, text)]


@case(
    "overlay-huge-integer",
    "overlays",
    "a 5000-digit integer in an overlay",
    2,
    "overlay.yaml",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    return [
        *CHECK,
        "--env",
        env_file(sb, GOOD_ENV),
        "--matrix",
        overlay(sb, rule_yaml(message="9" * 5000)),
    ]


@case(
    "overlay-duplicate-keys",
    "overlays",
    "duplicate YAML keys are accepted silently",
    2,
    "duplicate",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    text = rule_yaml() + "    severity: block\n"
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, text)]


@case(
    "overlay-duplicate-rule-keys-top",
    "overlays",
    "two `rules:` keys: the first silently dropped",
    2,
    "duplicate",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    text = rule_yaml() + "rules: []\n"
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", overlay(sb, text)]


@case(
    "overlay-matrix-directory",
    "overlays",
    "--matrix naming a directory says 'no such file'",
    2,
    "directory",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    (sb.work / "overlays").mkdir()
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", str(sb.work / "overlays")]


@case(
    "overlay-matrix-fifo",
    "overlays",
    "--matrix naming a FIFO",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", str(sb.fifo("work/overlay.yaml"))]


@case(
    "overlay-matrix-dev-zero",
    "overlays",
    "--matrix /dev/zero",
    2,
    "not a regular file",
    item=9,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", "/dev/zero"]


@case(
    "overlay-env-var-fifo",
    "overlays",
    "QUANTDOCTOR_MATRIX naming a FIFO blocks forever",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.env["QUANTDOCTOR_MATRIX"] = str(sb.fifo("work/overlay.yaml"))
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "overlay-env-var-dev-zero",
    "overlays",
    "QUANTDOCTOR_MATRIX=/dev/zero reads forever",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.env["QUANTDOCTOR_MATRIX"] = "/dev/zero"
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "overlay-env-var-directory",
    "overlays",
    "QUANTDOCTOR_MATRIX naming a directory",
    2,
    "directory",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    sb.env["QUANTDOCTOR_MATRIX"] = str(sb.work)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "overlay-env-var-fifo-env-json",
    "overlays",
    "QUANTDOCTOR_MATRIX naming a FIFO hangs env --json (it scans overlays for packages)",
    0,
    '"os"',
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.env["QUANTDOCTOR_MATRIX"] = f"{sb.fifo('work/overlay.yaml')}{os.pathsep}/dev/zero"
    return ["env", "--json"]


@case(
    "overlay-config-dir-fifo",
    "overlays",
    "the user config's matrix.yaml is a FIFO (skipped)",
    0,
    "quanto",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.fifo("config/matrix.yaml")
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case("overlay-not-utf8", "overlays", "an overlay in Latin-1", 2, "overlay.yaml", item=9)
def _(sb: Sandbox) -> list[str]:
    sb.write("work/overlay.yaml", rule_yaml(message='"caf\xe9"').encode("latin-1"))
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--matrix", str(sb.work / "overlay.yaml")]


@case(
    "overlay-redos-check",
    "overlays",
    "an overlay signature (a+)+$ hangs check",
    2,
    "could run slowly",
    item=5,
    owner="explain",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sig = "\n    signatures:\n      - pattern: '(a+)+$'\n        source: s"
    o = overlay(sb, rule_yaml(message='"m"' + sig))
    env = {**GOOD_ENV, "notes": {"gpus": "a" * 40 + "!"}}
    return [*CHECK, "--env", env_file(sb, env), "--matrix", o]


@case(
    "overlay-redos-explain",
    "overlays",
    "an overlay signature (a+)+$ hangs explain",
    2,
    "could run slowly",
    item=5,
    owner="explain",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sig = "\n    signatures:\n      - pattern: '(a+)+$'\n        source: s"
    sb.env["QUANTDOCTOR_MATRIX"] = overlay(sb, rule_yaml(message='"m"' + sig))
    return ["explain", "a" * 40 + "!"]


# ------------------------------------------------------------------------- env files


@case(
    "env-fifo",
    "env-files",
    "--env naming a FIFO blocks forever",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", str(sb.fifo("work/env.json"))]


@case(
    "env-dev-zero",
    "env-files",
    "--env /dev/zero reads forever",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", "/dev/zero"]


@case("env-directory", "env-files", "--env naming a directory", 2, "directory", item=9)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", str(sb.work)]


@case("env-huge-file", "env-files", "a 60 MB env file", 2, "env.json", item=5, seconds=10)
def _(sb: Sandbox) -> list[str]:
    return [
        *CHECK,
        "--env",
        str(
            sb.write(
                "work/env.json", b'{"os": "linux", "notes": {"x": "' + b"a" * 60_000_000 + b'"}}'
            )
        ),
    ]


@case("env-5000-digits", "env-files", "a 5000-digit number in --env", 2, "env.json", item=7)
def _(sb: Sandbox) -> list[str]:
    path = sb.write("work/env.json", '{"gpus": [{"memory_gb": ' + "9" * 5000 + "}]}")
    return [*CHECK, "--env", str(path)]


@case(
    "env-5000-digit-float", "env-files", "a 5000-digit float (inf) in --env", 2, "env.json", item=9
)
def _(sb: Sandbox) -> list[str]:
    path = sb.write("work/env.json", '{"gpus": [{"memory_gb": ' + "9" * 5000 + ".0}]}")
    return [*CHECK, "--env", str(path)]


@case("env-deep-nesting", "env-files", "100k-deep nesting in --env", 2, "env.json", item=7)
def _(sb: Sandbox) -> list[str]:
    return [
        *CHECK,
        "--env",
        str(sb.write("work/env.json", '{"packages": ' + "[" * 100_000 + "]" * 100_000 + "}")),
    ]


@case("env-deep-objects", "env-files", "100k-deep objects in --env", 2, "env.json", item=7)
def _(sb: Sandbox) -> list[str]:
    return [
        *CHECK,
        "--env",
        str(sb.write("work/env.json", '{"a": ' * 100_000 + "1" + "}" * 100_000)),
    ]


@case(
    "env-duplicate-keys",
    "env-files",
    "duplicate JSON keys accepted silently",
    2,
    "duplicate",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", str(sb.write("work/env.json", '{"os": "linux", "os": "windows"}'))]


@case("env-nan-memory", "env-files", "NaN memory in --env", 2, "memory_gb", item=7)
def _(sb: Sandbox) -> list[str]:
    path = sb.write("work/env.json", '{"gpus": [{"vendor": "nvidia", "memory_gb": NaN}]}')
    return [*CHECK, "--env", str(path)]


@case(
    "env-infinity-memory",
    "env-files",
    "Infinity memory in --env ends as Infinity in JSON",
    2,
    "memory_gb",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    path = sb.write("work/env.json", '{"gpus": [{"vendor": "nvidia", "memory_gb": Infinity}]}')
    return [*CHECK, "--env", str(path), "--json"]


@case("env-negative-memory", "env-files", "negative memory in --env", 2, "memory_gb", item=7)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, {"gpus": [{"vendor": "nvidia", "memory_gb": -24}]})]


@case(
    "env-gpu-name-escape",
    "env-files",
    "a GPU name with terminal escapes reaches the report",
    1,
    "",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    env = json.loads(json.dumps(GOOD_ENV))
    env["gpus"][0]["name"] = ESC + "RTX 4090"
    return ["-v", "--env", env_file(sb, env)]


@case("env-note-escape", "env-files", "a note with terminal escapes in the report", 1, "", item=4)
def _(sb: Sandbox) -> list[str]:
    return ["-v", "--env", env_file(sb, {**GOOD_ENV, "notes": {"triton": ESC + "why"}})]


@case(
    "env-unknown-key-escape",
    "env-files",
    "an unknown key with escapes echoed",
    2,
    "unknown key",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, {**GOOD_ENV, "o\x1b[2Js": "linux"})]


@case(
    "env-bad-version-escape",
    "env-files",
    "a version with escapes echoed",
    2,
    "not a version",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, {**GOOD_ENV, "packages": {"diffusers": ESC + "1"}})]


@case(
    "env-file-name-escape",
    "env-files",
    "a missing env file whose name has escapes",
    2,
    "no such file",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", ESC + "env.json"]


@case(
    "env-matrix-same-name",
    "env-files",
    "matrix --env a/env.json --env b/env.json drops one",
    0,
    "b/env.json",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    a = env_file(sb, GOOD_ENV, "work/a/env.json")
    b = env_file(sb, {**GOOD_ENV, "backend": "cpu", "gpus": []}, "work/b/env.json")
    return ["matrix", "--env", a, "--env", b, "--engine", "quanto"]


@case(
    "env-matrix-same-name-json",
    "env-files",
    "matrix --json with two env.json keeps both",
    0,
    "b/env.json",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    a = env_file(sb, GOOD_ENV, "work/a/env.json")
    b = env_file(sb, {**GOOD_ENV, "backend": "cpu", "gpus": []}, "work/b/env.json")
    return ["matrix", "--env", a, "--env", b, "--engine", "quanto", "--json"]


@case(
    "env-device-5",
    "env-files",
    "check --device 5 with one GPU accepted silently",
    2,
    "--device 5",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--device", "5"]


@case(
    "env-device-negative", "env-files", "check --device -1 accepted silently", 2, "--device", item=9
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--device", "-1"]


@case(
    "env-device-huge", "env-files", "check --device 10^30 accepted silently", 2, "--device", item=9
)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--env", env_file(sb, GOOD_ENV), "--device", "1" + "0" * 30]


@case("env-not-utf8", "env-files", "an env file in Latin-1", 2, "env.json", item=9)
def _(sb: Sandbox) -> list[str]:
    return [
        *CHECK,
        "--env",
        str(sb.write("work/env.json", '{"arch": "caf\xe9"}'.encode("latin-1"))),
    ]


# ------------------------------------------------------------ a broken or lying machine


@case(
    "machine-nvml-sleeps",
    "machine",
    "an NVML that never returns hangs every probe",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=15,
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    return probe_args(sb, nvml("SLEEPS"))


@case(
    "machine-nvml-aborts",
    "machine",
    "an NVML that calls abort() kills env --json",
    0,
    "gpus:",
    item=6,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    return probe_args(sb, nvml("ABORTS"))


@case(
    "machine-nvml-huge-count",
    "machine",
    "an NVML reporting 2^32-1 GPUs loops",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=15,
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    return probe_args(sb, nvml("HUGE_COUNT"))


@case(
    "machine-nvml-name-escape",
    "machine",
    "a GPU name from NVML with escapes",
    0,
    "gpus: 2",
    item=4,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    return probe_args(sb, nvml("EVIL_NAME"))


@case(
    "machine-nvml-lying-memory",
    "machine",
    "NVML: reserved > total (negative memory), cc -1.-5",
    0,
    "gpus: 2",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    return probe_args(sb, nvml("LYING_MEMORY"))


@case(
    "machine-smi-million-lines",
    "machine",
    "1 M lines from nvidia-smi take 20 s",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    line = "NVIDIA H100 80GB HBM3, 9.0, 81559, 565.57.01, GPU-6f1a2b3c-0000-1111-2222-333344445555"
    sb.tool("nvidia-smi", f"/usr/bin/yes '{line}' | /usr/bin/head -n 1000000")
    return probe_args(sb)


@case(
    "machine-smi-100mb-error",
    "machine",
    "a 100 MB error line from nvidia-smi copied whole",
    0,
    "gpus:",
    item=9,
    kind="python",
    seconds=15,
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    sb.tool(
        "nvidia-smi", "/usr/bin/head -c 100000000 /dev/zero | /usr/bin/tr '\\0' 'e' >&2; exit 9"
    )
    return probe_args(sb)


@case(
    "machine-smi-100mb-line",
    "machine",
    "a 100 MB unexpected line from nvidia-smi",
    0,
    "gpus:",
    item=9,
    kind="python",
    seconds=15,
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    sb.tool("nvidia-smi", "/usr/bin/head -c 100000000 /dev/zero | /usr/bin/tr '\\0' 'e'")
    return probe_args(sb)


@case(
    "machine-smi-name-escape",
    "machine",
    "a GPU name from nvidia-smi with escapes",
    0,
    "gpus: 1",
    item=4,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    sb.tool(
        "nvidia-smi", "printf 'NVIDIA \\033[2J\\033]0;x\\007H100, 9.0, 81559, 565.57.01, GPU-1\\n'"
    )
    return probe_args(sb)


@case(
    "machine-smi-error-escape",
    "machine",
    "an nvidia-smi error with escapes",
    0,
    "gpus:",
    item=4,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    sb.tool(
        "nvidia-smi", "printf 'Failed \\033[2J\\033]0;x\\007 to initialize NVML\\n' >&2; exit 9"
    )
    return probe_args(sb)


@case(
    "machine-smi-nan-memory",
    "machine",
    "nvidia-smi says NaN or 1e400 MiB",
    0,
    "gpus: 2",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    sb.tool("nvidia-smi", "printf 'A, 9.0, NaN, 565, GPU-1\\nB, 9.0, 1e400, 565, GPU-2\\n'")
    return probe_args(sb)


@case(
    "machine-smi-huge-cc",
    "machine",
    "nvidia-smi reports a compute capability of 5000 digits",
    0,
    "gpus: 1",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    nvidia_host(sb)
    sb.tool("nvidia-smi", "printf 'A, 9.%s, 81559, 565, GPU-1\\n' " + "9" * 5000)
    return probe_args(sb)


@case(
    "machine-rocminfo-100mb",
    "machine",
    "100 MB from rocminfo take 24 s",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    amd_host(sb)
    sb.tool("rocminfo", "/usr/bin/head -c 100000000 /dev/zero | /usr/bin/tr '\\0' 'r'")
    return probe_args(sb)


@case(
    "machine-rocminfo-name-escape",
    "machine",
    "a GPU name from rocminfo reaches the terminal raw",
    0,
    "gpus: 1",
    item=4,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    amd_host(sb)
    sb.write("bin/agent.txt", rocminfo_agent(ESC + "Radeon"))
    sb.tool("rocminfo", f"/bin/cat {sb.bin / 'agent.txt'}")
    return probe_args(sb)


@case(
    "machine-rocminfo-hangs",
    "machine",
    "rocminfo that never exits",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    amd_host(sb)
    sb.tool("rocminfo", "/bin/sleep 1000")
    return probe_args(sb)


@case(
    "machine-kfd-absurd-gfx",
    "machine",
    "an absurd gfx_target_version fails validation in check",
    0,
    "gpus:",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    kfd_node(sb, "gfx_target_version 999999999999\n")
    return probe_args(sb)


@case(
    "machine-kfd-negative-memory",
    "machine",
    "negative KFD memory fails validation in check",
    0,
    "gpus: 1",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    kfd_node(sb, "gfx_target_version 110000\n", "heap_type 1\nsize_in_bytes -25769803776\n")
    return probe_args(sb)


@case(
    "machine-kfd-huge-memory",
    "machine",
    "a KFD memory of 10^5000 bytes",
    0,
    "gpus: 1",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    kfd_node(sb, "gfx_target_version 110000\n", "heap_type 1\nsize_in_bytes 1" + "0" * 3000 + "\n")
    return probe_args(sb)


@case(
    "machine-kfd-fifo",
    "machine",
    "a KFD properties file that is a FIFO",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.fifo("root/sys/class/kfd/kfd/topology/nodes/1/properties")
    return probe_args(sb)


@case(
    "machine-product-name-escape",
    "machine",
    "a sysfs product_name with escapes",
    0,
    "gpus: 1",
    item=4,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    kfd_node(sb, "gfx_target_version 110000\ndrm_render_minor 128\n")
    sb.write("root/sys/class/drm/renderD128/device/product_name", ESC + "Radeon\n")
    return probe_args(sb)


@case(
    "machine-metadata-fifo",
    "machine",
    "a package METADATA that is a FIFO blocks forever",
    0,
    "gpus:",
    item=5,
    kind="python",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.fifo("site/bitsandbytes-0.45.0.dist-info/METADATA")
    return probe_args(sb)


@case(
    "machine-metadata-fifo-cli",
    "machine",
    "a METADATA FIFO on sys.path hangs env --json",
    0,
    '"os"',
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.fifo("site/diffusers-0.32.0.dist-info/METADATA")
    sb.env["PYTHONPATH"] += os.pathsep + str(sb.site)
    return ["env", "--json"]


@case(
    "machine-torch-version-fifo",
    "machine",
    "torch/version.py is a FIFO",
    0,
    '"os"',
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.write(
        "site/torch-2.5.1.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n",
    )
    sb.fifo("site/torch/version.py")
    sb.env["PYTHONPATH"] += os.pathsep + str(sb.site)
    return ["env", "--json"]


@case(
    "machine-home-unset", "machine", "HOME unset and a uid with no passwd entry", 0, '"os"', item=7
)
def _(sb: Sandbox) -> list[str]:
    sb.no_passwd()
    del sb.env["QUANTDOCTOR_CACHE_DIR"]
    del sb.env["QUANTDOCTOR_CONFIG_DIR"]
    return ["env", "--json"]


@case(
    "machine-home-unset-check",
    "machine",
    "HOME unset: check needs the cache and config dirs",
    0,
    "quanto",
    item=7,
    owner="speed",  # the fix goes in _dirs.py, which the cache rewrite replaces
)
def _(sb: Sandbox) -> list[str]:
    sb.no_passwd()
    del sb.env["QUANTDOCTOR_CACHE_DIR"]
    del sb.env["QUANTDOCTOR_CONFIG_DIR"]
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "machine-deleted-cwd", "machine", "running from a deleted working directory", 0, '"os"', item=7
)
def _(sb: Sandbox) -> list[str]:
    sb.cwd = sb.base / "gone"
    sb.cwd.mkdir()
    return ["env", "--json"]


@case(
    "machine-deleted-cwd-report",
    "machine",
    "the report from a deleted working directory",
    0,
    "",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    sb.cwd = sb.base / "gone"
    sb.cwd.mkdir()
    return []


# ------------------------------------------------------------------------ model files


@case(
    "file-gguf-arch-escape",
    "model-files",
    "a GGUF's architecture string reaches the terminal raw",
    0,
    "",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    return ["detect", str(sb.write("work/m.gguf", gguf_bytes(ESC + "llama")))]


@case(
    "file-gguf-tensor-name-escape", "model-files", "a GGUF tensor name with escapes", 0, "", item=4
)
def _(sb: Sandbox) -> list[str]:
    return [
        "detect",
        str(sb.write("work/m.gguf", gguf_bytes("flux", [(ESC + "blk.0.w", [32, 32], 0)]))),
    ]


@case(
    "file-safetensors-metadata-escape",
    "model-files",
    "safetensors metadata with escapes",
    0,
    "",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    header = {
        "__metadata__": {"format": ESC + "pt"},
        ESC + "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    return ["detect", str(sb.write("work/m.safetensors", safetensors_bytes(header, b"\0" * 8)))]


@case("file-name-escape", "model-files", "a model file whose name carries escapes", 2, "m", item=4)
def _(sb: Sandbox) -> list[str]:
    return ["detect", str(sb.write("work/m\x1b[2J.safetensors", b"junk"))]


@case(
    "file-f4-huge-shape",
    "model-files",
    "an F4 tensor whose shape product has 4300+ digits",
    2,
    "m.safetensors",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    header = {"w": {"dtype": "F4", "shape": [10**600] * 8, "data_offsets": [0, 0]}}
    return ["detect", str(sb.write("work/m.safetensors", safetensors_bytes(header)))]


@case(
    "file-gguf-huge-shape",
    "model-files",
    "a GGUF tensor whose shape product is 2^256",
    2,
    "m.gguf",
    item=7,
)
def _(sb: Sandbox) -> list[str]:
    data = gguf_bytes("flux", [("blk.0.w", [2**63] * 4, 0)])[:200]
    return ["detect", str(sb.write("work/m.gguf", data))]


@case(
    "file-600-nested-folders",
    "model-files",
    "600 nested folders given to detect",
    2,
    "",
    item=7,
    seconds=20,
)
def _(sb: Sandbox) -> list[str]:
    deep = sb.work / "m"
    path = deep
    for _ in range(600):
        path = path / "d"
    path.mkdir(parents=True)
    (path / "x.safetensors").write_bytes(
        safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    )
    return ["detect", str(deep)]


@case("file-fifo", "model-files", "detect on a FIFO", 2, "not a regular file", item=5, seconds=10)
def _(sb: Sandbox) -> list[str]:
    return ["detect", str(sb.fifo("work/m.safetensors"))]


@case(
    "file-dev-zero", "model-files", "detect /dev/zero", 2, "not a regular file", item=5, seconds=10
)
def _(sb: Sandbox) -> list[str]:
    return ["detect", "/dev/zero"]


@case(
    "file-recommend-model-fifo",
    "model-files",
    "recommend --model naming a FIFO",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return [
        "recommend",
        "--model",
        str(sb.fifo("work/m.safetensors")),
        "--env",
        env_file(sb, GOOD_ENV),
    ]


# ---------------------------------------------------------------------- pasted errors

_LONG = "x" * 1_000_000


@case(
    "pasted-1mb-line",
    "pasted-errors",
    "explain of a 1 MB line takes 27 s",
    1,
    "",
    item=5,
    owner="explain",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.write("work/err.txt", "RuntimeError: " + _LONG + "\n")
    return ["explain", "--file", str(sb.work / "err.txt")]


@case(
    "pasted-1mb-line-spaces",
    "pasted-errors",
    "explain of a 1 MB line of spaces and words",
    1,
    "",
    item=5,
    owner="explain",
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    sb.write("work/err.txt", "Error " + "a " * 500_000 + "\n")
    return ["explain", "--file", str(sb.work / "err.txt")]


@case(
    "pasted-escape",
    "pasted-errors",
    "a pasted error with terminal escapes echoed as matched",
    0,
    "matched",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    return ["explain", ESC + "ModuleNotFoundError: No module named 'torch' " + ESC]


@case(
    "pasted-file-fifo",
    "pasted-errors",
    "explain --file naming a FIFO",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return ["explain", "--file", str(sb.fifo("work/err.txt"))]


@case(
    "pasted-file-dev-zero",
    "pasted-errors",
    "explain --file /dev/zero",
    2,
    "not a regular file",
    item=5,
    seconds=10,
)
def _(sb: Sandbox) -> list[str]:
    return ["explain", "--file", "/dev/zero"]


@case(
    "pasted-file-directory",
    "pasted-errors",
    "explain --file naming a directory",
    2,
    "directory",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    return ["explain", "--file", str(sb.work)]


# ------------------------------------------------------------------------- Python API

_GUARD = """
import sys
import quantdoctor
env = {"os": "linux", "backend": "cpu", "torch": {"version": "2.6.0", "cuda": None, "hip": None, "xpu": False}, "gpus": [], "packages": {"optimum-quanto": "0.2.7", "diffusers": "0.32.2"}}
%s
try:
    with quantdoctor.guard({"engine": "quanto", "scheme": "qint8"}, env=env):
        raise Boom("No module named 'torch'")
except Exception as err:
    print("caught", type(err).__name__, isinstance(err, Boom))
"""


@case(
    "api-guard-str-raises",
    "api",
    "guard replaces the caller's exception when its __str__ raises",
    0,
    "caught",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    return [
        _GUARD
        % "class Boom(ImportError):\n    def __str__(self):\n        raise RuntimeError('no str')\n"
    ]


@case(
    "api-guard-unsubclassable",
    "api",
    "guard with an exception class closed to subclassing",
    0,
    "caught Boom True",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    return [
        _GUARD
        % "class Boom(ImportError):\n    def __init_subclass__(cls, **kw):\n        raise TypeError('final')\n"
    ]


@case(
    "api-guard-metaclass",
    "api",
    "guard with an exception whose metaclass refuses new classes",
    0,
    "caught Boom True",
    item=7,
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    meta = "class Final(type):\n    def __new__(m, name, bases, ns, **kw):\n        if any(isinstance(b, Final) for b in bases):\n            raise RuntimeError('final')\n        return super().__new__(m, name, bases, ns)\nclass Boom(ImportError, metaclass=Final):\n    pass\n"
    return [_GUARD % meta]


@case(
    "api-guard-str-huge",
    "api",
    "guard with an exception whose message is 50 MB",
    0,
    "caught",
    item=5,
    kind="python",
    seconds=15,
)
def _(sb: Sandbox) -> list[str]:
    return [
        (_GUARD % "class Boom(ImportError):\n    pass\n").replace(
            "\"No module named 'torch'\"", "\"No module named 'torch' \" + 'x' * 50_000_000"
        )
    ]


_EVALUATE = """
import sys
from quantdoctor import evaluate, Plan, QuantDoctorError
try:
    evaluate(Plan(engine="quanto", scheme="qint8"), %s)
except QuantDoctorError as err:
    print("error:", err)
    sys.exit(2)
print("evaluated")
"""


@case(
    "api-evaluate-gpus-not-list",
    "api",
    "evaluate() with gpus: 5",
    2,
    "gpus",
    item=7,
    kind="python",
    stream="out",
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_EVALUATE % '{"gpus": 5}']


@case(
    "api-evaluate-unknown-key",
    "api",
    "evaluate() with an unknown key",
    2,
    "unknown key",
    item=7,
    kind="python",
    stream="out",
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_EVALUATE % '{"gpuz": []}']


@case(
    "api-evaluate-not-mapping",
    "api",
    "evaluate() with a list for env",
    2,
    "env",
    item=7,
    kind="python",
    stream="out",
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_EVALUATE % "[1, 2]"]


@case(
    "api-evaluate-bad-packages",
    "api",
    "evaluate() with packages: [..]",
    2,
    "packages",
    item=7,
    kind="python",
    stream="out",
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_EVALUATE % '{"packages": ["torch"]}']


@case(
    "api-evaluate-nan-memory",
    "api",
    "evaluate() with NaN memory",
    2,
    "memory_gb",
    item=7,
    kind="python",
    stream="out",
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_EVALUATE % '{"gpus": [{"memory_gb": float("nan")}]}']


@case(
    "api-preflight-bad-plan",
    "api",
    "preflight with a plan of wrong types",
    2,
    "plan",
    item=7,
    kind="python",
    stream="out",
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    code = "import sys\nfrom quantdoctor import preflight, QuantDoctorError\ntry:\n    preflight({'engine': 5, 'scheme': None}, env={})\nexcept QuantDoctorError as err:\n    print('error:', err); sys.exit(2)\n"
    return [code]


_QUANTIZE = """
import sys, torch, warnings
warnings.simplefilter("ignore")
from importlib.metadata import version
from quantdoctor import quantize, QuantDoctorError
torch.manual_seed(0)
# The middle layer's int8 weight makes the engine fail there, after the first layer.
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 33), torch.nn.Linear(33, 8)).to(torch.bfloat16)
model[1].weight = torch.nn.Parameter(torch.zeros(33, 64, dtype=torch.int8), requires_grad=False)
before = {k: v.clone() for k, v in model.state_dict().items()}
kinds = [type(m).__name__ for m in model.modules()]
pk = {d: version(d) for d in ("torchao", "optimum-quanto", "diffusers")}
env = {"os": "linux", "backend": "cpu", "torch": {"version": torch.__version__.split("+")[0], "cuda": None, "hip": None, "xpu": False}, "gpus": [], "packages": pk}
try:
    quantize(model, {"engine": %r, "scheme": %r}, env=env)
    print("quantized")
except QuantDoctorError as err:
    sd = model.state_dict()
    same = [type(m).__name__ for m in model.modules()] == kinds and set(sd) == set(before) and all(
        type(v) is torch.Tensor and v.dtype == before[k].dtype and torch.equal(before[k], v) for k, v in sd.items())
    print("restored" if same else "NOT restored", "|", str(err).splitlines()[0][:300])
    sys.exit(2)
"""


@case(
    "api-quantize-fails-midway",
    "api",
    "quanto failing on layer 2 leaves layer 1 a QLinear",
    2,
    "restored",
    item=8,
    kind="python",
    stream="out",
    seconds=300,
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_QUANTIZE % ("quanto", "qint8")]


@case(
    "api-quantize-fails-midway-torchao",
    "api",
    "torchao failing on layer 2 leaves layer 1 converted",
    2,
    "restored",
    item=8,
    kind="python",
    stream="out",
    seconds=300,
    one_line=False,
)
def _(sb: Sandbox) -> list[str]:
    return [_QUANTIZE % ("torchao", "int8wo")]


# --------------------------------------------------------------------------- the CLI


@case("cli-stdout-dev-full", "cli", "stdout to /dev/full", 1, "No space left", item=7, stream="err")
def _(sb: Sandbox) -> list[str]:
    sb.env["_STDOUT"] = "/dev/full"
    return ["rules"]


@case(
    "cli-stdout-dev-full-json",
    "cli",
    "env --json to /dev/full",
    1,
    "No space left",
    item=7,
    stream="err",
)
def _(sb: Sandbox) -> list[str]:
    sb.env["_STDOUT"] = "/dev/full"
    return ["env", "--json"]


@case("cli-stdout-closed", "cli", "stdout closed", 1, "stdout", item=7, stream="err")
def _(sb: Sandbox) -> list[str]:
    sb.env["_CLOSE_STDOUT"] = "1"
    return ["rules"]


@case(
    "cli-stdout-closed-json", "cli", "stdout closed, env --json", 1, "stdout", item=7, stream="err"
)
def _(sb: Sandbox) -> list[str]:
    sb.env["_CLOSE_STDOUT"] = "1"
    return ["env", "--json"]


@case("cli-params-1e400", "cli", "recommend --params 1e400", 2, "--params", item=7)
def _(sb: Sandbox) -> list[str]:
    return ["recommend", "--params", "1e400", "--env", env_file(sb, GOOD_ENV)]


@case("cli-params-inf", "cli", "recommend --params inf", 2, "--params", item=7)
def _(sb: Sandbox) -> list[str]:
    return ["recommend", "--params", "inf", "--env", env_file(sb, GOOD_ENV)]


@case("cli-params-nan", "cli", "recommend --params nan", 2, "--params", item=7)
def _(sb: Sandbox) -> list[str]:
    return ["recommend", "--params", "nan", "--env", env_file(sb, GOOD_ENV)]


@case(
    "cli-params-1e300-json",
    "cli",
    "recommend --params 1e300 --json prints Infinity",
    2,
    "--params",
    item=9,
)
def _(sb: Sandbox) -> list[str]:
    return ["recommend", "--params", "1e300", "--env", env_file(sb, GOOD_ENV), "--json"]


@case("cli-vram-inf", "cli", "recommend --vram inf", 2, "--vram", item=9)
def _(sb: Sandbox) -> list[str]:
    return [
        "recommend",
        "--params",
        "12B",
        "--vram",
        "inf",
        "--env",
        env_file(sb, GOOD_ENV),
        "--json",
    ]


@case("cli-device-here-5", "cli", "check --device 5 probing this machine", 2, "--device 5", item=9)
def _(sb: Sandbox) -> list[str]:
    return [*CHECK, "--device", "5"]


@case("cli-report-device-huge", "cli", "the report with --device 10^30", 2, "--device", item=9)
def _(sb: Sandbox) -> list[str]:
    return ["--device", "1" + "0" * 30, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cli-command-escape",
    "cli",
    "a mistyped command with escapes echoed",
    2,
    "is not a command",
    item=4,
)
def _(sb: Sandbox) -> list[str]:
    return [ESC + "chek"]


@case("cli-engine-escape", "cli", "an engine name with escapes echoed", 2, "--engine", item=4)
def _(sb: Sandbox) -> list[str]:
    return [
        "check",
        "--engine",
        ESC + "quanto",
        "--scheme",
        "qint8",
        "--env",
        env_file(sb, GOOD_ENV),
    ]


@case("cli-top-huge", "cli", "recommend --top 10^30", 0, "", item=9)
def _(sb: Sandbox) -> list[str]:
    return [
        "recommend",
        "--params",
        "12B",
        "--top",
        "1" + "0" * 30,
        "--env",
        env_file(sb, GOOD_ENV),
    ]


# ------------------------------------------------------------------ caches (speed, #18.1-3)


@case(
    "cache-pickle-runs-code",
    "caches",
    "a planted matrix pickle runs code on every command",
    0,
    "quanto",
    item=1,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    plant_pickle(sb)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-pickle-runs-code-plan",
    "caches",
    "a planted pickle runs code on a plain Plan(...)",
    0,
    "plan",
    item=1,
    owner="speed",
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    plant_pickle(sb)
    return [
        "from quantdoctor import Plan; print('plan', Plan(engine='quanto', scheme='qint8').label())"
    ]


@case(
    "cache-forged-no-rules",
    "caches",
    "a forged pickle with no rules turns blocked into ok",
    1,
    "blocked",
    item=1,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    sys_path = str(REPO)
    import sys

    sys.path.insert(0, sys_path)
    try:
        from quantdoctor.rules.matrix import builtin

        forged = builtin().model_copy(update={"rules": []})
        data = pickle.dumps(forged)
    except Exception:  # noqa: BLE001  the layout after the cache rewrite: any forgery will do
        data = b"{}"
    sb.write(f"cache/{_matrix_cache_name()}", data)
    sb.own.append("cache/*")
    env = {**GOOD_ENV, "packages": {**GOOD_ENV["packages"], "optimum-quanto": None}}  # type: ignore[dict-item]
    return [*CHECK, "--env", env_file(sb, env)]


@case("cache-truncated", "caches", "a truncated matrix pickle", 0, "quanto", item=1, owner="speed")
def _(sb: Sandbox) -> list[str]:
    plant_bytes(pickle.dumps({"x": "y" * 100})[:-3])(sb)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-value-error",
    "caches",
    "a corrupt pickle raises ValueError",
    0,
    "quanto",
    item=1,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    plant_bytes(b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x03abc\x94\x85\x94R\x94.")(sb)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-unicode-error",
    "caches",
    "a corrupt pickle raises UnicodeDecodeError",
    0,
    "quanto",
    item=1,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    plant_bytes(b"\x80\x04X\x02\x00\x00\x00\xff\xfe.")(sb)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-overflow-error",
    "caches",
    "a corrupt pickle raises OverflowError",
    0,
    "quanto",
    item=1,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    plant_bytes(b"\x80\x04\x8b\xff\xff\xff\x7f" + b"\x01" * 8 + b".")(sb)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-old-layout",
    "caches",
    "a cache from older code gives AttributeError",
    0,
    "quanto",
    item=1,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    plant_bytes(
        b"\x80\x04\x95(\x00\x00\x00\x00\x00\x00\x00\x8c\x1aquantdoctor.rules.schema\x94\x8c\x07Gone123\x94\x93\x94)\x81\x94."
    )(sb)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-forged-report",
    "caches",
    "a forged report JSON is printed as this machine's",
    0,
    "rebuilt",
    item=1,
    owner="speed",
    kind="python",
)
def _(sb: Sandbox) -> list[str]:
    # Plant a forged report under every name the report cache could read, then ask for it.
    code = (
        "import subprocess, sys, os, glob, json\n"
        "r = subprocess.run([sys.executable, '-m', 'quantdoctor', '--json'], capture_output=True, text=True)\n"
        f"cache = {str(sb.cache)!r}\n"
        "for p in glob.glob(os.path.join(cache, '**', 'report-*.json'), recursive=True):\n"
        "    data = open(p, 'rb').read()\n"
        "    open(p, 'wb').write(data.replace(b'linux', b'FORGEDOS'))\n"
        "r = subprocess.run([sys.executable, '-m', 'quantdoctor', '--json'], capture_output=True, text=True)\n"
        "print('forged' if 'FORGEDOS' in r.stdout else 'rebuilt')\n"
    )
    sb.own.append("cache/*")
    sb.own.append("cache/**")
    return [code]


@case(
    "cache-symlink-tmp",
    "caches",
    "a planted symlink at the cache's temporary name overwrites a user file",
    0,
    "quanto",
    item=2,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    victim = sb.write("home/precious.txt", "the user's file\n")
    pid = os.getpid()
    name = _matrix_cache_name()
    for p in range(pid, pid + 400):
        (sb.cache / f".{name}.{p}.tmp").symlink_to(victim)
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-symlink-final",
    "caches",
    "a planted symlink at the cache's own name",
    0,
    "quanto",
    item=2,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    victim = sb.write("home/precious.txt", "the user's file\n")
    (sb.cache / _matrix_cache_name()).symlink_to(victim)
    sb.own.append(f"cache/{_matrix_cache_name()}")
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-prune-user-reports",
    "caches",
    "pruning deletes a user's report-*.json",
    0,
    "",
    item=3,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    for i in range(5):
        sb.write(f"cache/report-{i}.json", '{"mine": true}')
    return ["--json"]


@case(
    "cache-prune-user-pickles",
    "caches",
    "pruning deletes a user's matrix-*.pickle",
    0,
    "quanto",
    item=3,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    for i in range(3):
        sb.write(f"cache/matrix-{i}.pickle", b"user data")
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]


@case(
    "cache-dir-is-file",
    "caches",
    "QUANTDOCTOR_CACHE_DIR names a file",
    0,
    "quanto",
    item=2,
    owner="speed",
)
def _(sb: Sandbox) -> list[str]:
    sb.env["QUANTDOCTOR_CACHE_DIR"] = str(sb.write("home/notes.txt", "mine\n"))
    return [*CHECK, "--env", env_file(sb, GOOD_ENV)]

"""Which checks of diffusers' quantizers can refuse a plan, and which matrix rule predicts each.

Reads the installed diffusers' quantizer sources with ``ast`` (nothing is imported) and lists
every gate: each ``raise`` and each warning (``logger.warning``, ``warnings.warn``) in a
quantizer's ``__new__``/``__init__``/``validate_environment``, at the top level of the modules
of its own sub-package that the quantizer imports (they run on import), in its config class's
``__new__``/``__init__``/``post_init`` (and the property setters ``__init__`` assigns through),
and in every function those call inside their own package (methods of the same class,
functions of the same module, functions imported from the backend's own sub-package).

A gate is *covered* when a rule of the matrix cites it in its ``source`` (or in one of its
signatures' ``source``: an engine's ``missing:`` texts become its not-installed rule's).
The citation format is

    <distribution>@<version>:<path in the project's repository>:L<line>
    e.g. diffusers@0.42.1:src/diffusers/quantizers/gguf/gguf_quantizer.py:L45

where ``<line>`` is the line of the ``raise`` keyword or of the warning call in that released
version (the file at the tag ``v<version>`` on GitHub). ``:L30-L34`` cites the gates on those
lines; a rule that predicts several gates cites each of them.

Some checks only reject a value of the wrong Python type (``load_in_4bit must be a
boolean``): no plan quantdoctor builds can reach them, so they are listed with kind
``argument`` and counted apart; ``ARGUMENT_CHECKS`` below says which and why.

Writes benchmarks/results/upstream_gates.json, prints covered/total per backend, and exits 1
when a plan gate is uncovered (2 when diffusers is not installed).

    python benchmarks/upstream_gates.py [--matrix FILE ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.metadata
import importlib.util
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "upstream_gates.json"
CITATION = re.compile(
    r"(?P<dist>[A-Za-z0-9_.\-]+)@(?P<version>[A-Za-z0-9_.+\-]+):(?P<path>[\w./\-]+\.py)"
    r":L(?P<line>\d+)(?:-L(?P<end>\d+))?"
)

#: backend directory under diffusers/quantizers -> config class in quantization_config.py
CONFIGS = {
    "autoround": "AutoRoundConfig",
    "bfl": "BFLQuantizationConfig",
    "bitsandbytes": "BitsAndBytesConfig",
    "gguf": "GGUFQuantizationConfig",
    "modelopt": "NVIDIAModelOptConfig",
    "nunchaku": "NunchakuLiteQuantizationConfig",
    "quanto": "QuantoConfig",
    "sdnq": "SDNQConfig",
    "torchao": "TorchAoConfig",
}
QUANTIZER_ENTRIES = ("__new__", "__init__", "validate_environment")
CONFIG_ENTRIES = ("__new__", "__init__", "post_init")

#: Checks that only reject an argument of the wrong Python type or shape, or two arguments
#: that contradict each other. quantdoctor builds these configs itself from a plan's scheme
#: (the engine modules' diffusers config builders), so no plan reaches them; they are listed
#: but not counted as plan gates. (function glob, message regex, why no plan reaches it)
_TYPE = "a Python type check of an argument; quantdoctor passes the type the config expects"
ARGUMENT_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("BitsAndBytesConfig.*", r"must be (a |an )?(boolean|float|string|list|torch\.dtype)", _TYPE),
    ("BitsAndBytesConfig.*", r"must be a string or a torch\.dtype", _TYPE),
    (
        "BitsAndBytesConfig.__init__",
        r"Unused kwargs",
        "a warning about keyword arguments quantdoctor never passes",
    ),
    (
        "BitsAndBytesConfig.__init__",
        r"load_in_4bit and load_in_8bit are both True",
        "a plan's scheme picks one of load_in_4bit (nf4, fp4) and load_in_8bit (int8), never both",
    ),
    (
        "BitsAndBytesConfig.__init__",
        r"bnb_4bit_quant_storage` must be a valid string",
        "quantdoctor does not set bnb_4bit_quant_storage (diffusers' default, uint8, is valid)",
    ),
    (
        "NunchakuLiteQuantizationConfig.__init__",
        r"compute_dtype must be a string or a torch\.dtype",
        _TYPE,
    ),
    (
        "NunchakuLiteQuantizationConfig.post_init",
        r"must be a JSON object|must be int|targets must be strings",
        _TYPE,
    ),
    ("TorchAoConfig.post_init", r"quant_type must be an AOBaseConfig instance", _TYPE),
    (
        "NVIDIAModelOptConfig._normalize_quant_type",
        r"is not supported\. Picking",
        "quantdoctor passes the scheme's diffusers spelling (FP8, INT8, INT4, NF4, NVFP4), "
        "which the check accepts",
    ),
    (
        "AutoRoundConfig._validate_backend",
        r"Invalid backend",
        "quantdoctor passes no backend; diffusers' default (auto) is valid",
    ),
)


@dataclass
class Gate:
    backend: str
    file: str  # path in diffusers' repository: src/diffusers/...
    line: int
    function: str  # Class.method or function
    kind: str  # raise | warning | argument
    error: str  # exception class, or the warning call
    message: str
    condition: str  # the enclosing `if` tests, innermost last
    rules: list[str] = field(default_factory=list)
    why_not_a_plan_gate: str = ""

    @property
    def citation(self) -> str:
        return f"diffusers@{VERSION}:{self.file}:L{self.line}"


VERSION = ""


def _text(node: ast.AST | None) -> str:
    """The literal text of a message: string constants kept, formatted parts as {...}."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
            for v in node.values
            if isinstance(v, ast.Constant | ast.FormattedValue)
        )
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    if isinstance(node, ast.Call) and node.args:
        return _text(node.args[0])
    return ast.unparse(node)


class Module:
    """One parsed source file of the quantizers package."""

    def __init__(self, path: Path, package_root: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        self.rel = "src/diffusers/" + path.relative_to(package_root).as_posix()
        self.functions = {
            n.name: n
            for n in self.tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.classes = {n.name: n for n in self.tree.body if isinstance(n, ast.ClassDef)}
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent

    def methods(self, cls: str) -> dict[str, list[ast.FunctionDef]]:
        out: dict[str, list[ast.FunctionDef]] = {}
        for node in self.classes[cls].body:
            if isinstance(node, ast.FunctionDef):
                out.setdefault(node.name, []).append(node)
        return out

    def setters(self, cls: str) -> dict[str, ast.FunctionDef]:
        out = {}
        for node in self.classes[cls].body:
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Attribute) and dec.attr == "setter":
                        out[node.name] = node
        return out

    def own_imports(self, backend_dir: Path) -> dict[str, Path]:
        """Names imported from the backend's own sub-package (``from .utils import x``)."""
        out = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                target = backend_dir / (node.module.replace(".", "/") + ".py")
                if target.is_file() and self.path.parent == backend_dir:
                    for alias in node.names:
                        out[alias.asname or alias.name] = target
        return out

    def condition(self, node: ast.AST) -> str:
        tests = []
        cur = node
        while cur in self.parents:
            parent = self.parents[cur]
            if isinstance(parent, ast.If) and cur in parent.body:
                tests.append(ast.unparse(parent.test))
            elif isinstance(parent, ast.If) and cur in parent.orelse:
                tests.append("not (" + ast.unparse(parent.test) + ")")
            if isinstance(parent, ast.FunctionDef):
                break
            cur = parent
        return " and ".join(reversed(tests))


def _gates_in(fn: ast.FunctionDef, qualname: str, module: Module, backend: str) -> list[Gate]:
    gates = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc
            error = ast.unparse(exc.func if isinstance(exc, ast.Call) else exc)
            message = _text(exc.args[0]) if isinstance(exc, ast.Call) and exc.args else ""
            gates.append(
                Gate(
                    backend,
                    module.rel,
                    node.lineno,
                    qualname,
                    "raise",
                    error,
                    message,
                    module.condition(node),
                )
            )
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if (owner == "logger" and node.func.attr in ("warning", "warn")) or (
                owner == "warnings" and node.func.attr == "warn"
            ):
                message = _text(node.args[0]) if node.args else ""
                gates.append(
                    Gate(
                        backend,
                        module.rel,
                        node.lineno,
                        qualname,
                        "warning",
                        f"{owner}.{node.func.attr}",
                        message,
                        module.condition(node),
                    )
                )
    return gates


def _module_level_gates(module: Module, backend: str) -> list[Gate]:
    """Gates that run when a module of the backend's package is imported."""
    body = ast.Module(
        body=[n for n in module.tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)],
        type_ignores=[],
    )
    return _gates_in(body, "<import>", module, backend)  # type: ignore[arg-type]


def _calls(fn: ast.FunctionDef) -> tuple[set[str], set[str], set[str]]:
    """self.method() calls, bare-name calls, and self.attr assignments in a function."""
    methods, names, assigned = set(), set(), set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id in ("self", "cls")
            ):
                methods.add(f.attr)
            elif isinstance(f, ast.Name):
                names.add(f.id)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                ):
                    assigned.add(t.attr)
    return methods, names, assigned


def collect(package_root: Path) -> list[Gate]:
    qdir = package_root / "quantizers"
    modules: dict[Path, Module] = {}

    def module(path: Path) -> Module:
        if path not in modules:
            modules[path] = Module(path, package_root)
        return modules[path]

    gates: dict[tuple[str, int], Gate] = {}
    for backend, config_cls in sorted(CONFIGS.items()):
        bdir = qdir / backend
        work: list[tuple[Module, str | None, str]] = []  # (module, class, function)
        for path in sorted(bdir.glob("*_quantizer.py")):
            m = module(path)
            for target in sorted(set(m.own_imports(bdir).values())):
                tm = module(target)
                for gate in _module_level_gates(tm, backend):
                    gates.setdefault((gate.file, gate.line), gate)
            for cls in m.classes:
                work += [(m, cls, e) for e in QUANTIZER_ENTRIES if e in m.methods(cls)]
        cm = module(qdir / "quantization_config.py")
        work += [(cm, config_cls, e) for e in CONFIG_ENTRIES if e in cm.methods(config_cls)]
        seen: set[tuple[Path, str | None, str]] = set()
        while work:
            m, cls, name = work.pop()
            if (m.path, cls, name) in seen:
                continue
            seen.add((m.path, cls, name))
            if cls is not None:
                fns = m.methods(cls).get(name, [])
                if name in m.setters(cls):
                    fns = [m.setters(cls)[name]]
            else:
                fns = [m.functions[name]] if name in m.functions else []
            imports = m.own_imports(bdir)
            for fn in fns:
                qual = f"{cls}.{name}" if cls else name
                for gate in _gates_in(fn, qual, m, backend):
                    gates.setdefault((gate.file, gate.line), gate)
                methods, names, assigned = _calls(fn)
                if cls is not None:
                    work += [(m, cls, meth) for meth in methods if meth in m.methods(cls)]
                    work += [(m, cls, attr) for attr in assigned if attr in m.setters(cls)]
                for n in names:
                    if n in m.functions:
                        work.append((m, None, n))
                    elif n in imports:
                        target = module(imports[n])
                        if n in target.functions:
                            work.append((target, None, n))
                        elif n in target.classes:
                            work += [
                                (target, n, e) for e in ("__init__",) if e in target.methods(n)
                            ]
    out = sorted(gates.values(), key=lambda g: (g.backend, g.file, g.line))
    for gate in out:
        for fn_glob, msg_pat, why in ARGUMENT_CHECKS:
            if fnmatch.fnmatchcase(gate.function, fn_glob) and re.search(msg_pat, gate.message):
                gate.kind, gate.why_not_a_plan_gate = "argument", why
                break
    return out


def cited_by(rule: Any) -> list[str]:
    """A rule's sources and its signatures' sources: a rule made from an engine's section
    (``<engine>.not-installed``) cites a gate through the signature of its ``missing:``."""
    return [*rule.sources, *(s.source for s in rule.signatures)]


def _spans(text: str) -> list[tuple[str, int, int]]:
    """(dist@version:path, first line, last line) of each citation in a text."""
    out = []
    for m in CITATION.finditer(text):
        where = f"{m['dist']}@{m['version']}:{m['path']}"
        out.append((where, int(m["line"]), int(m["end"] or m["line"])))
    return out


def cites(rule: Any, citation: str) -> bool:
    """Whether a rule cites a gate: its line, or a range ``:L30-L34`` holding it."""
    ((where, line, _),) = _spans(citation)
    return any(
        w == where and first <= line <= last
        for text in cited_by(rule)
        for w, first, last in _spans(text)
    )


def rules_citing(gates: list[Gate], matrix_files: list[Path] | None = None) -> None:
    """Fill each gate's ``rules`` from the loaded matrix."""
    sys.path.insert(0, str(ROOT))
    from quantdoctor import load_matrix

    matrix = load_matrix(extra=matrix_files or None)
    for gate in gates:
        gate.rules = sorted({r.id for r in matrix.rules if cites(r, gate.citation)})


def main(argv: list[str] | None = None) -> int:
    global VERSION
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=Path, action="append", help="an overlay whose rules count too")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    spec = importlib.util.find_spec("diffusers")
    if spec is None or spec.origin is None:
        print("diffusers is not installed", file=sys.stderr)
        return 2
    VERSION = importlib.metadata.version("diffusers")
    gates = collect(Path(spec.origin).parent)
    rules_citing(gates, args.matrix)

    table: dict[str, dict[str, int]] = {}
    for gate in gates:
        row = table.setdefault(gate.backend, {"covered": 0, "total": 0, "argument": 0})
        if gate.kind == "argument":
            row["argument"] += 1
            continue
        row["total"] += 1
        row["covered"] += bool(gate.rules)
    print(f"diffusers {VERSION}: quantizer gates covered by a matrix rule")
    print(f"{'backend':<14}{'covered':>8}{'total':>7}{'argument checks':>17}")
    for backend, row in sorted(table.items()):
        print(f"{backend:<14}{row['covered']:>8}{row['total']:>7}{row['argument']:>17}")
    covered = sum(r["covered"] for r in table.values())
    total = sum(r["total"] for r in table.values())
    print(f"{'all':<14}{covered:>8}{total:>7}")
    for gate in gates:
        if gate.kind != "argument" and not gate.rules:
            print(f"uncovered: {gate.citation} {gate.function}: {gate.error}: {gate.message[:90]}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "diffusers": VERSION,
        "citation_format": "<distribution>@<version>:<path in the repository>:L<line>",
        "summary": table,
        "gates": [dict(asdict(g), citation=g.citation) for g in gates],
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0 if covered == total else 1


if __name__ == "__main__":
    sys.exit(main())

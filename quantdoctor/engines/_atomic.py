"""``quantize()`` either finishes or leaves the module as it was.

An engine converts a module layer by layer; one that fails on the fifth layer has already
replaced the first four (quanto's ``QLinear``, torchao's tensor subclasses). Before the
engine runs, every submodule's attributes (its children, parameters, buffers, hooks: the
dicts in its ``__dict__``) are recorded, and every tensor's identity, type, storage and
version counter. On failure the attributes are put back; the tensors are the originals,
so if none was changed in place (same type, storage and version) the module is
byte-identical to what the caller passed. If one was (an engine that swaps or writes a
tensor in place), the error says exactly which, and that the module must be reloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _tensor_state(t: Any) -> tuple[Any, ...]:
    try:
        ptr = t.data_ptr()
    except Exception:  # a tensor subclass without storage of its own
        ptr = None
    return (type(t), t.dtype, tuple(t.shape), ptr, t._version)


class _Snapshot:
    def __init__(self, module: torch.nn.Module) -> None:
        self.modules: list[tuple[Any, dict[str, Any], dict[str, dict[Any, Any]]]] = []
        self.tensors: dict[int, tuple[str, Any, tuple[Any, ...]]] = {}
        for name, m in module.named_modules(remove_duplicate=False):
            attrs = dict(m.__dict__)
            dicts = {k: dict(v) for k, v in attrs.items() if isinstance(v, dict)}
            self.modules.append((m, attrs, dicts))
            for kind in ("_parameters", "_buffers"):
                for key, t in getattr(m, kind, {}).items():
                    if t is not None and id(t) not in self.tensors:
                        where = f"{name}.{key}" if name else key
                        self.tensors[id(t)] = (where, t, _tensor_state(t))

    def restore(self) -> list[str]:
        """Put every attribute back; the names of tensors changed in place (none: the
        module is as it was)."""
        for m, attrs, dicts in self.modules:
            d = m.__dict__
            d.clear()
            d.update(attrs)
            for key, contents in dicts.items():
                held = attrs[key]
                held.clear()
                held.update(contents)
        return [where for where, t, state in self.tensors.values() if _tensor_state(t) != state]


@contextmanager
def restored_on_failure(module: torch.nn.Module, engine: str) -> Iterator[None]:
    """Run the engine; if it raises, restore ``module`` and raise an ``EngineError`` (also
    an instance of the engine's error type where Python allows) saying what state it is in."""
    snapshot = _Snapshot(module)
    try:
        yield
    except Exception as exc:
        changed = snapshot.restore()
        raise _failure(exc, engine, changed) from exc


def _failure(exc: Exception, engine: str, changed: list[str]) -> Exception:
    from quantdoctor.errors import EngineError, QuantDoctorError
    from quantdoctor.gate import _also_a, _str

    if isinstance(exc, QuantDoctorError) and not changed:
        return exc  # quantdoctor's own error (a refused scheme ...): nothing was touched
    cause = (f"{type(exc).__name__}: {_str(exc)}".strip().splitlines() or [""])[0][:300]
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        state = (
            f"the module is NOT as it was: {engine} changed {shown} in place before failing; "
            "reload the model before using it"
        )
    else:
        state = "the module was restored: it is exactly as it was before quantize()"
    message = f"{engine} failed while quantizing ({cause}); {state}"
    both = _also_a(type(exc))
    if both is not None:
        try:
            return both(message)
        except Exception:
            pass
    return EngineError(message)

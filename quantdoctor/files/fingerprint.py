"""What an engine module's ``fingerprint`` sees of a safetensors model, and gives back.

``detect`` asks each engine of the matrix (its module, ``fingerprint(view)``) which of the
file's tensors are its quantized weights; the engine that holds the most parameters names
the file's engine and scheme. An engine whose files are a format of their own (GGUF)
names it in its matrix section (``formats``) instead.
"""

from __future__ import annotations

from quantdoctor._fileio import open_regular, read_exact, unreadable
from quantdoctor._json import loads
from quantdoctor.files._safetensors_header import SafetensorsHeader, TensorEntry

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    import os
    from pathlib import Path
    from typing import Any, NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple

__all__ = ["MAX_JSON_BYTES", "Quantized", "TensorView", "json_field", "read_json"]

#: config.json, model_index.json, index and qmap files are small; anything bigger is not one.
MAX_JSON_BYTES = 16 * 1024 * 1024


class Quantized:
    """An engine's quantized weights of one scheme: stored tensor name -> parameters."""

    __slots__ = ("engine", "scheme", "weights")

    def __init__(self, engine: str, scheme: str | None, weights: dict[str, int] | None = None):
        self.engine = engine
        self.scheme = scheme
        self.weights: dict[str, int] = {} if weights is None else weights

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantized) and (self.engine, self.scheme, self.weights) == (
            other.engine,
            other.scheme,
            other.weights,
        )

    def __repr__(self) -> str:
        return f"Quantized({self.engine!r}, {self.scheme!r}, {len(self.weights)} weights)"


class TensorView(NamedTuple):
    """One model's safetensors headers (several for a sharded one), read, never loaded."""

    #: the file (or index) that errors name
    where: str
    headers: list[SafetensorsHeader]
    by_name: dict[str, TensorEntry]
    #: the folder beside the weights, as text (side files: quanto's ``quanto_qmap.json``)
    beside: str | None = None

    @property
    def folder(self) -> Path | None:
        """``beside`` as a ``Path`` (pathlib is imported here, on first use: ``detect`` of
        one file imports every engine's module, and none of them needs it)."""
        if self.beside is None:
            return None
        from pathlib import Path

        return Path(self.beside)


def read_json(path: str | os.PathLike[str]) -> Any:
    """A small JSON side file, bounded, or ``UnreadableFileError`` naming it."""
    f, size = open_regular(path)
    with f:
        if size > MAX_JSON_BYTES:
            raise unreadable(path, f"{size} bytes is too large for a JSON side file")
        raw = read_exact(f, size, path, "the JSON")
    try:
        return loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise unreadable(path, f"not valid JSON: {str(err)[:120]}") from None


def json_field(where: str, key: str, text: str) -> Any:
    """A header metadata value that holds JSON."""
    try:
        return loads(text)
    except (ValueError, RecursionError):
        raise unreadable(where, f"metadata {key[:80]!r} is not valid JSON") from None

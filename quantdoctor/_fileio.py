"""Opening a model file for header reads: read-only, regular files only, never blocking.

A path the user hands to ``detect`` may be a FIFO, a device or a directory. Opening a
FIFO for reading blocks until a writer appears, so files are opened with ``O_NONBLOCK``
and refused unless they are regular files; nothing is ever opened for writing.
"""

from __future__ import annotations

import os
import stat

from quantdoctor.errors import UnreadableFileError

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from typing import BinaryIO


def unreadable(path: str | os.PathLike[str], what: str) -> UnreadableFileError:
    """The one-line error the CLI prints: the file, then what is wrong with it."""
    return UnreadableFileError(f"{os.fspath(path)}: {what}")


def open_regular(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading and return it with its size; refuse non-regular files."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise unreadable(path, "no such file") from None
    except IsADirectoryError:
        raise unreadable(path, "is a directory, not a model file") from None
    except OSError as err:
        raise unreadable(path, f"cannot open: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise unreadable(path, f"is {kind}; expected a .safetensors or .gguf file")
        # O_NONBLOCK has no effect on reads of a regular file, so it can stay set.
        return os.fdopen(fd, "rb", buffering=0), info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_exact(f: BinaryIO, n: int, path: str | os.PathLike[str], what: str) -> bytes:
    """Exactly ``n`` bytes, or an error saying the file ended inside ``what``."""
    chunks: list[bytes] = []
    left = n
    while left > 0:
        try:
            chunk = f.read(left)
        except OSError as err:
            raise unreadable(path, f"read error in {what}: {err.strerror or err}") from None
        if not chunk:
            raise unreadable(path, f"truncated: the file ends inside {what}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)

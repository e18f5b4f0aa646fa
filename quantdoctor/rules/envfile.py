"""Reading an Environment JSON file (``--env FILE``) with errors that name the file and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantdoctor.errors import EnvironmentFileError
from quantdoctor.rules.models import Environment


def parse_env(data: Any, name: str) -> Environment:
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise EnvironmentFileError(f"{name}: expected a JSON object (an Environment)")
    try:
        return Environment.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            from quantdoctor.rules.vocab import suggest

            valid = _valid_keys(tuple(e["loc"]))
            raise EnvironmentFileError(
                f"{name}: {loc}: unknown key; {suggest(str(e['loc'][-1]), valid)}"
            ) from None
        msg = e["msg"].removeprefix("Value error, ")
        if msg.split(":", 1)[0].split(".", 1)[0] == loc.split(".", 1)[0]:
            raise EnvironmentFileError(f"{name}: {msg}") from None  # the message names the key
        raise EnvironmentFileError(f"{name}: {loc}: {msg}") from None


def _valid_keys(loc: tuple[Any, ...]) -> tuple[str, ...]:
    from quantdoctor.rules.models import GPU, TorchInfo, TritonInfo

    parent = [p for p in loc[:-1] if not isinstance(p, int)]
    model: Any = {"torch": TorchInfo, "gpus": GPU, "triton": TritonInfo}.get(
        parent[0] if parent else "", Environment
    )
    return tuple(model.model_fields)


def load_env_file(path: str | Path) -> Environment:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvironmentFileError(f"--env {p}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EnvironmentFileError(f"--env {p}: cannot read: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise EnvironmentFileError(f"{p}:{err.lineno}: not valid JSON: {err.msg}") from None
    return parse_env(data, str(p))

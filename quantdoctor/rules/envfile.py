"""Reading an Environment JSON file (``--env FILE``) with errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

from quantdoctor.errors import EnvironmentFileError
from quantdoctor.rules.models import Environment

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any
else:  # collections.abc imports collections: ~3 ms of a command
    from _collections_abc import Mapping

#: pydantic's error types in the words of the Environment JSON (README, DESIGN.md).
_PLAIN: dict[str, str] = {
    "model_type": 'expected an object, like {"version": "2.5.1"}',
    "model_attributes_type": 'expected an object, like {"version": "2.5.1"}',
    "dict_type": 'expected an object, like {"diffusers": "0.35.0"}',
    "tuple_type": 'expected a list, like [{"vendor": "nvidia", "name": "..."}]',
    "list_type": "expected a list",
    "float_parsing": "expected a number, like 24.0",
    "float_type": "expected a number, like 24.0",
    "int_parsing": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": 'expected a string, like "8.9"',
}


def parse_env(data: Any, name: str) -> Environment:
    from pydantic import ValidationError

    if not isinstance(data, Mapping):
        raise EnvironmentFileError(f"{name}: expected a JSON object (an Environment)")
    try:
        return Environment.model_validate(dict(data))
    except RecursionError:
        raise EnvironmentFileError(f"{name}: nested too deeply") from None
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(_key(p) for p in e["loc"])
        if e["type"] == "unknown_field":  # rules.models: it names the model's keys
            raise EnvironmentFileError(f"{name}: {loc}: unknown key; {e['ctx']['valid']}") from None
        msg = _PLAIN.get(e["type"]) or e["msg"].removeprefix("Value error, ")
        msg = msg.replace("Input should be", "expected")
        if msg.split(":", 1)[0].split(".", 1)[0] == loc.split(".", 1)[0]:
            raise EnvironmentFileError(f"{name}: {msg}") from None  # the message names the key
        raise EnvironmentFileError(f"{name}: {loc}: {msg}") from None


def _key(part: Any) -> str:
    """A key as the error shows it: as written, or quoted where it would not read as one
    word on one line (a newline or an escape sequence in a key from a hostile file)."""
    text = str(part)
    if text and text.isprintable() and text.strip() == text and len(text) <= 80:
        return text
    return repr(text[:80])


def load_env_file(path: str | Path) -> Environment:
    """An Environment from a JSON file: a regular file of at most ``ENV_LIMIT`` bytes, no
    duplicate keys, no absurd numbers or nesting; every problem one error naming it."""
    from quantdoctor.rules.untrusted import ENV_LIMIT, load_json, read_user_file

    p = Path(path)
    text = read_user_file(p, "--env ", EnvironmentFileError, ENV_LIMIT)
    return parse_env(load_json(text, str(p), EnvironmentFileError), str(p))

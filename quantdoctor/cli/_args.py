"""The command line read without argparse, for the commands people run every time.

argparse and what it imports (gettext, locale, and re with enum when nothing else needs
them) cost a process about as much as the interpreter's own start-up. Each command still
declares its options once, in ``add_arguments(parser)``; here that function is handed a
:class:`Recorder` instead of a parser, which keeps what it declares as plain data, and
:func:`parse` reads a command line with it.

``parse`` reads only the plain forms (``--opt value``, ``--opt=value``, ``-v``, flags,
options that repeat, positionals) and answers ``None`` for anything else: ``-h``,
``--version``, an abbreviated or unknown option, a value that starts with ``-``, a
missing required option, a value its type or choices refuse, two options of one
exclusive group, ``--``. argparse then reads that command line itself, so help, errors
and every rarer form are argparse's, word for word. ``tests/test_cli_args.py`` checks
that whatever ``parse`` accepts, argparse reads to the same values.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

#: The actions :func:`parse` reads; an option with another makes the command argparse's.
_FLAGS = {"store_true": True, "store_false": False}
_VALUES = ("store", "append")


class Args:
    """The values of a command line, as attributes (``argparse.Namespace``'s shape)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"


class _Option:
    __slots__ = ("action", "choices", "default", "dest", "group", "nargs", "required", "type")

    def __init__(self, dest: str, kw: dict[str, Any], group: int) -> None:
        self.dest = dest
        self.action: str = kw.get("action") or "store"
        self.type: Callable[[str], Any] | None = kw.get("type")
        self.choices: Sequence[Any] | None = kw.get("choices")
        self.nargs: str | None = kw.get("nargs")
        self.required: bool = bool(kw.get("required"))
        self.group = group
        if self.action in _FLAGS:
            default = kw.get("default", not _FLAGS[self.action])
        else:
            default = kw.get("default")
            if isinstance(default, str) and self.type is not None:
                default = self.type(default)  # as argparse converts a string default
        self.default = default


class Recorder:
    """Takes ``add_argument`` calls as a parser would and keeps them as data."""

    def __init__(self) -> None:
        self.options: dict[str, _Option] = {}
        self.positionals: list[_Option] = []
        self.plain = True  # False once something parse() does not read is declared
        self._group = 0
        self._groups = 0

    def add_argument(self, *flags: str, **kw: Any) -> None:
        action = kw.get("action") or "store"
        if action not in _FLAGS and action not in _VALUES:
            self.plain = False
            return
        if flags and not flags[0].startswith("-"):  # a positional
            option = _Option(kw.get("dest") or flags[0], kw, self._group)
            if option.nargs not in (None, "?") or action != "store":
                self.plain = False
            self.positionals.append(option)
            return
        longs = [f for f in flags if f.startswith("--")]
        dest = kw.get("dest") or (longs or list(flags))[0].lstrip("-").replace("-", "_")
        option = _Option(dest, kw, self._group)
        if option.nargs is not None:
            self.plain = False
        for flag in flags:
            self.options[flag] = option

    def add_mutually_exclusive_group(self, **_kw: Any) -> _Group:
        self._groups += 1
        return _Group(self, self._groups)

    def defaults(self) -> dict[str, Any]:
        values = {o.dest: o.default for o in self.options.values()}
        values.update((o.dest, o.default) for o in self.positionals)
        return values


class _Group:
    """An exclusive group: its options are the recorder's, marked with the group."""

    def __init__(self, recorder: Recorder, number: int) -> None:
        self._recorder = recorder
        self._number = number

    def add_argument(self, *flags: str, **kw: Any) -> None:
        self._recorder._group = self._number
        try:
            self._recorder.add_argument(*flags, **kw)
        finally:
            self._recorder._group = 0


def parse(recorder: Recorder, argv: Sequence[str]) -> dict[str, Any] | None:
    """The values of ``argv`` by ``recorder``'s declarations, or ``None`` where argparse
    must read it (see the module's docstring)."""
    if not recorder.plain:
        return None
    values = recorder.defaults()
    given: set[str] = set()
    groups: dict[int, str] = {}
    positionals = iter(recorder.positionals)
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token.startswith("-") and token != "-":
            name, eq, text = token.partition("=") if token.startswith("--") else (token, "", "")
            option = recorder.options.get(name)
            if option is None:
                return None
            if option.group and groups.setdefault(option.group, option.dest) != option.dest:
                return None
            if option.action in _FLAGS:
                if eq:
                    return None
                values[option.dest] = _FLAGS[option.action]
            else:
                if not eq:
                    if i >= len(argv) or argv[i].startswith("-"):
                        return None
                    text = argv[i]
                    i += 1
                ok, value = _convert(option, text)
                if not ok:
                    return None
                if option.action == "append":
                    values[option.dest] = [*(values[option.dest] or ()), value]
                else:
                    values[option.dest] = value
            given.add(option.dest)
            continue
        positional = next(positionals, None)
        if positional is None:
            return None
        ok, value = _convert(positional, token)
        if not ok:
            return None
        values[positional.dest] = value
        given.add(positional.dest)
    for positional in positionals:
        if positional.nargs != "?":
            return None
    for option in recorder.options.values():
        if option.required and option.dest not in given:
            return None
    return values


def _convert(option: _Option, text: str) -> tuple[bool, Any]:
    value: Any = text
    if option.type is not None:
        try:
            value = option.type(text)
        except Exception:  # argparse says what is wrong, in its words
            return False, None
    if option.choices is not None and value not in option.choices:
        return False, None
    return True, value

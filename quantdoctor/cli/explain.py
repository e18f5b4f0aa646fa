"""``quantdoctor explain TEXT | --file F [--json]``: which rules an error text matches.

TEXT may be ``-`` (read standard input), as may F. Exit 0 when a rule matched, 1 when
none did, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from quantdoctor.errors import InvalidInputError

#: A pasted traceback is kilobytes; a file much larger than this is not one.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "text", nargs="?", help="the error message or traceback ('-' reads standard input)"
    )
    parser.add_argument("--file", "-f", metavar="F", help="read the text from F ('-': stdin)")
    parser.add_argument("--json", action="store_true", help="print the matches as JSON")
    parser.add_argument(
        "--matrix",
        action="append",
        metavar="FILE",
        help="an overlay of rules to add (repeatable)",
    )


def _read_stdin() -> str:
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInputError(f"standard input: more than {MAX_INPUT_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _read_file(path: str) -> str:
    from quantdoctor._fileio import open_regular, read_exact, unreadable

    f, size = open_regular(path)
    with f:
        if size > MAX_INPUT_BYTES:
            raise unreadable(path, f"{size} bytes is too large for an error text")
        raw = read_exact(f, size, path, "the text")
    # Logs mix encodings (Windows consoles); an odd byte must not hide the message.
    return raw.decode("utf-8", errors="replace")


def read_text(args: argparse.Namespace) -> str:
    if (args.text is None) == (args.file is None):
        raise InvalidInputError("explain: give the error TEXT or --file F (one of them)")
    if args.file is not None:
        return _read_stdin() if args.file == "-" else _read_file(args.file)
    text: str = args.text
    return _read_stdin() if text == "-" else text


def run(args: argparse.Namespace) -> int:
    from quantdoctor.rules.explain import explain

    text = read_text(args)
    matrix = None
    if args.matrix:
        from quantdoctor.rules.matrix import load_matrix

        matrix = load_matrix(extra=args.matrix)
    matches = explain(text, matrix)
    if args.json:
        sys.stdout.write(json.dumps([m.to_dict() for m in matches], indent=2) + "\n")
        return 0 if matches else 1
    if not matches:
        sys.stdout.write(
            "No known error signature matches this text.\n"
            "  quantdoctor rules --json lists every rule; an overlay (--matrix) can add one.\n"
        )
        return 1
    marks = {"block": "✗", "warn": "!", "info": "i"}
    for m in matches:
        sys.stdout.write(f"{marks.get(m.severity, '-')} [{m.rule}] {m.message}\n")
        if m.fix:
            sys.stdout.write(f"    fix: {m.fix}\n")
        sys.stdout.write(f"    matched: {m.matched[:200]}\n")
        sys.stdout.write(f"    source: {m.source}\n")
    n = len(matches)
    sys.stdout.write(f"{n} rule{'s' if n != 1 else ''} matched; the first fits best.\n")
    return 0

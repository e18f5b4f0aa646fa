#!/bin/sh
# Sets up everything the tests need in .venv (CPU torch pinned by constraints.txt,
# every engine, diffusers) and runs the whole suite, ruff and mypy.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
.venv/bin/ruff check quantdoctor
.venv/bin/ruff format --check quantdoctor
.venv/bin/mypy --strict quantdoctor
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"

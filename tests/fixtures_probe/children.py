"""Functions for ``run_in_child`` tests: what a broken driver library does."""

from __future__ import annotations

import os
import time


def aborts(_: object) -> None:
    os.abort()


def hangs(_: object) -> None:
    time.sleep(1000)

"""How an outcome is shown and returned, defined once for the report and every command.

``MARKS`` and ``STYLES`` are flutter doctor's marks and their rich styles; ``EXIT_*`` are
the process exit codes (the README documents them).
"""

from __future__ import annotations

#: ``-`` is a neutral fact (nothing to fix).
MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "unknown": "?", "none": "-"}
STYLES = {"ok": "green", "warn": "yellow", "fail": "red", "unknown": "magenta", "none": "dim"}

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3

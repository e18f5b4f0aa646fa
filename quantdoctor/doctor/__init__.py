"""The doctor: probing the live machine, and the report people read.

Nothing here is imported by ``import quantdoctor``; each command imports the module it
needs. ``probe`` is reached through ``quantdoctor.probe`` (lazily).
"""

from __future__ import annotations

"""For downstream test suites: hypothesis strategies and a pytest plugin.

    from quantdoctor.testing import plans, environments, supported_plans

The pytest plugin (marker ``@pytest.mark.quantdoctor(...)``, fixtures ``quantdoctor_env``
and ``quantdoctor_verdict``, options ``--quantdoctor-env FILE`` and
``--quantdoctor-strict``) is registered through the ``pytest11`` entry point and needs no
import. Hypothesis is imported only when a strategy is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["environments", "plans", "supported_plans"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        try:
            from quantdoctor.testing import strategies
        except ModuleNotFoundError as err:
            if err.name != "hypothesis":
                raise
            raise ModuleNotFoundError(
                f"quantdoctor.testing.{name} needs hypothesis: pip install hypothesis",
                name="hypothesis",
            ) from None
        return getattr(strategies, name)
    raise AttributeError(f"module 'quantdoctor.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

import sys

from quantdoctor.cli import command, main


def _python_m() -> bool:
    """Run by ``python -m quantdoctor`` itself: this module's code was run by runpy's
    ``_run_code``, called by ``_run_module_as_main``, the process's first frame. Run by
    ``runpy.run_module`` inside another program (started with ``-m`` or not: ``python -m
    cProfile -m quantdoctor``, a debugger, a test), it is not, and that program goes on
    after quantdoctor: it gets ``SystemExit``."""
    caller = sys._getframe(2)  # this module's caller: runpy's _run_code
    first = caller.f_back
    return (
        caller.f_code.co_name == "_run_code"
        and first is not None
        and first.f_code.co_name == "_run_module_as_main"
        and first.f_back is None
    )


if _python_m():
    command()
raise SystemExit(main())

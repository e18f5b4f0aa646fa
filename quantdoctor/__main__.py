import sys

from quantdoctor.cli import command, main


def _python_m() -> bool:
    """Run by ``python -m quantdoctor``: runpy's ``_run_module_as_main`` is the process's
    first frame. ``runpy.run_module`` inside another program is not, and that program goes
    on after quantdoctor: it gets ``SystemExit``."""
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    return frame.f_code.co_name == "_run_module_as_main"


if _python_m():
    command()
raise SystemExit(main())

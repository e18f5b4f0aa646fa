"""Real file trees for the probes: sysfs/procfs as the kernel lays them out, a site dir
with dist-info folders as pip writes them, and little executables on a private PATH.

Each builder writes files and returns the path it wrote; nothing here imitates a probe.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def fixture_text(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_dist(site: Path, name: str, version: str | None, *, kind: str = "dist-info") -> Path:
    """A distribution's metadata as installers write it (``Version:`` omitted if None)."""
    headers = f"Metadata-Version: 2.1\nName: {name}\n"
    if version is not None:
        headers += f"Version: {version}\n"
    headers += "Summary: test distribution\n\nLong description.\nVersion: 9.9.9\n"
    folder_name = name.replace("-", "_")
    if kind == "dist-info":
        folder = site / f"{folder_name}-{version or '0'}.dist-info"
        write(folder / "METADATA", headers)
        write(folder / "RECORD", "")
        return folder
    if kind == "egg-info-dir":
        folder = site / f"{folder_name}-{version or '0'}-py3.11.egg-info"
        write(folder / "PKG-INFO", headers)
        return folder
    return write(site / f"{folder_name}-{version or '0'}-py3.11.egg-info", headers)


def write_torch(
    site: Path,
    version: str,
    *,
    cuda: str | None = None,
    hip: str | None = None,
    xpu: str | None = None,
    version_py: bool = True,
    dist: bool = True,
    dist_version: str | None = None,
) -> Path:
    """torch's dist-info and its generated ``torch/version.py`` (the layout of 2.x wheels).

    ``dist_version`` is what the metadata says when it differs from ``torch.__version__``
    (PyPI's default CUDA wheels install as ``2.11.0`` with ``__version__ = '2.11.0+cu130'``).
    """
    if dist:
        write_dist(site, "torch", dist_version or version)
    pkg = site / "torch"
    write(pkg / "__init__.py", "raise ImportError('a probe imported torch')\n")
    if version_py:

        def lit(v: str | None) -> str:
            return "None" if v is None else repr(v)

        write(
            pkg / "version.py",
            "from typing import Optional\n\n"
            "__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'xpu']\n"
            f"__version__ = {version!r}\n"
            "debug = False\n"
            f"cuda: Optional[str] = {lit(cuda)}\n"
            "git_version = 'cf30153c4c131c8164ee7798e5022d810682e2cb'\n"
            f"hip: Optional[str] = {lit(hip)}\n"
            f"rocm: Optional[str] = {lit(hip)}\n"
            f"xpu: Optional[str] = {lit(xpu)}\n",
        )
    return pkg


def write_kernel_release(root: Path, release: str) -> None:
    write(root / "proc/sys/kernel/osrelease", release + "\n")
    write(root / "proc/version", f"Linux version {release} (gcc) #1 SMP\n")


def write_nvidia_device_nodes(root: Path) -> None:
    """``/dev/nvidiactl``: the node the NVIDIA driver creates once loaded."""
    write(root / "dev/nvidiactl", "")


def write_drm_card(
    root: Path,
    card: int,
    *,
    vendor: str,
    device: str,
    klass: str = "0x030000",
    vram: int | None = None,
    product_name: str | None = None,
) -> Path:
    """``/sys/class/drm/cardN/device`` (and its ``renderD{128+N}`` twin) of a PCI GPU."""
    pci = root / f"sys/devices/pci0000:00/0000:0{card + 3}:00.0"
    write(pci / "vendor", vendor + "\n")
    write(pci / "device", device + "\n")
    write(pci / "class", klass + "\n")
    if vram is not None:
        write(pci / "mem_info_vram_total", f"{vram}\n")
    if product_name is not None:
        write(pci / "product_name", product_name + "\n")
    for node in (f"card{card}", f"renderD{128 + card}"):
        folder = root / "sys/class/drm" / node
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "device"
        if not link.exists():
            link.symlink_to(pci)
    return pci


def write_kfd_node(
    root: Path, index: int, properties: str, *, banks: list[dict[str, Any]] | None = None
) -> Path:
    node = root / "sys/class/kfd/kfd/topology/nodes" / str(index)
    write(node / "properties", properties)
    for i, bank in enumerate(banks or []):
        text = "".join(f"{k} {v}\n" for k, v in bank.items())
        write(node / "mem_banks" / str(i) / "properties", text)
    return node


def _tool(name: str) -> str:
    # The private PATH holds only the test's tools, so the scripts name system ones in full.
    found = shutil.which(name)
    assert found, f"{name} is needed to write test tools"
    return found


def write_tool(bindir: Path, name: str, body: str) -> Path:
    """An executable shell script ``name`` on a private PATH."""
    path = write(bindir / name, "#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def print_tool(bindir: Path, name: str, output: str, status: int = 0) -> Path:
    """A tool that prints ``output`` (written beside it) and exits with ``status``."""
    data = write(bindir / f"{name}.out", output)
    return write_tool(bindir, name, f'{_tool("cat")} "{data}"\nexit {status}')


def hanging_tool(bindir: Path, name: str) -> Path:
    """A tool that never returns (as nvidia-smi does on a wedged driver)."""
    return write_tool(bindir, name, f"{_tool('sleep')} 600")


def python_tool(bindir: Path, name: str, code: str) -> Path:
    """An executable that runs ``code`` with this interpreter (a stand-in ``python``)."""
    script = write(bindir / f"{name}.py", code)
    return write_tool(bindir, name, f'exec "{sys.executable}" "{script}" "$@"')


def path_env(bindir: Path) -> dict[str, str]:
    bindir.mkdir(parents=True, exist_ok=True)
    return {"PATH": str(bindir), "HOME": os.environ.get("HOME", "/tmp")}

"""The probes, each run on a real file tree written by the test: a root laid out like
``/proc``, ``/sys`` and ``/dev``, a site dir of dist-info folders, a private PATH."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures_probe.trees import (
    fixture_text,
    hanging_tool,
    path_env,
    print_tool,
    python_tool,
    write,
    write_dist,
    write_drm_card,
    write_kernel_release,
    write_kfd_node,
    write_nvidia_device_nodes,
    write_tool,
    write_torch,
)

from quantdoctor import Environment
from quantdoctor.doctor._probe_util import ProbeContext
from quantdoctor.doctor.probe import probe_dict

H100_SMI = (
    "NVIDIA H100 80GB HBM3, 9.0, 81559, 565.57.01, GPU-6f1a2b3c-0000-1111-2222-333344445555\n"
)


class Machine:
    """A fake machine's files; ``probe()`` runs the real probe over them."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.site = tmp / "site"
        self.bin = tmp / "bin"
        for d in (self.root, self.site, self.bin):
            d.mkdir(parents=True, exist_ok=True)
        write_kernel_release(self.root, "6.8.0-45-generic")

    def context(self, **kw: Any) -> ProbeContext:
        options: dict[str, Any] = {
            "root": str(self.root),
            "site_dirs": [str(self.site)],
            "environ": path_env(self.bin),
            "system": "linux",
            "machine": "x86_64",
            "python_version": "3.11.7",
            "nvml_libs": [str(self.root / "no-libnvidia-ml.so.1")],
            "timeout": 1.0,
            "cwd": str(self.root),
        }
        options.update(kw)
        return ProbeContext(**options)

    def probe(self, **kw: Any) -> dict[str, Any]:
        env = probe_dict(self.context(**kw))
        # Whatever the probe says must be a valid Environment (the contract of env --json).
        Environment.model_validate(env)
        return env


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


# ------------------------------------------------------------------------ system


def test_wsl2_is_recognised_from_the_kernel_release(machine: Machine) -> None:
    write_kernel_release(machine.root, "5.15.167.4-microsoft-standard-WSL2")
    assert machine.probe()["wsl"] is True


def test_a_plain_linux_kernel_is_not_wsl(machine: Machine) -> None:
    env = machine.probe()
    assert env["wsl"] is False and env["os"] == "linux" and env["python"] == "3.11.7"


def test_wsl_falls_back_to_proc_version_and_is_unknown_without_either(machine: Machine) -> None:
    (machine.root / "proc/sys/kernel/osrelease").unlink()
    write(
        machine.root / "proc/version",
        "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)\n",
    )
    assert machine.probe()["wsl"] is True
    (machine.root / "proc/version").unlink()
    env = machine.probe()
    assert "wsl" not in env  # unknown, not false
    assert "osrelease" in env["notes"]["wsl"]


def test_windows_amd64_is_spelled_x86_64(machine: Machine) -> None:
    env = machine.probe(system="windows", machine="AMD64")
    assert env["os"] == "windows" and env["arch"] == "x86_64" and env["wsl"] is False


def test_an_os_quantdoctor_does_not_know_is_left_unknown(machine: Machine) -> None:
    env = machine.probe(system="freebsd")
    assert "os" not in env and "freebsd" in env["notes"]["os"]


# ---------------------------------------------------------------------- packages


def test_versions_come_from_dist_info_egg_info_and_are_normalised(machine: Machine) -> None:
    write_dist(machine.site, "Optimum_Quanto", "0.2.7")
    write_dist(machine.site, "bitsandbytes", "0.50.2", kind="egg-info-dir")
    write_dist(machine.site, "gguf", "0.19.0", kind="egg-info-file")
    packages = machine.probe()["packages"]
    assert packages["optimum-quanto"] == "0.2.7"
    assert packages["bitsandbytes"] == "0.50.2"
    assert packages["gguf"] == "0.19.0"
    assert packages["torchao"] is None  # known absent


def test_the_first_site_dir_wins_as_import_would(machine: Machine, tmp_path: Path) -> None:
    user_site = tmp_path / "user-site"
    write_dist(user_site, "diffusers", "0.42.1")
    write_dist(machine.site, "diffusers", "0.30.0")
    env = machine.probe(site_dirs=[str(user_site), str(machine.site)])
    assert env["packages"]["diffusers"] == "0.42.1"


def test_a_broken_metadata_file_leaves_the_version_unknown_with_the_reason(
    machine: Machine,
) -> None:
    write_dist(machine.site, "torchao", None)  # no Version header
    folder = write_dist(machine.site, "nncf", "3.4.0")
    write(folder / "METADATA", "Metadata-Version: 2.1\nName: nncf\nVersion: not a version!\n")
    quanto = write_dist(machine.site, "optimum-quanto", "0.2.7")
    (quanto / "METADATA").unlink()
    env = machine.probe()
    for name in ("torchao", "nncf", "optimum-quanto"):
        assert name not in env["packages"], name  # unknown: neither a version nor null
        assert "installed, but" in env["notes"][f"packages.{name}"]
    assert "no Version header" in env["notes"]["packages.torchao"]
    assert "not a version" in env["notes"]["packages.nncf"]


def test_a_package_whose_import_crashes_is_still_reported_from_its_metadata(
    machine: Machine,
) -> None:
    write_dist(machine.site, "bitsandbytes", "0.45.0")
    write(machine.site / "bitsandbytes/__init__.py", "import os\nos._exit(134)\n")
    write_dist(machine.site, "torchao", "0.18.0")
    write(machine.site / "torchao/__init__.py", "while True:\n    pass\n")
    packages = machine.probe()["packages"]
    assert packages["bitsandbytes"] == "0.45.0" and packages["torchao"] == "0.18.0"


# ------------------------------------------------------------------------- torch


@pytest.mark.parametrize(
    ("version", "build", "expected"),
    [
        ("2.5.1+cu124", {"cuda": "12.4"}, {"cuda": "12.4", "hip": None, "xpu": False}),
        (
            "2.7.1+rocm6.3",
            {"hip": "6.3.42131-fa1d09cbd"},
            {"cuda": None, "hip": "6.3.42131", "xpu": False},
        ),
        ("2.8.0+xpu", {"xpu": "20250101"}, {"cuda": None, "hip": None, "xpu": True}),
        ("2.13.0+cpu", {}, {"cuda": None, "hip": None, "xpu": False}),
    ],
)
def test_torch_build_is_read_from_version_py_as_text(
    machine: Machine, version: str, build: dict[str, str], expected: dict[str, Any]
) -> None:
    write_torch(machine.site, version, **build)
    assert machine.probe()["torch"] == {"version": version, **expected}


def test_without_version_py_the_build_comes_from_the_wheel_tag(machine: Machine) -> None:
    write_torch(machine.site, "2.6.0+cu126", version_py=False)
    env = machine.probe()
    assert env["torch"] == {"version": "2.6.0+cu126", "cuda": "12.6", "hip": None, "xpu": False}
    assert "version tag" in env["notes"]["torch.build"]


def test_a_torch_without_version_py_or_tag_has_an_unknown_build(machine: Machine) -> None:
    write_torch(machine.site, "2.6.0", version_py=False)
    env = machine.probe()
    assert env["torch"] == {"version": "2.6.0"}
    assert "backend" not in env and "build" in env["notes"]["backend"]


def test_torch_version_keeps_the_local_tag_that_pypi_metadata_drops(machine: Machine) -> None:
    write_torch(machine.site, "2.11.0+cu130", cuda="13.0", dist_version="2.11.0")
    env = machine.probe()
    assert env["torch"]["version"] == "2.11.0+cu130"  # what torch.__version__ says
    assert "notes" not in env


def test_torch_metadata_and_version_py_of_two_releases_are_a_mixed_install(
    machine: Machine,
) -> None:
    write_torch(machine.site, "2.11.0+cu130", cuda="13.0", dist_version="2.5.1")
    env = machine.probe()
    assert env["torch"]["version"] == "2.11.0+cu130"
    assert "two installs are mixed" in env["notes"]["torch.version"]


def test_torch_with_broken_metadata_is_versioned_by_version_py(machine: Machine) -> None:
    write_torch(machine.site, "2.5.1+cu124", cuda="12.4")
    next(machine.site.glob("torch-*.dist-info")).joinpath("METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\n", encoding="utf-8"
    )
    env = machine.probe()
    assert env["torch"]["version"] == "2.5.1+cu124" and "notes" not in env


def test_no_torch_is_known_absent_and_so_is_the_backend(machine: Machine) -> None:
    env = machine.probe()
    assert env["torch"] is None and env["backend"] is None


def test_torch_in_a_source_tree_without_dist_info_is_read_from_version_py(
    machine: Machine,
) -> None:
    write_torch(machine.site, "2.10.0a0+git1234", cuda="12.8", dist=False)
    env = machine.probe()
    assert env["torch"]["version"] == "2.10.0a0+git1234" and env["torch"]["cuda"] == "12.8"


# ------------------------------------------------------------------------ NVIDIA


def test_without_nvidia_device_nodes_no_nvidia_tool_is_even_run(machine: Machine) -> None:
    # An nvidia-smi that would claim a GPU: it must not be asked, the driver is not loaded.
    print_tool(machine.bin, "nvidia-smi", H100_SMI)
    write_torch(machine.site, "2.5.1+cu124", cuda="12.4")
    env = machine.probe()
    assert env["gpus"] == [] and env["backend"] == "cpu"


def test_nvidia_smi_answers_when_nvml_does_not_load(machine: Machine) -> None:
    write_nvidia_device_nodes(machine.root)
    write(machine.root / "no-libnvidia-ml.so.1", "this is not an ELF file\n")
    print_tool(machine.bin, "nvidia-smi", H100_SMI)
    write_torch(machine.site, "2.11.0+cu130", cuda="13.0")
    env = machine.probe()
    assert env["backend"] == "cuda"
    assert env["gpus"] == [
        {
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "cuda_cc": "9.0",
            "gfx": None,
            "memory_gb": 79.65,
            "driver": "565.57.01",
        }
    ]


def test_an_nvml_without_its_functions_falls_back_to_nvidia_smi(machine: Machine) -> None:
    write_nvidia_device_nodes(machine.root)
    print_tool(machine.bin, "nvidia-smi", H100_SMI)
    # libc loads fine but has no nvmlInit_v2: a wrong or ancient library.
    env = machine.probe(nvml_libs=["libc.so.6"])
    assert env["gpus"][0]["cuda_cc"] == "9.0"


def test_an_nvidia_smi_that_never_returns_is_cut_off_and_the_gpus_are_unknown(
    machine: Machine,
) -> None:
    import time

    write_nvidia_device_nodes(machine.root)
    hanging_tool(machine.bin, "nvidia-smi")
    write_torch(machine.site, "2.5.1+cu124", cuda="12.4")
    start = time.perf_counter()
    env = machine.probe(timeout=0.3)
    assert time.perf_counter() - start < 5
    assert "gpus" not in env and "backend" not in env  # unknown, not "no GPU"
    assert "timed out after 0.3 s" in env["notes"]["gpus"]
    assert "NVML did not load" in env["notes"]["gpus"]


def test_a_failing_nvidia_smi_records_its_last_words(machine: Machine) -> None:
    write_nvidia_device_nodes(machine.root)
    print_tool(
        machine.bin,
        "nvidia-smi",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        status=9,
    )
    env = machine.probe()
    assert "gpus" not in env
    assert "exited with 9: NVIDIA-SMI has failed" in env["notes"]["gpus"]


def test_an_old_nvidia_smi_without_compute_cap_still_names_the_gpu(machine: Machine) -> None:
    write_nvidia_device_nodes(machine.root)
    # Drivers before 510 reject the compute_cap field (exit 2) but answer without it.
    write_tool(
        machine.bin,
        "nvidia-smi",
        'case "$*" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\';'
        " exit 2;; esac\n"
        "echo 'Tesla V100-SXM2-16GB, 16160, 470.82.01, GPU-aa'",
    )
    env = machine.probe()
    gpu = env["gpus"][0]
    assert gpu["name"] == "Tesla V100-SXM2-16GB" and gpu["memory_gb"] == 15.78
    assert "cuda_cc" not in gpu  # unknown: rules about it stay undecided


def test_cuda_visible_devices_reorders_and_filters_the_gpus(machine: Machine) -> None:
    write_nvidia_device_nodes(machine.root)
    print_tool(
        machine.bin,
        "nvidia-smi",
        "NVIDIA GeForce RTX 3090, 8.6, 24576, 560.35.03, GPU-aaaa\n"
        "NVIDIA GeForce RTX 4090, 8.9, 24564, 560.35.03, GPU-bbbb\n",
    )
    env = machine.probe(environ={**path_env(machine.bin), "CUDA_VISIBLE_DEVICES": "GPU-bb,0"})
    assert [g["cuda_cc"] for g in env["gpus"]] == ["8.9", "8.6"]
    env = machine.probe(environ={**path_env(machine.bin), "CUDA_VISIBLE_DEVICES": "1,7,0"})
    assert [g["cuda_cc"] for g in env["gpus"]] == ["8.9"]  # CUDA stops at the first bad id
    env = machine.probe(environ={**path_env(machine.bin), "CUDA_VISIBLE_DEVICES": ""})
    assert env["gpus"] == []


def test_cuda_visible_devices_keeps_two_identical_cards(machine: Machine) -> None:
    """Two H100s have equal entries; only their index or UUID tells them apart."""
    write_nvidia_device_nodes(machine.root)
    print_tool(
        machine.bin,
        "nvidia-smi",
        "NVIDIA H100 80GB HBM3, 9.0, 81559, 580.159.04, GPU-aaaa\n"
        "NVIDIA H100 80GB HBM3, 9.0, 81559, 580.159.04, GPU-bbbb\n",
    )
    for visible in ("0,1", "1,0", "GPU-bb,GPU-aa"):
        env = machine.probe(environ={**path_env(machine.bin), "CUDA_VISIBLE_DEVICES": visible})
        assert len(env["gpus"]) == 2, visible
    env = machine.probe(environ={**path_env(machine.bin), "CUDA_VISIBLE_DEVICES": "0,0,1"})
    assert len(env["gpus"]) == 1  # CUDA stops at a repeated id


def test_nvml_from_the_real_driver_agrees_with_nvidia_smi_when_both_exist(
    machine: Machine,
) -> None:
    import ctypes.util

    if ctypes.util.find_library("nvidia-ml") is None:
        pytest.skip("no NVIDIA driver on this machine")
    ctx = ProbeContext(timeout=5.0)
    from quantdoctor.doctor._probe_nvidia import probe_nvidia_smi, probe_nvml

    nvml, smi = probe_nvml(ctx), probe_nvidia_smi(ctx)
    assert nvml.gpus is not None and smi.gpus is not None
    assert [g.get("cuda_cc") for g in nvml.gpus] == [g.get("cuda_cc") for g in smi.gpus]


# --------------------------------------------------------------------------- AMD


def _rx7900_kfd(root: Path) -> None:
    write_kfd_node(root, 0, fixture_text("kfd-node-cpu.properties"))
    write_kfd_node(
        root,
        1,
        fixture_text("kfd-node-gfx1100.properties"),
        banks=[{"heap_type": 1, "size_in_bytes": 25753026560, "flags": 0, "width": 384}],
    )


def test_amd_gfx_target_and_memory_come_from_the_kfd_topology(machine: Machine) -> None:
    _rx7900_kfd(machine.root)
    write_drm_card(
        machine.root,
        0,
        vendor="0x1002",
        device="0x744c",
        vram=25753026560,
        product_name="Radeon RX 7900 XTX",
    )
    write(machine.root / "sys/module/amdgpu/version", "6.8.5\n")
    write_torch(machine.site, "2.7.1+rocm6.3", hip="6.3.42131-fa1d09cbd")
    env = machine.probe()
    assert env["backend"] == "rocm"
    assert env["gpus"] == [
        {
            "vendor": "amd",
            "cuda_cc": None,
            "gfx": "gfx1100",
            "name": "Radeon RX 7900 XTX",
            "memory_gb": 23.98,
            "driver": "6.8.5",
        }
    ]


@pytest.mark.parametrize(
    ("target", "gfx"),
    [(90010, "gfx90a"), (90402, "gfx942"), (110001, "gfx1101"), (100300, "gfx1030")],
)
def test_gfx_target_version_is_decoded_with_a_hex_stepping(
    machine: Machine, target: int, gfx: str
) -> None:
    props = fixture_text("kfd-node-gfx1100.properties").replace(
        "gfx_target_version 110000", f"gfx_target_version {target}"
    )
    write_kfd_node(machine.root, 1, props, banks=[{"heap_type": 1, "size_in_bytes": 1 << 34}])
    gpu = machine.probe()["gpus"][0]
    # No DRM node for render minor 128 here: memory from KFD's frame-buffer banks.
    assert gpu["gfx"] == gfx and gpu["memory_gb"] == 16.0


def test_hip_visible_devices_selects_the_amd_gpu(machine: Machine) -> None:
    _rx7900_kfd(machine.root)
    props = fixture_text("kfd-node-gfx1100.properties").replace("110000", "90402")
    write_kfd_node(machine.root, 2, props)
    env = machine.probe(environ={**path_env(machine.bin), "HIP_VISIBLE_DEVICES": "1"})
    assert [g["gfx"] for g in env["gpus"]] == ["gfx942"]


def test_rocminfo_names_the_gfx_target_when_kfd_is_not_readable(machine: Machine) -> None:
    write_drm_card(machine.root, 0, vendor="0x1002", device="0x744c", vram=25753026560)
    print_tool(machine.bin, "rocminfo", fixture_text("rocminfo-rx7900.txt"))
    gpus = machine.probe()["gpus"]
    assert gpus == [
        {"vendor": "amd", "name": "Radeon RX 7900 XTX", "cuda_cc": None, "gfx": "gfx1100"}
    ]


def test_amd_smi_names_the_gfx_target_where_rocminfo_is_missing(machine: Machine) -> None:
    write_drm_card(machine.root, 0, vendor="0x1002", device="0x74a1")
    print_tool(machine.bin, "amd-smi", fixture_text("amd-smi-static-mi300x.json"))
    assert machine.probe()["gpus"] == [
        {
            "vendor": "amd",
            "cuda_cc": None,
            "gfx": "gfx942",
            "name": "AMD Instinct MI300X",
            "memory_gb": 191.98,
        }
    ]


def test_amd_smi_of_rocm_6_0_prints_a_list_and_sizes_as_text(machine: Machine) -> None:
    import json

    write_drm_card(machine.root, 0, vendor="0x1002", device="0x744c")
    rows = json.loads(fixture_text("amd-smi-static-mi300x.json"))["gpu_data"]
    rows[0]["vram"]["size"] = "24560 MB"
    rows[0]["asic"]["market_name"] = "N/A"
    rows[0]["asic"]["target_graphics_version"] = "gfx1100"
    print_tool(machine.bin, "amd-smi", json.dumps(rows))
    (gpu,) = machine.probe()["gpus"]
    assert gpu["gfx"] == "gfx1100" and gpu["name"] == "AMD GPU gfx1100"
    assert gpu["memory_gb"] == 23.98


def test_an_amd_card_without_kfd_or_rocminfo_keeps_what_drm_knows(machine: Machine) -> None:
    write_drm_card(machine.root, 0, vendor="0x1002", device="0x73bf", vram=17163091968)
    env = machine.probe()
    (gpu,) = env["gpus"]
    assert gpu["vendor"] == "amd" and gpu["memory_gb"] == 15.98
    assert "gfx" not in gpu  # unknown until KFD or rocminfo says
    assert "neither rocminfo nor amd-smi is on PATH" in env["notes"]["gpus"]


def test_a_rocm_torch_without_an_amd_gpu_runs_on_the_cpu(machine: Machine) -> None:
    write_torch(machine.site, "2.7.1+rocm6.3", hip="6.3.42131-fa1d09cbd")
    assert machine.probe()["backend"] == "cpu"


def test_zluda_is_recognised_from_torch_libraries_patched_beside_torch(
    machine: Machine,
) -> None:
    _rx7900_kfd(machine.root)
    pkg = write_torch(machine.site, "2.7.1+cu118", cuda="11.8")
    write(pkg / "lib/nvrtc_cuda.dll", "")
    assert machine.probe()["backend"] == "zluda"


def test_zluda_is_recognised_from_its_folder_named_by_the_environment(
    machine: Machine, tmp_path: Path
) -> None:
    _rx7900_kfd(machine.root)
    write_torch(machine.site, "2.7.1+cu118", cuda="11.8")
    zluda = tmp_path / "zluda"
    write(zluda / "nvcuda.dll", "")
    env = machine.probe(environ={**path_env(machine.bin), "ZLUDA": str(zluda)})
    assert env["backend"] == "zluda"
    assert machine.probe()["backend"] == "cpu"  # the same torch, no ZLUDA: no GPU it can use


# ------------------------------------------------------------------ Intel, Apple


def test_an_intel_arc_is_found_in_drm_and_named_by_sycl_ls(machine: Machine) -> None:
    write_drm_card(machine.root, 0, vendor="0x8086", device="0x56a0", vram=17179869184)
    print_tool(machine.bin, "sycl-ls", fixture_text("sycl-ls-arc.txt"))
    write_torch(machine.site, "2.8.0+xpu", xpu="20250101")
    env = machine.probe()
    assert env["backend"] == "xpu"
    assert env["gpus"] == [
        {
            "vendor": "intel",
            "cuda_cc": None,
            "gfx": None,
            "name": "Intel(R) Arc(TM) A770 Graphics",
            "memory_gb": 16.0,
        }
    ]


def test_a_sycl_ls_that_crashes_leaves_the_drm_name(machine: Machine) -> None:
    write_drm_card(machine.root, 0, vendor="0x8086", device="0xe20b")
    write_tool(machine.bin, "sycl-ls", "kill -SEGV $$")
    (gpu,) = machine.probe()["gpus"]
    assert gpu["vendor"] == "intel" and gpu["name"] == "Intel GPU [8086:e20b]"


def test_a_non_display_pci_function_is_not_a_gpu(machine: Machine) -> None:
    write_drm_card(machine.root, 0, vendor="0x8086", device="0x0b25", klass="0x120000")
    assert machine.probe()["gpus"] == []


def test_apple_silicon_runs_on_mps(machine: Machine) -> None:
    write_torch(machine.site, "2.9.0", version_py=True)
    env = machine.probe(system="darwin", machine="arm64")
    assert env["backend"] == "mps" and env["os"] == "darwin"
    assert [g["vendor"] for g in env["gpus"]] == ["apple"]


# ----------------------------------------------------------------- other backends


def test_torch_directml_makes_a_windows_cpu_torch_directml(machine: Machine) -> None:
    write_torch(machine.site, "2.4.1", version_py=True)
    write_dist(machine.site, "torch-directml", "0.2.5.dev240914")
    wmi = (
        '[{"Name":"AMD Radeon RX 6600","PNPDeviceID":"PCI\\\\VEN_1002&DEV_73FF&SUBSYS_1",'
        '"AdapterRAM":4293918720,"DriverVersion":"31.0.24027.1012"},'
        '{"Name":"Microsoft Basic Display Adapter","PNPDeviceID":"ROOT\\\\BasicDisplay\\\\0000",'
        '"AdapterRAM":0,"DriverVersion":"10.0"}]'
    )
    print_tool(machine.bin, "powershell", wmi)
    env = machine.probe(system="windows", machine="AMD64")
    assert env["backend"] == "directml"
    (gpu,) = env["gpus"]
    assert gpu["name"] == "AMD Radeon RX 6600" and gpu["vendor"] == "amd"
    assert "memory_gb" not in gpu  # WMI's AdapterRAM caps at 4 GiB: unknown, not 4


def test_openvino_without_a_gpu_torch_is_the_openvino_backend(machine: Machine) -> None:
    write_torch(machine.site, "2.13.0+cpu")
    write_dist(machine.site, "openvino", "2025.3.0")
    assert machine.probe()["backend"] == "openvino"


# ------------------------------------------------------------------------ Triton


def test_triton_version_comes_from_whichever_distribution_provides_it(
    machine: Machine,
) -> None:
    assert machine.probe()["triton"] is None
    write_dist(machine.site, "triton-windows", "3.3.1.post19")
    assert machine.probe()["triton"] == {"version": "3.3.1.post19"}


def test_triton_with_broken_metadata_is_unknown(machine: Machine) -> None:
    write_dist(machine.site, "triton", None)
    env = machine.probe()
    assert "triton" not in env and "no Version header" in env["notes"]["triton"]


def test_probe_returns_a_validated_environment(machine: Machine) -> None:
    from quantdoctor.doctor.probe import probe

    write_torch(machine.site, "2.13.0+cpu")
    env = probe(root=str(machine.root), site_dirs=[str(machine.site)], environ={"PATH": ""})
    assert isinstance(env, Environment)
    assert env.backend == "cpu" and env.torch is not None and env.torch.version == "2.13.0+cpu"


def _gpu_machine_with_triton(machine: Machine) -> None:
    write_nvidia_device_nodes(machine.root)
    print_tool(machine.bin, "nvidia-smi", H100_SMI)
    write_torch(machine.site, "2.11.0+cu130", cuda="13.0")
    write_dist(machine.site, "triton", "3.6.0")


def test_deep_reports_triton_works_when_the_kernel_prints_its_sum(machine: Machine) -> None:
    _gpu_machine_with_triton(machine)
    python = python_tool(machine.bin, "python", "print('QUANTDOCTOR-TRITON-OK')\n")
    env = probe_dict(machine.context(python_exe=str(python)), deep=True, deep_timeout=20)
    assert env["triton"] == {"version": "3.6.0", "works": True}


def test_deep_reports_the_last_words_of_a_kernel_that_fails(machine: Machine) -> None:
    _gpu_machine_with_triton(machine)
    code = "import sys\nsys.exit('RuntimeError: PassManager::run failed')\n"
    python = python_tool(machine.bin, "python", code)
    env = probe_dict(machine.context(python_exe=str(python)), deep=True, deep_timeout=20)
    assert env["triton"]["works"] is False
    assert "PassManager::run failed" in env["notes"]["triton.works"]


def test_deep_cuts_off_a_kernel_that_hangs_and_everything_it_spawned(
    machine: Machine,
) -> None:
    import time

    _gpu_machine_with_triton(machine)
    # The stand-in spawns a child that keeps stdout open, as a hung ptxas would.
    python = write_tool(machine.bin, "python", f"{shutil.which('sleep')} 600 &\nwait")
    start = time.perf_counter()
    env = probe_dict(machine.context(python_exe=str(python)), deep=True, deep_timeout=0.5)
    assert time.perf_counter() - start < 10
    assert env["triton"] == {"version": "3.6.0"}  # works: unknown, not false
    assert "did not finish in 0.5 s" in env["notes"]["triton.works"]


def test_deep_on_the_cpu_backend_says_triton_has_no_gpu_to_run_on(machine: Machine) -> None:
    write_torch(machine.site, "2.13.0+cpu")
    write_dist(machine.site, "triton", "3.6.0")
    env = probe_dict(machine.context(), deep=True)
    assert env["triton"]["works"] is False and "cpu" in env["notes"]["triton.works"]


# -------------------------------------------------- NVML through its C interface


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Shared libraries with NVML's C ABI, built from fixtures_probe/fake_nvml.c."""
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the NVML test library")
    source = Path(__file__).parent / "fixtures_probe" / "fake_nvml.c"
    out = tmp_path_factory.mktemp("nvml")
    libs = {}
    for variant, flags in (("ok", []), ("init-fails", ["-DINIT_FAILS"]), ("v1", ["-DNO_V2"])):
        lib = out / f"libnvidia-ml-{variant}.so.1"
        subprocess.run(
            [cc, "-shared", "-fPIC", "-O1", *flags, "-o", str(lib), str(source)], check=True
        )
        libs[variant] = str(lib)
    return libs


def test_nvml_gives_name_cc_driver_and_the_memory_cuda_can_use(
    machine: Machine, fake_nvml: dict[str, str]
) -> None:
    write_nvidia_device_nodes(machine.root)
    print_tool(machine.bin, "nvidia-smi", "must not be asked\n", status=1)
    write_torch(machine.site, "2.11.0+cu130", cuda="13.0")
    env = machine.probe(nvml_libs=[fake_nvml["ok"]])
    assert env["backend"] == "cuda"
    assert env["gpus"] == [
        {
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "cuda_cc": "9.0",
            "gfx": None,
            "memory_gb": 79.18,  # total less reserved: torch.cuda.mem_get_info's total
            "driver": "580.159.04",
        },
        {
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 4090",
            "cuda_cc": "8.9",
            "gfx": None,
            "memory_gb": 23.67,
            "driver": "580.159.04",
        },
    ]


def test_an_nvml_without_the_v2_memory_query_reports_the_whole_memory(
    machine: Machine, fake_nvml: dict[str, str]
) -> None:
    write_nvidia_device_nodes(machine.root)
    env = machine.probe(nvml_libs=[fake_nvml["v1"]])
    assert [g["memory_gb"] for g in env["gpus"]] == [79.65, 23.99]


def test_cuda_visible_devices_by_uuid_reorders_nvml_gpus(
    machine: Machine, fake_nvml: dict[str, str]
) -> None:
    write_nvidia_device_nodes(machine.root)
    visible = {**path_env(machine.bin), "CUDA_VISIBLE_DEVICES": "GPU-7d1e"}
    env = machine.probe(nvml_libs=[fake_nvml["ok"]], environ=visible)
    assert [g["cuda_cc"] for g in env["gpus"]] == ["8.9"]


def test_an_nvml_whose_driver_is_not_loaded_leaves_the_gpus_unknown_with_why(
    machine: Machine, fake_nvml: dict[str, str]
) -> None:
    write_nvidia_device_nodes(machine.root)
    write_torch(machine.site, "2.11.0+cu130", cuda="13.0")
    env = machine.probe(nvml_libs=[fake_nvml["init-fails"]])
    assert "gpus" not in env and "backend" not in env
    assert "nvmlInit failed: Driver Not Loaded (NVML error 9)" in env["notes"]["gpus"]


def test_the_first_nvml_that_loads_is_used(machine: Machine, fake_nvml: dict[str, str]) -> None:
    write_nvidia_device_nodes(machine.root)
    missing = str(machine.root / "libnvidia-ml.so.1")
    env = machine.probe(nvml_libs=[missing, fake_nvml["ok"]])
    assert len(env["gpus"]) == 2


def test_the_probe_searches_sys_path_but_the_standard_librarys_own_folders() -> None:
    import os
    import sys
    import sysconfig

    dirs = ProbeContext().site_dirs
    stdlib = os.path.dirname(os.__file__)
    own = (stdlib, os.path.join(stdlib, "lib-dynload"))
    assert not set(own) & set(dirs)
    on_path = [p or os.getcwd() for p in sys.path]
    assert list(dirs) == [p for p in on_path if os.path.isdir(p) and p not in own]
    purelib = sysconfig.get_paths()["purelib"]
    assert purelib not in on_path or purelib in dirs

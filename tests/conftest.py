from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Keep the user's own overlays out of the suite.
os.environ["QUANTDOCTOR_CONFIG_DIR"] = str(Path(__file__).parent / "_no_user_config")
os.environ.pop("QUANTDOCTOR_MATRIX", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any("gpu" in item.keywords for item in items):
        return  # importing torch costs seconds: only when a GPU test was collected
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

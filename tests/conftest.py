import os
import sys
from pathlib import Path

import pytest

# nnU-Net's console scripts and `python3` in subprocesses are those installed beside the Python running the
# tests, also when a virtual environment's python is called without activating it (.venv/bin/python -m pytest)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.fixture
def nnunet_dirs(tmp_path, monkeypatch):
    """Empty nnU-Net folders in the environment (nnU-Net reads them lazily)."""
    dirs = {k: tmp_path / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for k, d in dirs.items():
        d.mkdir()
        monkeypatch.setenv(k, str(d))
    return dirs

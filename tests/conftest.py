import json
import os
import sys
from pathlib import Path

import pytest

# nnU-Net's console scripts and `python3` in subprocesses are those installed beside the Python running the
# tests, also when a virtual environment's python is called without activating it (.venv/bin/python -m pytest)
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
# under pytest-xdist (the README's command runs 2 workers) the cores are shared out: torch's OpenMP threads of
# two workers and their subprocesses on the same cores would spin against each other (threads are read at import)
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))

# the slowest modules, slowest first (--durations, 2026-12-07): pytest-xdist hands out whole modules
# (--dist loadfile, in collection order: --no-loadscope-reorder), so that a module's fixture (a trained model,
# the tiny benchmark) is built once; starting with the longest keeps both workers busy to the end
SLOWEST_FIRST = ("training/test_e2e_networks.py", "benchmark/test_benchmark.py", "training/test_e2e.py",
                 "training/test_e2e_labels.py", "volume/test_predict_volume.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0].removeprefix("tests/")
        if path in SLOWEST_FIRST:
            return SLOWEST_FIRST.index(path)
        return len(SLOWEST_FIRST) + (0 if item.get_closest_marker("e2e") else 1)

    items.sort(key=rank)  # stable: a module's tests keep their order


@pytest.fixture
def nnunet_dirs(tmp_path, monkeypatch):
    """Empty nnU-Net folders in the environment (nnU-Net reads them lazily)."""
    dirs = {k: tmp_path / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for k, d in dirs.items():
        d.mkdir()
        monkeypatch.setenv(k, str(d))
    return dirs


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory):
    """One ``reisoseg benchmark --preset tiny`` of every method (and the equal-time arm) for the whole session:
    (root with raw/ and pre/, its output folder, results.json). The slowest fixture of the suite, shared by the
    benchmark's tests and the dry run of perf/gpu_run.sh, which continues it; all of them are in
    tests/benchmark/test_benchmark.py, which pytest-xdist runs on one worker (--dist loadfile)."""
    from nnunetv2_reisoseg.cli import main

    root = tmp_path_factory.mktemp("bench")
    env = {"nnUNet_raw": root / "raw", "nnUNet_preprocessed": root / "pre", "nnUNet_def_n_proc": "1",
           "nnUNet_n_proc_DA": "0", "nnUNet_compile": "f"}
    old = {k: os.environ.get(k) for k in [*env, "nnUNet_results", "nnUNet_extTrainer"]}
    os.environ.update({k: str(v) for k, v in env.items()})
    for k in ("nnUNet_results", "nnUNet_extTrainer"):  # the benchmark must not need either
        os.environ.pop(k, None)
    out = root / "out"
    try:
        assert main(["benchmark", "--preset", "tiny", "-o", str(out), "--device", "cpu", "--equal-time",
                     "--methods", "stock", "reiso", "aux", "stock_half", "paper"]) == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return root, out, json.loads((out / "results.json").read_text())

"""The measurement scripts in perf/ run (tiny settings on the CPU), so that they work the first time a session
has the hardware they are written for."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_paper_inference_script():
    p = subprocess.run([sys.executable, ROOT / "perf" / "paper_inference.py", "--shape", "8", "32", "32",
                        "--iters", "1"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "anisotropic branch only" in p.stdout and "both branches" in p.stdout


@pytest.mark.e2e
def test_evaluate_large_script_with_workers(tmp_path):
    """perf/evaluate_large.py at a tiny size: generated in 2 processes, evaluated on 2 dask workers, with both
    memory figures; its scratch and the pair are gone afterwards."""
    p = subprocess.run([sys.executable, ROOT / "perf" / "evaluate_large.py", "--shape", "12", "64", "64", "--block",
                        "6", "32", "32", "--workers", "2", "--dir", str(tmp_path)], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "2 dask workers" in p.stdout and "generate: block 8/8" in p.stdout
    tree = float(p.stdout.split("processes together ")[1].split(" GiB")[0])
    largest = float(p.stdout.split("largest process ")[1].split(" GiB")[0])
    assert tree >= largest > 0
    assert "class 1: dice" in p.stdout and "class 2: dice" in p.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_predict_scratch_script_measures_a_bounded_peak(tmp_path):
    """perf/predict_scratch.py at a small size: the stand-in network, many blocks, a peak below what keeping every
    block's pieces would take, and no run state left."""
    p = subprocess.run([sys.executable, ROOT / "perf" / "predict_scratch.py", "--shape", "32", "160", "160", "--block",
                        "8", "48", "48", "--dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    line = next(x for x in p.stdout.splitlines() if "peak scratch" in x)
    share = float(line.split("(")[1].split("%")[0])
    assert 0 < share < 100 and line.endswith("run state left after the run: none")


def test_instances_cost_script(tmp_path):
    """perf/instances_cost.py at a tiny size: both passes timed, the watershed splitting the pairs components merge."""
    p = subprocess.run([sys.executable, ROOT / "perf" / "instances_cost.py", "--shape", "16", "256", "256", "--block",
                        "16", "128", "128", "--dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    objects = {k: int(p.stdout.split(f"{k}:")[1].split(" objects")[0].split(",")[-1]) for k in ("components",
                                                                                                 "watershed")}
    assert objects["watershed"] > objects["components"] > 0 and "watershed / components:" in p.stdout
    assert list(tmp_path.iterdir()) == []

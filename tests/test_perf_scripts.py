"""The measurement scripts in perf/ run (tiny settings on the CPU), so that they work the first time a session
has the hardware they are written for."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_gpu_run_dry_mode_runs_every_step_and_reports(tmp_path, tiny_benchmark):
    """perf/gpu_run.sh --dry: the CUDA checks, train_step with and without compile and the stock-vs-ReIsoSeg
    comparison, with tiny settings on the CPU, into one folder with a report. The comparison continues the
    session's tiny benchmark (its dataset, plans and records, as a GPU run continues pairs trained before), so the
    trainings that tests/benchmark checks are not trained twice."""
    out = tmp_path / "gpu_run"
    root, bench_out, _ = tiny_benchmark
    for name in ("raw", "pre"):
        shutil.copytree(root / name, out / "nnunet" / name)
    shutil.copytree(bench_out / "records", out / "benchmark" / "records")
    p = subprocess.run(["bash", ROOT / "perf" / "gpu_run.sh", out, "--dry", "--budget-s", "900"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (out / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in report.splitlines()
            if line.startswith("| ") and line.count("|") == 5}
    for step in ("gpu_checks", "train_step", "compare_1"):
        assert rows[step] == "ok", rows
        assert (out / f"{step}.log").is_file()
    # on the CPU nnU-Net does not compile, so the dry run does not repeat train_step under another name
    assert rows["train_step_compile"].startswith("skipped (dry run") and not (out / "train_step_compile.log").exists()
    rows = [json.loads(line) for line in (out / "gpu_checks.log").read_text().splitlines() if line.startswith("{")]
    assert [r["trainer"] for r in rows] == ["nnUNetTrainerReIso", "nnUNetTrainerReIsoSegNet"]
    assert all(r["ok"] and r["non_finite_losses"] == 0 and not r["compiled"] for r in rows)
    ratios = json.loads((out / "train_step.json").read_text())["ratios"]
    assert set(ratios) == {"train_step", "train_peak_memory", "inference"} and all(v > 0 for v in ratios.values())
    assert "## Speed and memory, no compile" in report and "## CUDA checks" in report
    assert "cannot tell" in report  # one training pair in the dry run: no verdict
    assert (out / "benchmark" / "results.json").is_file()
    assert "using its record" in (out / "compare_1.log").read_text()  # the session's trainings, continued


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

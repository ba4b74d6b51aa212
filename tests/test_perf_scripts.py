"""The measurement scripts in perf/ run (tiny settings on the CPU), so they do not rot between
the sessions that have the hardware they are written for."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_checks_runs_on_the_cpu_paths():
    p = subprocess.run([sys.executable, ROOT / "perf" / "gpu_checks.py", "--device", "cpu", "--steps", "2",
                        "--plans", ROOT / "tests" / "fixtures" / "plans" / "tiny_40x10x10.json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert [r["trainer"] for r in rows] == ["nnUNetTrainerReIso", "nnUNetTrainerReIsoSegNet"]
    assert all(r["ok"] and r["non_finite_losses"] == 0 and not r["compiled"] for r in rows)


def test_paper_inference_script():
    p = subprocess.run([sys.executable, ROOT / "perf" / "paper_inference.py", "--shape", "8", "32", "32",
                        "--iters", "1"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "anisotropic branch only" in p.stdout and "both branches" in p.stdout

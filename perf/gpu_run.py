"""Everything this project measures on a GPU, in one run of at most ``--budget-s`` seconds (default 540, for
a 10-minute slot on one H100), into one folder with a report.

Steps, in order of priority; each gets a share of the time left and a step that fails or runs out of time
is reported as such while the others go on:
  1. environment: GPU, driver, torch, CUDA, cuDNN;
  2. ``perf/gpu_checks.py``: 300-step (``--check-steps``) fp16 autocast + grad scaler + torch.compile runs of
     nnUNetTrainerReIso and nnUNetTrainerReIsoSegNet through nnU-Net's ``train_step``;
  3. ``perf/train_step.py`` without and with torch.compile: step time, peak GPU memory and inference of
     nnUNetTrainerReIso against stock nnUNetTrainer, side by side;
  4. ``reisoseg benchmark --preset gpu``: stock against ReIsoSeg, one (seed 0, fold) pair after the other
     while time is left, each added pair re-reporting with all pairs so far (a verdict needs 3).

    python perf/gpu_run.py OUT              # on the GPU machine (perf/gpu_run.sh unpacks the wheels first)
    python perf/gpu_run.py OUT --dry        # every step with tiny settings on the CPU (the test suite runs this)

``OUT/report.md`` summarises; every step's full output is in ``OUT/<step>.log``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_PLANS = ROOT / "tests" / "fixtures" / "plans" / "tiny_40x10x10.json"


class Step:
    def __init__(self, name: str, title: str, cmd: list[str], share: float, env: dict | None = None,
                 outputs: tuple[str, ...] = ()) -> None:
        self.name, self.title, self.cmd, self.share, self.env, self.outputs = name, title, cmd, share, env, outputs
        self.status, self.seconds, self.tail = "not run", 0.0, ""


def run_step(step: Step, out: Path, deadline: float, weight_left: float) -> None:
    """Run one step with a timeout of its share of the time left; record status, time and output tail."""
    left = deadline - time.monotonic()
    timeout = max(5.0, left * step.share / max(weight_left, step.share))
    if left < 10:
        step.status = "skipped (no time left)"
        return
    log = out / f"{step.name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(step.env or {})}
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write(f"$ {' '.join(step.cmd)}\n")
        f.flush()
        # its own process group, so that a step stopped at its limit takes nnUNetv2_train and the data
        # augmentation workers with it
        proc = subprocess.Popen(step.cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            step.status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            step.status = f"stopped at its time limit ({timeout:.0f} s)"
    step.seconds = time.monotonic() - t0
    step.tail = "".join(log.read_text().splitlines(True)[-40:])
    print(f"[gpu_run] {step.name}: {step.status} in {step.seconds:.0f} s", flush=True)


def environment(out: Path, device: str) -> str:
    import platform

    import torch

    lines = [f"- Python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"cuDNN {torch.backends.cudnn.version()}"]
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        lines.append(f"- GPU: {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
            lines.append(f"- nvidia-smi: {smi.strip()}")
        except (OSError, subprocess.TimeoutExpired):
            pass
    else:
        lines.append(f"- no GPU used ({'dry run on the CPU' if device == 'cpu' else 'CUDA not available'}); "
                     f"{os.cpu_count()} CPU cores")
    text = "\n".join(lines)
    (out / "environment.md").write_text(text + "\n")
    return text


def steps_for(out: Path, dry: bool, check_steps: int) -> list[Step]:
    py = sys.executable
    dev = "cpu" if dry else "cuda"
    plans = ["--plans", str(TINY_PLANS)] if dry else []
    bench_env = {"nnUNet_raw": str(out / "nnunet" / "raw"), "nnUNet_preprocessed": str(out / "nnunet" / "pre"),
                 "nnUNet_compile": "f"}  # the comparison measures methods; compile is measured in step 3
    if dry:
        bench_env.update(nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1")
    steps = [
        Step("gpu_checks", "fp16 autocast + grad scaler + torch.compile through nnU-Net's train_step",
             [py, "perf/gpu_checks.py", "--device", dev, "--steps", str(2 if dry else check_steps), *plans],
             0.3),
        Step("train_step", "speed and memory against stock nnU-Net, no compile",
             [py, "perf/train_step.py", "--device", dev, "--iters", "1" if dry else "10", *plans,
              "--json", str(out / "train_step.json")], 0.15, {"nnUNet_compile": "f"}),
        Step("train_step_compile", "speed and memory against stock nnU-Net, torch.compile",
             [py, "perf/train_step.py", "--device", dev, "--iters", "1" if dry else "10", *plans,
              "--json", str(out / "train_step_compile.json")], 0.25, {"nnUNet_compile": "t"}),
    ]
    if dry:  # nnU-Net compiles on CUDA only: on the CPU this step would repeat train_step
        steps[-1].status = "skipped (dry run: nnU-Net compiles on CUDA only, so on the CPU it is train_step again)"
    for n in range(1, 2 if dry else 4):  # one more (seed 0, fold) pair per step while time is left
        steps.append(Step(f"compare_{n}", f"stock vs ReIsoSeg, {n} training pair{'s' if n > 1 else ''}",
                          [py, "-m", "nnunetv2_reisoseg", "benchmark", "--preset", "tiny" if dry else "gpu",
                           "--methods", "stock", "reiso", "--folds", *map(str, range(n)), "--device", dev,
                           "-o", str(out / "benchmark")], 0.3 / n, bench_env))
    return steps


def write_report(out: Path, env_text: str, steps: list[Step], started: str, budget: float, dry: bool) -> Path:
    lines = [f"# GPU run ({'dry run on the CPU' if dry else 'CUDA'}), {started}", "",
             f"`python perf/gpu_run.py {out}{' --dry' if dry else ''}` with a budget of {budget:.0f} s.", "",
             env_text, "", "| step | what | status | seconds |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.title} | {s.status} | {s.seconds:.0f} |" for s in steps]
    lines.append("")
    for name, title in (("train_step", "Speed and memory, no compile"),
                        ("train_step_compile", "Speed and memory, torch.compile")):
        step = next(s for s in steps if s.name == name)
        table = [line for line in step.tail.splitlines() if line.startswith("|") or line.startswith("Machine")
                 or line.startswith("Plan")]
        if table:
            lines += [f"## {title}", "", *table, ""]
    checks = next(s for s in steps if s.name == "gpu_checks")
    rows = [json.loads(line) for line in checks.tail.splitlines() if line.startswith("{")]
    if rows:
        lines += ["## CUDA checks (perf/gpu_checks.py)", "", "| trainer | compiled | amp | steps | seconds | "
                  "non-finite losses | grad scaler scale | graphs after warm-up / at end | recompiles | ok |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['trainer']} | {r['compiled']} | {r['amp']} | {r['steps']} | {r['seconds']} | "
                  f"{r['non_finite_losses']} | {r['grad_scaler_scale']} | {r['graphs_after_warmup']} / "
                  f"{r['graphs_at_end']} | {r['recompiles']} | {r['ok']} |" for r in rows]
        lines.append("")
    report = out / "benchmark" / "report.md"
    if report.is_file():
        text = report.read_text()
        verdicts = text.split("## Verdicts", 1)[-1].split("\n## ", 1)[0] if "## Verdicts" in text else ""
        lines += ["## Stock nnU-Net against ReIsoSeg (reisoseg benchmark)", "",
                  "Full report: [benchmark/report.md](benchmark/report.md).", verdicts.strip(), ""]
    failed = [s for s in steps if s.status not in ("ok",) and not s.status.startswith("skipped")]
    for s in failed:
        lines += [f"## {s.name}: {s.status}", "", "```", s.tail.rstrip(), "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder for everything the run writes")
    ap.add_argument("--dry", action="store_true", help="tiny settings on the CPU (what the test suite runs)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget for all steps")
    ap.add_argument("--check-steps", type=int, default=300, help="training steps per trainer in gpu_checks")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + a.budget_s
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    import torch

    if not a.dry and not torch.cuda.is_available():
        print("CUDA is not available: run with --dry for the CPU plumbing, or on a GPU machine", file=sys.stderr)
        return 2
    env_text = environment(out, "cpu" if a.dry else "cuda")
    print(env_text, flush=True)
    steps = steps_for(out, a.dry, a.check_steps)
    for i, step in enumerate(steps):
        if step.status.startswith("skipped"):
            continue
        if step.name.startswith("compare_") and i > 0 and steps[i - 1].name.startswith("compare_") \
                and steps[i - 1].status != "ok":
            step.status = "skipped (the previous pair did not finish)"
            continue
        run_step(step, out, deadline, sum(s.share for s in steps[i:]))
    report = write_report(out, env_text, steps, started, a.budget_s, a.dry)
    print(f"[gpu_run] wrote {report}", flush=True)
    essential = [s for s in steps if s.name in ("gpu_checks", "train_step")]
    return 0 if all(s.status == "ok" for s in essential) else 1


if __name__ == "__main__":
    sys.exit(main())

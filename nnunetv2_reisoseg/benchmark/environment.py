"""What the benchmark's subprocesses run in: nnU-Net's folders from the environment, its worker counts sized to
this machine, the trainer folders on ``nnUNet_extTrainer``, nnU-Net's console scripts, and the logged run of one."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nnunetv2_reisoseg import trainer_path
from nnunetv2_reisoseg.errors import ReisosegError
from nnunetv2_reisoseg.progress import say


class BenchmarkError(ReisosegError, RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


# the benchmark's own fixed-budget trainers: only the trainings this package starts look here, so users'
# nnUNet_extTrainer (reisoseg trainer-path) never imports the benchmark
TRAINER_DIR = Path(__file__).resolve().parent / "trainers"


def ext_trainer_path(existing: str | None) -> str:
    """``nnUNet_extTrainer`` for the benchmark's trainings: its trainer folder first, then the user's."""
    return trainer_path((TRAINER_DIR,), existing)


def nnunet_command(name: str) -> list[str]:
    """nnU-Net's console script ``name``; where it is not on PATH (its wheel unpacked onto PYTHONPATH, as on
    a bare GPU machine), its entry point run by this Python."""
    path = shutil.which(name)
    if path:
        return [path]
    from importlib.metadata import entry_points

    ep = next((e for e in entry_points(group="console_scripts") if e.name == name), None)
    if ep is None:
        raise BenchmarkError(f"{name} is neither on PATH nor a console script of an installed package: install "
                             "nnunetv2 (pip install nnunetv2)")
    return [sys.executable, "-c", f"import sys; from {ep.module} import {ep.attr} as main; sys.argv[0] = {name!r}; "
            "sys.exit(main())"]


def log(msg: str) -> None:
    say(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}")


def env_paths() -> tuple[Path, Path]:
    """nnU-Net's raw and preprocessed folders, which the benchmark reads and writes like nnU-Net."""
    missing = [k for k in ("nnUNet_raw", "nnUNet_preprocessed") if not os.environ.get(k)]
    if missing:
        raise BenchmarkError(f"{' and '.join(missing)} not set: export nnUNet_raw and nnUNet_preprocessed "
                             "(see nnU-Net's setting_up_paths.md); results go to -o OUT, not nnUNet_results.")
    return Path(os.environ["nnUNet_raw"]), Path(os.environ["nnUNet_preprocessed"])


def worker_env() -> dict[str, str]:
    """nnU-Net's worker counts, sized to this machine where the user has not set them: its defaults
    (12 augmentation workers per GPU, 8 for preprocessing and export) swamp a small CPU."""
    cores = os.cpu_count() or 2
    out = {}
    if "nnUNet_n_proc_DA" not in os.environ:
        out["nnUNet_n_proc_DA"] = str(max(1, min(12, cores - 1)))
    if "nnUNet_def_n_proc" not in os.environ:
        out["nnUNet_def_n_proc"] = str(max(1, min(8, cores)))
    return out


def run_logged(cmd: Sequence[str], env: dict, logfile: Path, tag: str, show: re.Pattern | None) -> None:
    """Run ``cmd``, its output appended to ``logfile`` and the lines matching ``show`` said with ``tag``; a failure
    is a ``BenchmarkError`` with the log's tail."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            if show is not None and show.search(line):
                say(f"  [{tag}] {line.strip()}")
        rc = proc.wait()
    if rc != 0:
        tail = "".join(logfile.read_text().splitlines(True)[-25:])
        raise BenchmarkError(f"{tag} failed (exit {rc}); full log: {logfile}\n{tail}")

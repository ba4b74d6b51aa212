"""One training of the benchmark: ``nnUNetv2_train`` with a method's fixed-budget trainer in a subprocess, continued
from its last checkpoint after a cut, and its learning curves read back from the checkpoint."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_reisoseg import EXT_TRAINER
from nnunetv2_reisoseg.benchmark.environment import (
    BenchmarkError,
    ext_trainer_path,
    log,
    nnunet_command,
    run_logged,
    worker_env,
)
from nnunetv2_reisoseg.benchmark.methods import Method
from nnunetv2_reisoseg.benchmark.presets import CONFIGURATION, Budget
from nnunetv2_reisoseg.training.budget import EPOCHS_ENV, SEED_ENV, TIMING_FILE


@dataclass
class Run:
    """One (method, seed, fold) training at a budget, in nnU-Net's fold folder."""

    method: Method
    seed: int
    fold: int
    budget: Budget
    folder: Path  # nnU-Net's fold folder

    @classmethod
    def under(cls, out: Path, dataset_name: str, method: Method, pair: tuple[int, int], budget: Budget) -> Run:
        """The run of ``method`` on ``pair`` (seed, fold) in the benchmark folder ``out``."""
        seed, fold = pair
        folder = (out / "results" / f"seed{seed}" / dataset_name /
                  f"{method.trainer_name(budget)}__{budget.plans_name}__{CONFIGURATION}" / f"fold_{fold}")
        return cls(method, seed, fold, budget, folder)

    @property
    def tag(self) -> str:
        return f"{self.method.name} seed {self.seed} fold {self.fold}"

    @property
    def finished(self) -> bool:
        return all((self.folder / f).is_file() for f in ("checkpoint_final.pth", "validation/summary.json",
                                                         TIMING_FILE))


_PROGRESS = re.compile(r"Epoch \d+$|train_loss|Pseudo dice|Epoch time|Mean Validation Dice|Traceback|Error")


def train(run: Run, dataset_id: int, device: str, out: Path, extra_env: dict | None = None) -> None:
    """``nnUNetv2_train`` of ``run`` (``--c`` where a checkpoint exists), logged under ``out/logs``."""
    if run.finished:
        log(f"{run.tag}: reusing the finished training in {run.folder}")
        return
    env = {**os.environ, **worker_env()}
    env.update({"nnUNet_results": str(out / "results" / f"seed{run.seed}"), SEED_ENV: str(run.seed),
                EXT_TRAINER: ext_trainer_path(env.get(EXT_TRAINER)), **(extra_env or {})})
    cmd = [*nnunet_command("nnUNetv2_train"), str(dataset_id), CONFIGURATION, str(run.fold), "-tr",
           run.method.trainer_name(run.budget), "-p", run.budget.plans_name, "-device", device]
    if (run.folder / "checkpoint_latest.pth").is_file() or (run.folder / "checkpoint_final.pth").is_file():
        cmd.append("--c")  # an interrupted run continues from its last checkpoint
    log(f"{run.tag}: {' '.join(cmd)}")
    run_logged(cmd, env, out / "logs" / f"train_{run.method.name}_seed{run.seed}_fold{run.fold}.log", run.tag,
               _PROGRESS)
    if not run.finished:
        raise BenchmarkError(f"{run.tag}: nnUNetv2_train ended without checkpoint_final.pth, validation and "
                             f"timing in {run.folder}")


def equal_time_env(run: Run, walls: dict[str, float]) -> dict[str, str] | None:
    """The epochs of the equal-time arm: the stock budget scaled by ReIsoSeg's wall time in the same pair."""
    if not run.method.equal_time:
        return None
    epochs = max(run.budget.epochs, round(run.budget.epochs * walls["reiso"] / walls["stock"]))
    log(f"{run.tag}: {epochs} epochs, the stock budget scaled by ReIsoSeg's wall time "
        f"({walls['reiso']:.0f} s vs {walls['stock']:.0f} s)")
    return {EPOCHS_ENV: str(epochs)}


def curves(folder: Path) -> dict:
    """Learning curves of a finished training from its checkpoint: per epoch pseudo Dice, losses (both
    re-isotropic terms for ReIsoSeg) and the seconds since the training started at each epoch's end."""
    import torch

    lg = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    starts, ends = lg.get("epoch_start_timestamps", []), lg.get("epoch_end_timestamps", [])
    out = {k: [float(v) for v in lg[k]] for k in ("mean_fg_dice", "ema_fg_dice", "train_losses", "val_losses",
                                                  "train_loss_ani", "train_loss_iso") if lg.get(k)}
    out["epoch_end_s"] = [float(e - starts[0]) for e in ends] if starts else []
    return out

"""The dataset and plans a benchmark trains: the named dataset (or the preset's generated one), nnU-Net's plans
(planned and preprocessed here when missing) and the narrower copy a preset trains on a CPU."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_reisoseg.benchmark.environment import (
    BenchmarkError,
    env_paths,
    log,
    nnunet_command,
    run_logged,
    worker_env,
)
from nnunetv2_reisoseg.benchmark.presets import CONFIGURATION, PLANS, Budget
from nnunetv2_reisoseg.io import checks


@dataclass(frozen=True)
class Dataset:
    """The dataset a benchmark trains on, with what its evaluation needs from dataset.json."""

    id: int
    name: str
    folder: Path
    labels: dict  # dataset.json's labels
    synthetic: bool

    @property
    def foreground(self) -> list[int]:
        return sorted(int(v) for k, v in self.labels.items() if isinstance(v, int) and v > 0 and k != "ignore")


def open_dataset(dataset: str | None, budget: Budget) -> Dataset:
    """The named dataset in ``$nnUNet_raw``, or the budget's generated one; refuses a region-based dataset."""
    dataset_id, dataset_name = ensure_dataset(dataset, budget)
    folder = env_paths()[0] / dataset_name
    if not folder.is_dir():
        raise BenchmarkError(f"no dataset {dataset_name} in $nnUNet_raw ({folder.parent}): convert it first "
                             "(reisoseg convert), or name one that is there")
    labels = checks.json_shape(
        checks.read_json(folder / "dataset.json", "an nnU-Net dataset.json", "convert the dataset again"),
        str(folder / "dataset.json"), {"labels": dict, "file_ending": str}, "convert the dataset again")["labels"]
    if any(not isinstance(v, int) for v in labels.values()):  # before any planning or training
        raise BenchmarkError(f"{dataset_name} is region-based; the benchmark's evaluation handles label datasets "
                             "only (train regions with nnUNetv2_train -tr nnUNetTrainerReIso)")
    return Dataset(dataset_id, dataset_name, folder, labels, dataset is None)


def ensure_dataset(dataset: str | None, budget: Budget) -> tuple[int, str]:
    """The dataset's id and folder name; generates the budget's synthetic dataset when none is named."""
    if dataset is not None:
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

        env_paths()
        try:
            name = maybe_convert_to_dataset_name(dataset)
        except RuntimeError as e:
            raise BenchmarkError(f"dataset {dataset}: {e}") from None
        return int(name[7:10]), name
    raw, _ = env_paths()
    synth = budget.synth
    if synth is None:
        raise BenchmarkError(f"the {budget.name} preset generates no data: name the dataset it was made for "
                             "(README, 'The studies'), e.g. reisoseg benchmark Dataset970_VNC --preset vnc")
    existing = sorted(raw.glob(f"Dataset{synth.dataset_id:03d}_*"))
    if existing:
        ds = existing[0] / "dataset.json"
        desc = json.loads(ds.read_text()).get("description") if ds.is_file() else None
        if existing[0].name != synth.folder or desc != synth.description:
            raise BenchmarkError(
                f"{existing[0]} exists but is not the {budget.name} preset's generated dataset ({synth.description}). "
                f"Remove it, or benchmark it by name: reisoseg benchmark {existing[0].name}")
        log(f"reusing {existing[0]}")
        return synth.dataset_id, synth.folder
    from nnunetv2_reisoseg.data.synth import generate_dataset

    log(f"generating the embedded synthetic EM dataset ({synth.description})")
    path = generate_dataset(raw, synth.dataset_id, synth.name, synth.spec())
    ds = json.loads((path / "dataset.json").read_text())
    ds["description"] = synth.description
    (path / "dataset.json").write_text(json.dumps(ds, indent=2))
    return synth.dataset_id, synth.folder


def narrower_plans(plans: dict, width: float, name: str, patch: Sequence[int] | None = None) -> dict:
    """A copy of nnU-Net's plans whose 3d_fullres network has ``width`` times the features per stage (at least
    8) and, given ``patch``, that patch with the topology nnU-Net's planner derives for it (stages, strides,
    kernels; features per stage by its rule, then scaled). The preprocessed data stay nnU-Net's."""
    out = json.loads(json.dumps(plans))
    out["plans_name"] = name
    cfg = out["configurations"][CONFIGURATION]
    kwargs = cfg["architecture"]["arch_kwargs"]
    if patch is not None:
        from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

        # the arguments nnU-Net's ExperimentPlanner passes: feature maps at least 4 voxels, no pooling cap
        _, strides, kernels, new_patch, _ = get_pool_and_conv_props(cfg["spacing"], list(patch), 4, 999999)
        if list(new_patch) != list(patch):
            raise BenchmarkError(f"patch {list(patch)} is not one nnU-Net's topology accepts for spacing "
                                 f"{cfg['spacing']}; the nearest is {list(new_patch)}")
        n = len(strides)
        cfg["patch_size"] = [int(v) for v in new_patch]  # numpy integers, which JSON cannot write
        kwargs.update(n_stages=n, strides=[[int(v) for v in s] for s in strides],
                      kernel_sizes=[[int(v) for v in k] for k in kernels],
                      features_per_stage=[min(320, 32 * 2 ** i) for i in range(n)],
                      n_conv_per_stage=[kwargs["n_conv_per_stage"][0]] * n,
                      n_conv_per_stage_decoder=[kwargs["n_conv_per_stage_decoder"][0]] * (n - 1))
    kwargs["features_per_stage"] = [max(8, round(f * width)) for f in kwargs["features_per_stage"]]
    return out


def ensure_plans(ds: Dataset, out: Path, budget: Budget) -> dict:
    """The plans ``budget`` trains (nnU-Net's, planned and preprocessed here when missing, or their narrower
    copy); the dataset's own folds (reisoseg convert's, one per block) are copied to nnU-Net's splits."""
    raw, pre = env_paths()
    plans_file = pre / ds.name / f"{PLANS}.json"
    if not plans_file.is_file():
        log(f"planning and preprocessing {ds.name} with nnU-Net ({CONFIGURATION})")
        env = {**os.environ, **worker_env()}
        if env["nnUNet_n_proc_DA"] == "0":  # 0 breaks nnU-Net's planner (torch.set_num_threads(0))
            env["nnUNet_n_proc_DA"] = "1"
        run_logged([*nnunet_command("nnUNetv2_plan_and_preprocess"), "-d", str(ds.id), "-c", CONFIGURATION, "-np",
                    env["nnUNet_def_n_proc"]], env, out / "logs" / "plan_and_preprocess.log", "plan", None)
    plans = checks.read_plans(plans_file, f"plan the dataset again: nnUNetv2_plan_and_preprocess -d {ds.id}")
    splits, given = pre / ds.name / "splits_final.json", raw / ds.name / "splits_final.json"
    if not splits.is_file() and given.is_file():
        shutil.copyfile(given, splits)
        log(f"using the dataset's folds: copied {given} to {splits}")
    if CONFIGURATION not in plans["configurations"]:
        raise BenchmarkError(f"{plans_file} has no {CONFIGURATION} configuration; the benchmark needs a 3D dataset")
    if budget.plans_name != PLANS:
        plans = narrower_plans(plans, budget.width, budget.plans_name, budget.patch)
        (pre / ds.name / f"{budget.plans_name}.json").write_text(json.dumps(plans, indent=1))
        log(f"{budget.plans_name}: nnU-Net's plan with features per stage "
            f"{plans['configurations'][CONFIGURATION]['architecture']['arch_kwargs']['features_per_stage']}")
    return plans

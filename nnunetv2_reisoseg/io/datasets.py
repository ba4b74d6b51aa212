"""nnU-Net's folders as the commands find them: the environment variables that name them, and a dataset named by
its id or its ``DatasetXXX_NAME`` folder, with its plans."""
from __future__ import annotations

import os
from pathlib import Path

from nnunetv2_reisoseg.errors import InputError
from nnunetv2_reisoseg.io.checks import read_plans


def env_folder(name: str) -> Path:
    """The folder nnU-Net's environment variable ``name`` (nnUNet_raw, nnUNet_preprocessed, ...) names."""
    value = os.environ.get(name)
    if not value:
        raise InputError(f"{name} is not set: export {name}=/path/to/{name} (see nnU-Net's setting_up_paths.md).")
    return Path(value)


def dataset_folder(root: Path, dataset: str, where: str = "$nnUNet_preprocessed") -> str:
    """The DatasetXXX_NAME folder under ``root`` that ``dataset`` (an id or a name) names."""
    if dataset.isdigit():
        found = sorted(p.name for p in root.glob(f"Dataset{int(dataset):03d}_*")) if root.is_dir() else []
        if not found:
            raise InputError(f"no dataset {dataset} in {where} ({root}): plan it with nnUNetv2_plan_and_preprocess "
                             f"-d {dataset}, or check the id")
        return found[0]
    if not (root / dataset).is_dir():
        raise InputError(f"no dataset {dataset} in {where} ({root}): give its id or its DatasetXXX_NAME folder name, "
                         "or a plans .json file")
    return dataset


def load_plans(dataset: str, plans: str) -> dict:
    """Plans from a .json path, or from $nnUNet_preprocessed/<dataset>/<plans>.json."""
    if dataset.endswith(".json"):
        return read_plans(dataset)
    root = env_folder("nnUNet_preprocessed")
    path = root / dataset_folder(root, dataset) / f"{plans}.json"
    if not path.is_file():
        raise InputError(f"{path} not found: run nnUNetv2_plan_and_preprocess -d {dataset} first.")
    return read_plans(path)

"""nnU-Net raw datasets: where one goes, its images and its dataset.json (written through ``io.folders``)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.io.folders import check_output, marker_owner

# the commands whose datasets --overwrite may replace
RAW_DATASET_COMMANDS = ("convert", "synth")


def raw_dataset_target(raw_root: str | Path, dataset_id: int, name: str, overwrite: bool,
                       protected: Sequence[str | os.PathLike] = ()) -> tuple[Path, list[Path]]:
    """The folder ``DatasetXXX_NAME`` under ``raw_root`` and the existing folders with the same id, which only
    ``overwrite`` allows replacing (nnU-Net refuses two datasets with one id), and only where reisoseg convert
    or synth wrote them and they hold none of ``protected`` (``io.folders.check_output``)."""
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset id must be in 1..999, got {dataset_id}")
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"dataset name must be a plain word without spaces or slashes, got {name!r}")
    raw_root = Path(raw_root)
    target = raw_root / f"Dataset{dataset_id:03d}_{name}"
    clashes = sorted(p for p in raw_root.glob(f"Dataset{dataset_id:03d}_*")) if raw_root.is_dir() else []
    if clashes and not overwrite:
        raise FileExistsError(
            f"{clashes[0]} already exists (dataset id {dataset_id}). Pick another --dataset-id or pass "
            "--overwrite to replace it.")
    for folder in [*clashes, *([] if target in clashes else [target])]:
        check_output(folder, overwrite, marker_owner(*RAW_DATASET_COMMANDS), protected)
    return target, clashes


def write_image(array: np.ndarray, spacing_zyx: Sequence[float], path: Path) -> None:
    """A compressed NIfTI with the spacing of a (Z, Y, X) array; nnU-Net plans from that spacing."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))  # SimpleITK orders spacing x, y, z
    sitk.WriteImage(img, str(path), useCompression=True)


def write_dataset_json(folder: Path, labels: dict[str, int], num_training: int, name: str, description: str,
                       spacing_nm: Sequence[float] | Mapping[str, Sequence[float]], channel_name: str = "EM",
                       provenance: tuple[str, str] = ("", "")) -> None:
    """``dataset.json`` through nnU-Net's own ``generate_dataset_json``, with the voxel size in nm kept beside it
    (``spacing_nm_zyx``: nnU-Net plans from the images' headers, this is for people reading the file; given per
    case, where the cases differ, ``spacing_nm_zyx_per_case``). ``provenance`` is (licence, converted by)."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    licence, converted_by = provenance
    spacing = {"spacing_nm_zyx_per_case": {k: [float(v) for v in s] for k, s in spacing_nm.items()}} \
        if isinstance(spacing_nm, Mapping) else {"spacing_nm_zyx": [float(v) for v in spacing_nm]}
    generate_dataset_json(str(folder), {0: channel_name}, dict(labels), num_training, ".nii.gz", dataset_name=name,
                          description=description, license=licence, converted_by=converted_by, **spacing)

"""nnU-Net raw datasets: where one goes, its images and its dataset.json (written through ``io.folders``)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def raw_dataset_target(raw_root: str | Path, dataset_id: int, name: str, overwrite: bool) -> tuple[Path, list[Path]]:
    """The folder ``DatasetXXX_NAME`` under ``raw_root`` and the existing folders with the same id,
    which only ``overwrite`` allows replacing (nnU-Net refuses two datasets with one id)."""
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
    return target, clashes


def write_image(array: np.ndarray, spacing_zyx: Sequence[float], path: Path) -> None:
    """A compressed NIfTI with the spacing of a (Z, Y, X) array; nnU-Net plans from that spacing."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))  # SimpleITK orders spacing x, y, z
    sitk.WriteImage(img, str(path), useCompression=True)


def write_dataset_json(folder: Path, labels: dict[str, int], num_training: int, name: str, description: str,
                       spacing_nm: Sequence[float], channel_name: str = "EM",
                       provenance: tuple[str, str] = ("", "")) -> None:
    """``dataset.json`` through nnU-Net's own ``generate_dataset_json``, with the voxel size in nm kept beside it
    (``spacing_nm_zyx``: nnU-Net plans from the images' headers, this is for people reading the file).
    ``provenance`` is (licence, converted by)."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    licence, converted_by = provenance
    generate_dataset_json(str(folder), {0: channel_name}, dict(labels), num_training, ".nii.gz", dataset_name=name,
                          description=description, license=licence, converted_by=converted_by,
                          spacing_nm_zyx=[float(v) for v in spacing_nm])

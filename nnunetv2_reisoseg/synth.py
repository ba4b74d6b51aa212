"""Synthetic serial-section EM with known isotropic truth, written as an nnU-Net raw dataset.

The tissue is built on a fine isotropic grid (cells with membranes, mitochondria as curved tubes and
ellipsoids in random 3D orientations, vesicles and texture as distractors), then "imaged": each
section integrates the tissue over its thickness (anisotropy factor f), with lateral blur, noise,
section-to-section brightness/contrast jitter and small lateral misalignment. Labels are given on the
anisotropic grid (mitochondria = 1); the isotropic truth is kept beside the dataset in
``isotropic_truth/`` so that a prediction can be judged against what was really there.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from nnunetv2_reisoseg.fsutil import staged_folder


@dataclass
class SynthCase:
    image: np.ndarray  # float32, anisotropic grid (Z, Y, X)
    labels: np.ndarray  # uint8, anisotropic grid
    truth: np.ndarray  # uint8, fine isotropic grid (Z * f, Y, X)


def _smooth_curve(rng: np.random.Generator, shape: Sequence[int], n_points: int = 200) -> np.ndarray:
    """A smooth random 3D curve through the volume (voxel coordinates on the fine grid)."""
    shape_a = np.asarray(shape, dtype=float)
    start = rng.uniform(0.1, 0.9, 3) * shape_a
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    length = rng.uniform(0.4, 0.9) * shape_a.mean()
    bend = rng.normal(size=(2, 3)) * 0.25 * length
    t = np.linspace(-0.5, 0.5, n_points)[:, None]
    return start + t * length * direction + np.sin(np.pi * t) * bend[0] + np.sin(2 * np.pi * t) * bend[1] * 0.5


def _tube_mask(shape: Sequence[int], curve: np.ndarray, radius: float) -> np.ndarray:
    seed = np.zeros(shape, bool)
    idx = np.round(curve).astype(int)
    ok = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    seed[tuple(idx[ok].T)] = True
    if not seed.any():
        return seed
    return ndi.distance_transform_edt(~seed) <= radius


def _ellipsoid_mask(rng: np.random.Generator, shape: Sequence[int], radii: Sequence[float]) -> np.ndarray:
    center = rng.uniform(0.15, 0.85, 3) * np.asarray(shape)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # random 3D orientation
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1) - center
    local = grid @ q
    return (np.square(local / np.asarray(radii)).sum(-1)) <= 1.0


def _cell_membranes(rng: np.random.Generator, shape: Sequence[int], n_cells: int, width: float) -> np.ndarray:
    """Voronoi cells; membranes where the nearest and second-nearest cell centres are equidistant."""
    from scipy.spatial import cKDTree

    centres = rng.uniform(0, 1, (n_cells, 3)) * np.asarray(shape)
    coords = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    d, _ = cKDTree(centres).query(coords, k=2)
    return ((d[:, 1] - d[:, 0]) < width).reshape(shape)


def generate_case(
    rng: np.random.Generator,
    shape: Sequence[int],
    anisotropy: int,
    n_mito: int | None = None,
    missing_section: bool = False,
) -> SynthCase:
    """One simulated EM volume of ``shape`` (anisotropic grid) and its truth."""
    f = int(anisotropy)
    if f < 1:
        raise ValueError(f"anisotropy must be an integer >= 1, got {anisotropy}")
    z, y, x = (int(s) for s in shape)
    fine = (z * f, y, x)
    vol = float(np.prod(fine))
    scale = min(y, x) / 48.0
    n_mito = n_mito if n_mito is not None else max(2, round(vol / 40000))

    mito = np.zeros(fine, bool)
    for i in range(n_mito):
        if i % 3 == 2:
            mito |= _ellipsoid_mask(rng, fine, rng.uniform(2.5, 5.0, 3) * scale)
        else:
            mito |= _tube_mask(fine, _smooth_curve(rng, fine), rng.uniform(2.0, 3.5) * scale)
    membranes = _cell_membranes(rng, fine, max(3, int(vol / 60000)), 0.8 * scale) & ~mito
    vesicles = np.zeros(fine, bool)
    for _ in range(max(2, int(vol / 8000))):
        c = (rng.uniform(0, 1, 3) * np.asarray(fine)).astype(int)
        vesicles[tuple(c)] = True
    vesicle_rim = ndi.binary_dilation(vesicles, iterations=2) & ~ndi.binary_dilation(vesicles, iterations=1) & ~mito

    # intensities: bright cytoplasm with texture, dark membranes, dark double-membraned mitochondria
    # with striped cristae, small dark vesicle rims
    tissue = 0.62 + 0.06 * ndi.gaussian_filter(rng.normal(size=fine), 1.5) / 0.1
    mito_inner = ndi.binary_erosion(mito, iterations=1)
    cristae = 0.5 + 0.5 * np.sin(np.arange(fine[1])[None, :, None] * 1.3 + np.arange(fine[2])[None, None, :] * 0.7)
    tissue = np.where(mito, 0.25, tissue)
    tissue = np.where(mito_inner, 0.38 + 0.12 * cristae, tissue)
    tissue = np.where(membranes, 0.22, tissue)
    tissue = np.where(vesicle_rim, 0.3, tissue)

    # imaging: section integration over its thickness, lateral blur, per-section jitter, misalignment
    sections = tissue.reshape(z, f, y, x).mean(1)
    sections = ndi.gaussian_filter(sections, (0, 0.8, 0.8))
    gain = rng.normal(1.0, 0.05, (z, 1, 1))
    offset = rng.normal(0.0, 0.03, (z, 1, 1))
    sections = sections * gain + offset
    labels = (mito.reshape(z, f, y, x).mean(1) >= 0.5).astype(np.uint8)
    shifts = np.round(np.cumsum(rng.normal(0, 0.6, (z, 2)), 0)).astype(int)
    shifts -= np.round(shifts.mean(0)).astype(int)
    for s in range(z):
        sections[s] = np.roll(sections[s], tuple(shifts[s]), axis=(0, 1))
        labels[s] = np.roll(labels[s], tuple(shifts[s]), axis=(0, 1))
    sections += rng.normal(0, 0.04, sections.shape)
    if missing_section and z > 2:
        s = int(rng.integers(1, z - 1))
        sections[s] = sections[s].mean() + rng.normal(0, 0.04, sections[s].shape)
    image = np.clip(sections * 255.0, 0, 255).astype(np.float32)
    return SynthCase(image=image, labels=labels, truth=mito.astype(np.uint8))


def _write(array: np.ndarray, spacing_zyx: Sequence[float], path: Path) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))  # SimpleITK orders spacing x, y, z
    sitk.WriteImage(img, str(path), useCompression=True)


def generate_dataset(
    raw_root: str | os.PathLike,
    dataset_id: int,
    name: str,
    cases: int = 20,
    shape: Sequence[int] = (32, 256, 256),
    anisotropy: int = 8,
    xy_nm: float = 5.0,
    seed: int = 0,
    test_cases: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``DatasetXXX_NAME`` under ``raw_root`` (imagesTr, labelsTr, dataset.json, isotropic_truth/,
    and imagesTs/labelsTs when ``test_cases``). Written to a temporary folder first and moved into
    place at the end, so a failure leaves nothing behind."""
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset id must be in 1..999, got {dataset_id}")
    if cases < 1:
        raise ValueError(f"cases must be >= 1, got {cases}")
    raw_root = Path(raw_root)
    raw_root.mkdir(parents=True, exist_ok=True)
    target = raw_root / f"Dataset{dataset_id:03d}_{name}"
    clashes = sorted(p for p in raw_root.glob(f"Dataset{dataset_id:03d}_*"))
    if clashes and not overwrite:
        raise FileExistsError(
            f"{clashes[0]} already exists (dataset id {dataset_id}). Pick another --dataset-id or pass "
            "--overwrite to replace it.")
    rng = np.random.default_rng(seed)
    spacing = (xy_nm * anisotropy, xy_nm, xy_nm)
    with staged_folder(target, replaces=clashes) as tmp:
        for sub in ("imagesTr", "labelsTr", "isotropic_truth") + (("imagesTs", "labelsTs") if test_cases else ()):
            (tmp / sub).mkdir()
        total = cases + test_cases
        for i in range(total):
            split = ("imagesTr", "labelsTr") if i < cases else ("imagesTs", "labelsTs")
            case_id = f"{name.lower()}_{i:03d}"
            c = generate_case(rng, shape, anisotropy)
            _write(c.image, spacing, tmp / split[0] / f"{case_id}_0000.nii.gz")
            _write(c.labels, spacing, tmp / split[1] / f"{case_id}.nii.gz")
            _write(c.truth, (xy_nm, xy_nm, xy_nm), tmp / "isotropic_truth" / f"{case_id}.nii.gz")
            if progress:
                print(f"\rsynth: case {i + 1}/{total}", end="" if i + 1 < total else "\n", flush=True)
        dataset_json = {
            "channel_names": {"0": "EM"},
            "labels": {"background": 0, "mitochondria": 1},
            "numTraining": cases,
            "file_ending": ".nii.gz",
            "name": name,
            "description": f"reisoseg synth: anisotropy {anisotropy}, {xy_nm} nm lateral, seed {seed}",
            "spacing_nm_zyx": list(spacing),
        }
        (tmp / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return target

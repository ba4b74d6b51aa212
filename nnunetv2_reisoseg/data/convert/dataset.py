"""``reisoseg convert``: EM volumes into an nnU-Net raw dataset.

EM datasets are often one or two large volumes; ``split`` cuts each into blocks so that nnU-Net's
5-fold cross-validation has cases. Voxel sizes are written in nm, from the files or from
``spacing``. Everything is written to a staging folder first, so an error leaves nothing behind.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.data.convert.labels import MAX_CLASSES, LabelRules
from nnunetv2_reisoseg.data.convert.readers import ConvertError, Volume, read_volume
from nnunetv2_reisoseg.data.raw_dataset import raw_dataset_target, staged_folder, write_dataset_json, write_image


@dataclass
class Pair:
    image: str
    labels: str | None


def _split_slices(shape: Sequence[int], n: int, axis: int) -> list[tuple[slice, ...]]:
    edges = np.linspace(0, shape[axis], n + 1).round().astype(int)
    out = []
    for a, b in itertools.pairwise(edges):
        s = [slice(None)] * 3
        s[axis] = slice(int(a), int(b))
        out.append(tuple(s))
    return out


MIN_BLOCK = 8  # voxels along the split axis: fewer leave nnU-Net nothing to pool


def choose_split_axis(shape: Sequence[int], spacing: Sequence[float], n: int = 1) -> int:
    """The axis of largest physical extent (a lateral axis on ties, so every block keeps all sections) among
    those that give blocks of at least ``MIN_BLOCK`` voxels; the largest extent when none does."""
    extent = [k * s for k, s in zip(shape, spacing)]
    # preference: larger extent first, lateral before z when within 1%
    order = sorted(range(3), key=lambda a: (-round(extent[a] / (0.01 * max(extent) or 1)), a == 0, a))
    fits = [a for a in order if shape[a] // max(1, n) >= MIN_BLOCK]
    return fits[0] if fits else order[0]


def convert(
    raw_root: str | os.PathLike,
    dataset_id: int,
    name: str,
    train: Sequence[Pair],
    test: Sequence[Pair] = (),
    spacing_nm: Sequence[float] | None = None,
    split: int = 1,
    split_axis: str = "auto",
    rules: LabelRules | None = None,
    channel_name: str = "EM",
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``DatasetXXX_NAME`` under ``raw_root`` from image/label volume pairs; returns its path."""
    rules = rules or LabelRules()
    if not train:
        raise ConvertError("no training volume: pass --image PATH[:KEY] --labels PATH[:KEY]")
    if any(p.labels is None for p in train):
        raise ConvertError("every --image needs its --labels (in the same order)")
    if split < 1:
        raise ConvertError(f"--split must be >= 1, got {split}")
    if spacing_nm is not None and (len(spacing_nm) != 3 or min(spacing_nm) <= 0):
        raise ConvertError(f"--spacing takes three positive numbers Z Y X in nm, got {list(spacing_nm)}")
    if split_axis not in ("auto", "z", "y", "x"):
        raise ConvertError(f"--split-axis must be auto, z, y or x, got {split_axis}")
    try:
        target, clashes = raw_dataset_target(raw_root, dataset_id, name, overwrite)
    except ValueError as e:
        raise ConvertError(str(e)) from None

    # open and check everything before writing anything
    jobs: list[tuple[str, Volume, Volume | None, tuple[float, float, float]]] = []
    opened: list[Volume] = []
    try:
        for kind, pairs in (("train", train), ("test", test)):
            for p in pairs:
                img = read_volume(p.image)
                opened.append(img)
                lab = read_volume(p.labels) if p.labels else None
                if lab is not None:
                    opened.append(lab)
                    if lab.shape != img.shape:
                        raise ConvertError(f"image {img.source} has shape {img.shape} but labels {lab.source} "
                                           f"have {lab.shape}; they must cover the same voxels")
                if img.array.dtype.kind not in "iufb":
                    raise ConvertError(f"{img.source}: image dtype {img.array.dtype} is not numeric")
                sp = tuple(float(s) for s in spacing_nm) if spacing_nm is not None else img.spacing_nm
                if sp is None and lab is not None:
                    sp = lab.spacing_nm
                if sp is None:
                    raise ConvertError(f"{img.source}: no voxel size in the file; pass --spacing Z Y X in nm "
                                       "(e.g. --spacing 40 4 4 for 40 nm sections of 4 nm pixels)")
                if spacing_nm is not None and img.spacing_nm and not np.allclose(img.spacing_nm, sp, rtol=1e-3):
                    print(f"convert: {img.source} says {img.spacing_nm} nm; using --spacing {sp}")
                jobs.append((kind, img, lab, sp))  # type: ignore[arg-type]

        blocks: list[tuple[str, Volume, Volume | None, tuple[float, float, float], tuple[slice, ...]]] = []
        for kind, img, lab, sp in jobs:
            n = split if kind == "train" else 1
            axis = choose_split_axis(img.shape, sp, n) if split_axis == "auto" else "zyx".index(split_axis)
            if n > 1 and img.shape[axis] // n < MIN_BLOCK:
                raise ConvertError(f"{img.source}: --split {n} along {'zyx'[axis]} gives blocks of "
                                   f"{img.shape[axis] // n} voxels; use fewer blocks or another --split-axis")
            blocks += [(kind, img, lab, sp, s) for s in _split_slices(img.shape, n, axis)]

        with staged_folder(target, replaces=clashes) as tmp:
            max_class, n_train = 0, 0
            has_test_labels = any(lab is not None for kind, _, lab, _, _ in blocks if kind == "test")
            for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if test else ()) + \
                    (("labelsTs",) if has_test_labels else ()):
                (tmp / sub).mkdir()
            label_files = []
            for i, (kind, img, lab, sp, sl) in enumerate(blocks):
                case_id = f"{name.lower()}_{i:03d}"
                tr = kind == "train"
                n_train += tr
                block = np.asarray(img.array[sl])
                write_image(block.astype(np.uint8) if block.dtype == bool else block, sp,
                            tmp / ("imagesTr" if tr else "imagesTs") / f"{case_id}_0000.nii.gz")
                if lab is not None:
                    classes, ignore = rules.apply(np.asarray(lab.array[sl]), lab.source)
                    max_class = max(max_class, int(classes.max(initial=0)))
                    if max_class > MAX_CLASSES:
                        raise ConvertError(f"{lab.source}: label values up to {max_class} look like instance "
                                           "ids, not classes; pass --binary to merge them into one class or "
                                           "--label-map to choose classes")
                    # labels are written once the class count is known: the ignore label must be the largest
                    label_files.append((tmp / ("labelsTr" if tr else "labelsTs") / f"{case_id}.nii.gz",
                                        classes.astype(np.uint8), ignore, sp))
                if progress:
                    print(f"\rconvert: block {i + 1}/{len(blocks)}", end="" if i + 1 < len(blocks) else "\n",
                          flush=True)
            ignore_label = max_class + 1 if rules.ignore else None
            for path, classes, ignore, spc in label_files:
                if ignore_label is not None:
                    classes[ignore] = ignore_label
                write_image(classes, spc, path)
            names = list(class_names) if class_names else []
            if names and len(names) != max_class:
                raise ConvertError(f"--class-names gives {len(names)} names but the labels have classes "
                                   f"1..{max_class}")
            labels = {"background": 0, **{(names[c - 1] if names else f"class_{c}"): c
                                          for c in range(1, max_class + 1)}}
            if max_class == 0:
                raise ConvertError("the training labels hold no foreground at all; check --labels, "
                                   "--label-map and --background")
            if ignore_label is not None:
                labels["ignore"] = ignore_label
            description = "reisoseg convert: " + "; ".join(
                f"{kind} {img.source} ({'x'.join(map(str, img.shape))}, {'x'.join(f'{v:g}' for v in sp)} nm)"
                for kind, img, _, sp in jobs) + (f"; each training volume split into {split}" if split > 1 else "")
            write_dataset_json(tmp, labels, n_train, name, description, jobs[0][3], channel_name,
                               licence="that of the source volumes", converted_by="reisoseg convert")
    finally:
        for v in opened:
            v.close()
    return target

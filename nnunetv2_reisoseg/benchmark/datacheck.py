"""What a dataset contains, looked at before anything trains: for every class and split, how many sections
its objects span and which sections hold none of it. A study of ReIsoSeg on data whose objects lie in one
section, or whose sections are partly unlabelled, answers nothing; the report says which it is."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPLITS = {"labelsTr": "training", "labelsTs": "test"}


def object_spans(labels: np.ndarray, cls: int, section_axis: int = 0, connectivity: int = 26) -> list[int]:
    """Sections (extent along ``section_axis``) of every 3D connected component of class ``cls``."""
    import cc3d

    comp = cc3d.connected_components(np.ascontiguousarray(labels == cls), connectivity=connectivity)
    stats = cc3d.statistics(comp)
    boxes = stats["bounding_boxes"][1:]  # label 0 is the background
    return [int(b[section_axis].stop - b[section_axis].start) for b in boxes if b is not None]


def describe_spans(spans: Sequence[int]) -> dict:
    s = np.asarray(spans, dtype=float)
    if s.size == 0:
        return {"objects": 0, "median_span": None, "span_4_or_more": None, "single_section": None}
    return {"objects": int(s.size), "median_span": float(np.median(s)), "span_4_or_more": float(np.mean(s >= 4)),
            "single_section": float(np.mean(s == 1))}


def check_dataset(folder: Path, labels: dict) -> dict:
    """Per split and class: the cases, the objects' spans and the sections without the class (per case).
    The section axis is each case's coarsest (by its header's spacing)."""
    from nnunetv2_reisoseg.io.volumes import read_image

    classes = {k: v for k, v in labels.items() if isinstance(v, int) and v > 0 and k != "ignore"}
    out: dict = {}
    for sub, split in SPLITS.items():
        files = sorted((folder / sub).glob("*.nii.gz")) if (folder / sub).is_dir() else []
        if not files:
            continue
        spans: dict[str, list[int]] = {str(v): [] for v in classes.values()}
        empty: dict[str, list[int]] = {str(v): [] for v in classes.values()}
        sections, fractions = [], {str(v): [] for v in classes.values()}
        for f in files:
            lab, spacing = read_image(f)
            axis = int(np.argmax(spacing))  # numpy order z, y, x
            sections.append(lab.shape[axis])
            other = tuple(a for a in range(lab.ndim) if a != axis)
            for v in classes.values():
                spans[str(v)] += object_spans(lab, v, axis)
                empty[str(v)].append(int((~(lab == v).any(axis=other)).sum()))
                fractions[str(v)].append(float((lab == v).mean()))
        out[split] = {c: {"cases": len(files), **describe_spans(spans[c]), "sections_without": empty[c],
                          "sections": sections, "voxel_fraction": fractions[c]} for c in spans}
    return out


INSTANCE_SPLITS = {"instancesTr": "training", "instancesTs": "test"}


def check_instances(folder: Path) -> dict:
    """Per split with instance ids kept (``instancesTr/``, ``instancesTs/``): the objects (ids) and how many of
    them touch an object of another id, which components of a mask cannot tell apart. Empty without ids."""
    from nnunetv2_reisoseg.data.instances import touching_ids
    from nnunetv2_reisoseg.io.volumes import read_image

    out = {}
    for sub, split in INSTANCE_SPLITS.items():
        files = sorted((folder / sub).glob("*.nii.gz")) if (folder / sub).is_dir() else []
        if files:
            n_objects = n_touching = 0
            for f in files:
                ids = read_image(f)[0]
                n_objects += int(np.count_nonzero(np.unique(ids)))
                n_touching += len(touching_ids(ids))
            out[split] = {"cases": len(files), "objects": n_objects, "touching": n_touching}
    return out

"""Per-case metrics of the benchmark: ``reisoseg evaluate``'s voxel, surface and object measures of every
class, and the same against the isotropic truth of synthetic data (``iso_`` prefix)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.evaluation import evaluate_labels, measures

ISO_PREFIX = "iso_"
# runs before the object measures (docs/study_cpu) stored this count ratio
_LEGACY = {"components_ratio": ("3D component count ratio (predicted / reference)", None)}


def _compared() -> list:
    return [m for m in measures.MEASURES.values() if m.compared]


def metric_titles() -> dict[str, str]:
    """The title of every measure the benchmark compares methods on (``evaluation/measures.py``), and of the same
    against the isotropic truth, in the registry's order."""
    return {**{m.name: m.title for m in _compared()},
            **{ISO_PREFIX + m.name: f"{m.title} vs isotropic truth" for m in _compared()},
            **{k: title for k, (title, _) in _LEGACY.items()}}


def higher_is_better(metric: str) -> bool | None:
    """Which way is better for ``metric`` (a measure, or one against the isotropic truth); None: neither."""
    if metric in _LEGACY:
        return _LEGACY[metric][1]
    m = measures.MEASURES.get(metric[len(ISO_PREFIX):] if metric.startswith(ISO_PREFIX) else metric)
    return None if m is None else m.higher_is_better


def evaluate_case(pred_file: Path, ref_file: Path, labels: Sequence[int], ignore_label: int | None,
                  truth_file: Path | None = None) -> dict[int, dict[str, float]]:
    """Per class: every field of ``reisoseg evaluate`` (distances in the images' units, nm here), and with
    ``truth_file`` the same against the isotropic truth (the prediction's sections repeated onto the
    truth's grid), prefixed ``iso_``."""
    from nnunetv2_reisoseg.io.volumes import read_image

    pred, spacing = read_image(pred_file)
    ref = read_image(ref_file)[0]
    out = {int(c): m for c, m in evaluate_labels(pred, ref, spacing, list(labels), ignore_label=ignore_label).items()}
    if truth_file is not None:
        truth = read_image(truth_file)[0]
        f = truth.shape[0] // pred.shape[0]
        iso = evaluate_labels(np.repeat(pred, f, axis=0), truth, (spacing[0] / f, *spacing[1:]), list(labels))
        for c, m in iso.items():
            out[int(c)].update({ISO_PREFIX + k: v for k, v in m.items()})
    return out

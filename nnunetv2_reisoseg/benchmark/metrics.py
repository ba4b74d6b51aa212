"""Per-case metrics of the benchmark: ``reisoseg evaluate``'s voxel, surface and object measures of every
class, and the same against the isotropic truth of synthetic data (``iso_`` prefix)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.evaluation import evaluate_labels

_BASE_TITLES = {
    "dice": "Dice", "iou": "IoU", "precision": "voxel precision", "recall": "voxel recall",
    "hd95_nm": "HD95 (nm)", "assd_nm": "ASSD (nm)", "ref_objects": "reference objects",
    "pred_objects": "predicted objects", "f1_50": "object F1 (IoU 0.5)", "f1_75": "object F1 (IoU 0.75)",
    "ap50": "AP-50", "ap75": "AP-75", "voi_split": "VOI split (bits)", "voi_merge": "VOI merge (bits)",
    "arand": "adapted Rand error", "split_objects": "split objects", "merged_objects": "merged objects",
    "missed_objects": "missed objects", "false_objects": "false objects"}
# None: no better direction (the reference's own count; a prediction's count is neither good nor bad)
_BASE_DIRECTION = {"dice": True, "iou": True, "precision": True, "recall": True, "hd95_nm": False, "assd_nm": False,
                   "ref_objects": None, "pred_objects": None, "f1_50": True, "f1_75": True, "ap50": True,
                   "ap75": True, "voi_split": False, "voi_merge": False, "arand": False, "split_objects": False,
                   "merged_objects": False, "missed_objects": False, "false_objects": False}
ISO_PREFIX = "iso_"
METRIC_TITLES = {**_BASE_TITLES, **{ISO_PREFIX + k: f"{v} vs isotropic truth" for k, v in _BASE_TITLES.items()},
                 # runs before the object measures (docs/study_cpu) stored this count ratio
                 "components_ratio": "3D component count ratio (predicted / reference)"}
HIGHER_IS_BETTER = {**_BASE_DIRECTION, **{ISO_PREFIX + k: v for k, v in _BASE_DIRECTION.items()}}


def evaluate_case(pred_file: Path, ref_file: Path, labels: Sequence[int], ignore_label: int | None,
                  truth_file: Path | None = None) -> dict[int, dict[str, float]]:
    """Per class: every field of ``reisoseg evaluate`` (distances in the images' units, nm here), and with
    ``truth_file`` the same against the isotropic truth (the prediction's sections repeated onto the
    truth's grid), prefixed ``iso_``."""
    import SimpleITK as sitk

    pimg = sitk.ReadImage(str(pred_file))
    pred = sitk.GetArrayFromImage(pimg)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_file)))
    spacing = pimg.GetSpacing()[::-1]
    out = {int(c): m for c, m in evaluate_labels(pred, ref, spacing, list(labels), ignore_label=ignore_label).items()}
    if truth_file is not None:
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file)))
        f = truth.shape[0] // pred.shape[0]
        iso = evaluate_labels(np.repeat(pred, f, axis=0), truth, (spacing[0] / f, *spacing[1:]), list(labels))
        for c, m in iso.items():
            out[int(c)].update({ISO_PREFIX + k: v for k, v in m.items()})
    return out

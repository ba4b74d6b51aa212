"""Per-case metrics of a prediction: nnU-Net's Dice and IoU, MONAI's HD95 and ASSD, the 3D component
ratio, and the same against the isotropic truth of synthetic data."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

HIGHER_IS_BETTER = {"dice": True, "iou": True, "hd95_nm": False, "assd_nm": False, "iso_dice": True,
                    "iso_hd95_nm": False, "iso_assd_nm": False}
METRIC_TITLES = {"dice": "Dice", "iou": "IoU", "hd95_nm": "HD95 (nm)", "assd_nm": "ASSD (nm)",
                 "components_ratio": "3D components / reference", "iso_dice": "Dice vs isotropic truth",
                 "iso_hd95_nm": "HD95 vs isotropic truth (nm)", "iso_assd_nm": "ASSD vs isotropic truth (nm)"}


def _surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """HD95 and symmetric ASSD in the units of ``spacing`` (MONAI's implementation); NaN when either
    mask is empty (no surface to measure)."""
    if not pred.any() or not ref.any():
        return float("nan"), float("nan")
    import warnings

    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # a MONAI-internal deprecation notice
        hd95 = compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=list(spacing))
        assd = compute_average_surface_distance(p, r, include_background=True, symmetric=True,
                                                spacing=list(spacing))
    return float(hd95.item()), float(assd.item())


def _components(mask: np.ndarray) -> int:
    from scipy import ndimage as ndi

    return int(ndi.label(mask, structure=np.ones((3, 3, 3), bool))[1])


def evaluate_case(pred_file: Path, ref_file: Path, labels: Sequence[int], ignore_label: int | None,
                  truth_file: Path | None = None) -> dict[int, dict[str, float]]:
    """Per class: nnU-Net's Dice and IoU, HD95 and ASSD in the images' units (nm here), the ratio of
    3D connected components (26-neighbourhood) predicted to reference (1 = no fragments, no merges:
    continuity across sections), and with ``truth_file`` the same against the isotropic truth (the
    prediction's sections repeated to the truth's grid)."""
    import SimpleITK as sitk
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    nn = compute_metrics(str(ref_file), str(pred_file), SimpleITKIO(), list(labels), ignore_label)["metrics"]
    pimg = sitk.ReadImage(str(pred_file))
    pred = sitk.GetArrayFromImage(pimg)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_file)))
    spacing = pimg.GetSpacing()[::-1]
    valid = ref != ignore_label if ignore_label is not None else np.ones(ref.shape, bool)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file))) if truth_file is not None else None
    out: dict[int, dict[str, float]] = {}
    for c in labels:
        p, r = (pred == c) & valid, (ref == c) & valid
        hd95, assd = _surface_metrics(p, r, spacing)
        n_ref = _components(r)
        row = {"dice": float(nn[c]["Dice"]), "iou": float(nn[c]["IoU"]), "hd95_nm": hd95, "assd_nm": assd,
               "components_ratio": _components(p) / n_ref if n_ref else float("nan")}
        if truth is not None:
            f = truth.shape[0] // pred.shape[0]
            p_iso = np.repeat(pred == c, f, axis=0)
            t = truth == c
            denom = p_iso.sum() + t.sum()
            row["iso_dice"] = float(2 * (p_iso & t).sum() / denom) if denom else float("nan")
            row["iso_hd95_nm"], row["iso_assd_nm"] = _surface_metrics(p_iso, t, (spacing[0] / f, *spacing[1:]))
        out[int(c)] = row
    return out

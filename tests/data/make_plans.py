"""How tests/data/plans/*.json were made: nnU-Net's own planners run on dataset fingerprints of the
given spacing and median shape (one dummy image per case is all they read). ``python tests/data/make_plans.py``
rewrites them (about 2 minutes on 2 CPU cores)."""
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CASES = {
    "em_40x5x5": ((40, 5, 5), (100, 1000, 1000), "ExperimentPlanner"),
    "em_45x6x6": ((45, 6, 6), (100, 800, 800), "ExperimentPlanner"),
    "iso_8x8x8": ((8, 8, 8), (200, 200, 200), "ExperimentPlanner"),
    "em_transposed_5x5x40": ((5, 5, 40), (1000, 1000, 100), "ExperimentPlanner"),
    "em_40x5x5_resencm": ((40, 5, 5), (100, 1000, 1000), "ResEncM"),
    "ct_3x0.8x0.8": ((3.0, 0.8, 0.8), (120, 512, 512), "ExperimentPlanner"),
    "tiny_40x10x10": ((40, 10, 10), (16, 48, 48), "ExperimentPlanner"),
    "em_40x5x5_patch20x128x128": ((40, 5, 5), (20, 128, 128), "ExperimentPlanner"),
}


def plan_for(spacing, shape, planner="ExperimentPlanner", n_cases=20, dataset_id=999) -> dict:
    tmp = Path(tempfile.mkdtemp())
    name = f"Dataset{dataset_id:03d}_Plan"
    raw, pre = tmp / "raw" / name, tmp / "pre" / name
    for d in (raw / "imagesTr", raw / "labelsTr", pre):
        d.mkdir(parents=True)
    for c in range(n_cases):
        for arr, path in ((np.zeros((2, 2, 2), np.float32), f"imagesTr/c{c:03d}_0000.nii.gz"),
                          (np.zeros((2, 2, 2), np.uint8), f"labelsTr/c{c:03d}.nii.gz")):
            sitk.WriteImage(sitk.GetImageFromArray(arr), str(raw / path))
    dataset_json = {"channel_names": {"0": "EM"}, "labels": {"background": 0, "mito": 1},
                    "numTraining": n_cases, "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    intensity = {"mean": 0, "std": 1, "percentile_00_5": -3, "percentile_99_5": 3, "min": -5, "max": 5, "median": 0}
    fingerprint = {"spacings": [list(spacing)] * n_cases, "shapes_after_crop": [list(shape)] * n_cases,
                   "median_relative_size_after_cropping": 1.0,
                   "foreground_intensity_properties_per_channel": {"0": intensity}}
    (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    os.environ.update(nnUNet_raw=str(tmp / "raw"), nnUNet_preprocessed=str(tmp / "pre"),
                      nnUNet_results=str(tmp / "res"))
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
        nnUNetPlannerResEncM,
    )

    cls = {"ExperimentPlanner": ExperimentPlanner, "ResEncM": nnUNetPlannerResEncM}[planner]
    with contextlib.redirect_stdout(io.StringIO()):
        p = cls(dataset_id)
        p.plan_experiment()
    return json.loads((pre / f"{p.plans_identifier}.json").read_text())


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "plans"
    for case, (sp, sh, pl) in CASES.items():
        (out / f"{case}.json").write_text(json.dumps(plan_for(sp, sh, pl), indent=1))
        print(case, flush=True)

"""End to end through nnU-Net's real CLIs on datasets derived from the planned tiny dataset (CPU): the ignore
label, regions, and the cascade (3d_lowres, then 3d_cascade_fullres on its segmentations).
"""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from tests.training.e2e import TRAINER, read, run

pytestmark = pytest.mark.e2e


def _derived_dataset(root, env, dataset_id, name, edit_labels, dataset_json):
    src = root / "raw" / "Dataset901_SynthEM"
    dst = root / "raw" / f"Dataset{dataset_id}_{name}"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("isotropic_truth", "preview.png"))
    for lab in (dst / "labelsTr").glob("*.nii.gz"):
        img = sitk.ReadImage(str(lab))
        new = sitk.GetImageFromArray(edit_labels(sitk.GetArrayFromImage(img)))
        new.CopyInformation(img)
        sitk.WriteImage(new, str(lab))
    ds = json.loads((src / "dataset.json").read_text())
    (dst / "dataset.json").write_text(json.dumps({**ds, **dataset_json, "name": name}))
    run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres", "-np", "1"],
        {**env, "nnUNet_n_proc_DA": "1"})
    run(["nnUNetv2_train", str(dataset_id), "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], env)
    return root / "res" / dst.name / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"

def test_ignore_label_and_regions_train(planned):
    root, env = planned

    def with_ignore(lab):
        lab = lab.copy()
        lab[:, :, : lab.shape[2] // 3] = 2  # an unannotated strip
        return lab

    fold = _derived_dataset(root, env, 902, "Ignore", with_ignore,
                            {"labels": {"background": 0, "mitochondria": 1, "ignore": 2}})
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert "1" in summary["mean"] and "2" not in summary["mean"]

    def two_classes(lab):
        lab = lab.copy()
        lab[(lab == 0) & (np.arange(lab.shape[1])[None, :, None] % 8 == 0)] = 2  # a second, disjoint class
        return lab

    fold = _derived_dataset(root, env, 903, "Regions", two_classes, {
        "labels": {"background": 0, "anything": [1, 2], "mitochondria": [1]}, "regions_class_order": [2, 1]})
    ckpt = torch.load(fold / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert np.isfinite(ckpt["logging"]["train_loss_iso"]).all()
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert "(1, 2)" in summary["mean"] and "(1,)" in summary["mean"]

def test_cascade_lowres_then_cascade_fullres(planned):
    root, env = planned
    # plans of their own, so that nnU-Net's plans stay as planned for every other test
    plans = json.loads((root / "pre" / "Dataset901_SynthEM" / "nnUNetPlans.json").read_text())
    plans["plans_name"] = "nnUNetPlansCascade"
    plans_file = root / "pre" / "Dataset901_SynthEM" / "nnUNetPlansCascade.json"
    full = plans["configurations"]["3d_fullres"]
    plans["configurations"]["3d_lowres"] = {
        "inherits_from": "3d_fullres", "data_identifier": "nnUNetPlans_3d_lowres", "next_stage": "3d_cascade_fullres",
        "spacing": [full["spacing"][0], full["spacing"][1] * 2, full["spacing"][2] * 2],
        "median_image_size_in_voxels": [full["median_image_size_in_voxels"][0],
                                        *(v // 2 for v in full["median_image_size_in_voxels"][1:])]}
    plans["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    plans_file.write_text(json.dumps(plans, indent=1))
    run(["nnUNetv2_preprocess", "-d", "901", "-c", "3d_lowres", "-plans_name", "nnUNetPlansCascade", "-np", "1"],
        {**env, "nnUNet_n_proc_DA": "1"})
    # fold 'all' validates on every case, which gives the cascade its previous-stage segmentations
    run(["nnUNetv2_train", "901", "3d_lowres", "all", "-tr", TRAINER, "-p", "nnUNetPlansCascade", "-device", "cpu"],
        env)
    run(["nnUNetv2_train", "901", "3d_cascade_fullres", "0", "-tr", TRAINER, "-p", "nnUNetPlansCascade", "-device",
         "cpu"], env)
    model = root / "res" / "Dataset901_SynthEM" / f"{TRAINER}__nnUNetPlansCascade__3d_cascade_fullres" / "fold_0"
    ckpt = torch.load(model / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    first = next(v for k, v in ckpt["network_weights"].items() if k.endswith(".weight") and v.ndim == 5)
    assert first.shape[1] == 2  # image + the previous stage's segmentation
    images = root / "raw" / "Dataset901_SynthEM" / "imagesTs"
    common = ["-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1", "-tr", TRAINER, "-d", "901", "-p",
              "nnUNetPlansCascade"]
    run(["nnUNetv2_predict", "-i", images, "-o", root / "pred_low", "-c", "3d_lowres", "-f", "all", *common], env)
    run(["nnUNetv2_predict", "-i", images, "-o", root / "pred_cascade", "-c", "3d_cascade_fullres", "-f", "0",
         "-prev_stage_predictions", root / "pred_low", *common], env)
    preds = sorted((root / "pred_cascade").glob("*.nii.gz"))
    assert [p.name for p in preds] == [p.name for p in sorted((root / "pred_low").glob("*.nii.gz"))]
    for p in preds:  # full resolution again, on the image's grid, from a model that read both inputs
        assert read(p).shape == read(images / p.name.replace(".nii.gz", "_0000.nii.gz")).shape
        assert set(np.unique(read(p))) <= {0, 1}

"""End to end through nnU-Net's real CLIs, each test training its own network on the planned tiny dataset
(CPU): the plans nnU-Net makes of its anisotropy, the ResEnc M preset (and its stock export), the paper's
network, and a training killed mid-epoch and continued with --c.
"""
import json
import subprocess

import numpy as np
import pytest
import torch

from tests.training.e2e import TRAINER, read, run

pytestmark = pytest.mark.e2e


def test_synth_anisotropy_is_what_nnunet_plans(planned):
    root, env = planned
    plans = json.loads((root / "pre" / "Dataset901_SynthEM" / "nnUNetPlans.json").read_text())
    spacing = plans["configurations"]["3d_fullres"]["spacing"]
    assert spacing == [40.0, 10.0, 10.0]  # --anisotropy 4 --xy-nm 10, sections first
    out = run(["reisoseg", "info", "901"], env)
    assert "PI levels [1, 2]" in out and "yes: 8 -> 16 sections" in out

def test_resenc_preset_trains_and_predicts(planned):
    root, env = planned
    run(["nnUNetv2_plan_and_preprocess", "-d", "901", "-c", "3d_fullres", "-pl", "nnUNetPlannerResEncM", "-np", "1"],
        {**env, "nnUNet_n_proc_DA": "1"})
    run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", TRAINER, "-p", "nnUNetResEncUNetMPlans", "-device", "cpu"],
        env)
    model = root / "res" / "Dataset901_SynthEM" / f"{TRAINER}__nnUNetResEncUNetMPlans__3d_fullres"
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert any(k.startswith("encoder.stem") for k in ckpt["network_weights"])  # the residual encoder
    assert any(k.startswith("isotropic.pi_module.") for k in ckpt["network_weights"])
    images = root / "raw" / "Dataset901_SynthEM" / "imagesTs"
    common = ["-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"]
    run(["nnUNetv2_predict", "-i", images, "-o", root / "pred_resenc", "-d", "901", "-c", "3d_fullres", "-tr", TRAINER,
         "-p", "nnUNetResEncUNetMPlans", *common], env)
    # the residual encoder deploys as stock nnU-Net too, with the same labels
    run(["reisoseg", "export-stock", model, "-o", root / "resenc_stock"], env)
    stock_env = {k: v for k, v in env.items() if k != "nnUNet_extTrainer"}
    run(["nnUNetv2_predict_from_modelfolder", "-i", images, "-o", root / "pred_resenc_stock", "-m",
         root / "resenc_stock", *common], stock_env)
    preds = sorted((root / "pred_resenc").glob("*.nii.gz"))
    assert preds
    for p in preds:
        seg = read(p)
        assert seg.shape == read(images / p.name.replace(".nii.gz", "_0000.nii.gz")).shape
        assert set(np.unique(seg)) <= {0, 1} and np.array_equal(seg, read(root / "pred_resenc_stock" / p.name))

def test_paper_network_trains_predicts_resumes_and_is_not_exported_as_stock(planned):
    root, env = planned
    trainer = "nnUNetTrainerReIsoSegNetTiny"
    out = run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", trainer, "-device", "cpu"], env)
    assert "ReIsoSeg paper network: section axis 0, ratio 4 -> 2 in-plane pool(s)" in out
    model = root / "res" / "Dataset901_SynthEM" / f"{trainer}__nnUNetPlans__3d_fullres"
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert "isotropic.seg_layers.2.weight" in ckpt["network_weights"] and np.isfinite(
        ckpt["logging"]["train_loss_iso"]).all()
    run(["nnUNetv2_predict", "-i", root / "raw" / "Dataset901_SynthEM" / "imagesTs", "-o", root / "pred_paper",
         "-d", "901", "-c", "3d_fullres", "-f", "0", "-tr", trainer, "-device", "cpu", "--disable_tta", "-npp", "1",
         "-nps", "1"], env)
    assert list((root / "pred_paper").glob("*.nii.gz"))
    out = run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", trainer, "-device", "cpu", "--c"],
              {**env, "REISO_TEST_EPOCHS": "2"})
    assert "Epoch 1" in out and "Epoch 0\n" not in out
    p = subprocess.run(["reisoseg", "export-stock", model, "-o", root / "paper_stock"], env=env, capture_output=True,
                       text=True)
    assert p.returncode != 0 and "paper" in p.stderr and not (root / "paper_stock").exists()

def test_training_killed_mid_epoch_continues_with_c(planned):
    root, env = planned
    trainer = "nnUNetTrainerReIsoCrashy"
    cmd = ["nnUNetv2_train", "901", "3d_fullres", "1", "-tr", trainer, "-device", "cpu"]
    p = subprocess.run(cmd, env={**env, "REISO_TEST_CRASH": "1"}, capture_output=True, text=True)
    assert p.returncode != 0  # killed
    fold = root / "res" / "Dataset901_SynthEM" / f"{trainer}__nnUNetPlans__3d_fullres" / "fold_1"
    assert not (fold / "checkpoint_final.pth").exists()
    latest = torch.load(fold / "checkpoint_latest.pth", weights_only=False, map_location="cpu")
    assert latest["current_epoch"] == 1 and len(latest["logging"]["train_loss_iso"]) == 1
    out = run([*cmd, "--c"], env)
    assert "Epoch 1" in out and "Epoch 0\n" not in out
    final = torch.load(fold / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert final["current_epoch"] == 3
    for key in ("train_loss_ani", "train_loss_iso", "train_losses", "val_losses"):
        assert len(final["logging"][key]) == 3 and final["logging"][key][0] == latest["logging"][key][0]
    k = next(k for k in final["network_weights"] if k.startswith("isotropic.pi_module."))
    assert not torch.equal(final["network_weights"][k], latest["network_weights"][k])
    assert final["optimizer_state"]["state"]

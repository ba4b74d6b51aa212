"""End to end through nnU-Net's real CLIs on one trained ReIsoSeg model (a five-line subclass found through
nnUNet_extTrainer, trained on a tiny generated anisotropic dataset; CPU): reisoseg export-stock and stock
prediction without the plugin (identical outputs), fine-tuning from a stock model, --val --npz,
find_best_configuration, export_model_to_zip, --c, and a missing nnUNet_extTrainer.
"""
import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import torch

from nnunetv2_reisoseg import trainer_dir
from tests.training.e2e import TRAINER, planned_dataset, read, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = planned_dataset(root)
    run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], env)
    model = root / "res" / "Dataset901_SynthEM" / f"{TRAINER}__nnUNetPlans__3d_fullres"
    return root, env, model


def test_training_wrote_both_loss_terms(ws):
    _, _, model = ws
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert ckpt["trainer_name"] == TRAINER
    assert any(k.startswith("isotropic.pi_module.") for k in ckpt["network_weights"])
    assert len(ckpt["logging"]["train_loss_ani"]) == len(ckpt["logging"]["train_loss_iso"]) == 1
    assert np.isfinite(ckpt["logging"]["train_loss_iso"]).all()
    assert (model / "fold_0" / "progress_reiso.png").stat().st_size > 0
    assert "train_loss_ani" in next((model / "fold_0").glob("training_log_*.txt")).read_text()
    assert (model / "fold_0" / "validation" / "summary.json").is_file()

def test_export_stock_predicts_identically_without_the_plugin(ws):
    root, env, model = ws
    images = root / "raw" / "Dataset901_SynthEM" / "imagesTs"
    common = ["-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"]
    run(["nnUNetv2_predict", "-i", images, "-o", root / "pred_reiso", "-d", "901", "-c", "3d_fullres", "-f", "0",
         "-tr", TRAINER, *common], env)
    run(["reisoseg", "export-stock", model, "-o", root / "stock"], env)
    assert torch.load(root / "stock" / "fold_0" / "checkpoint_final.pth",
                      weights_only=False)["trainer_name"] == "nnUNetTrainer"
    stock_env = {k: v for k, v in env.items() if k != "nnUNet_extTrainer"}
    run(["nnUNetv2_predict_from_modelfolder", "-i", images, "-o", root / "pred_stock", "-m", root / "stock",
         "-f", "0", *common], stock_env)
    preds = sorted((root / "pred_reiso").glob("*.nii.gz"))
    assert preds
    for p in preds:
        assert np.array_equal(read(p), read(root / "pred_stock" / p.name))
    # an existing export is not overwritten without the flag
    p = subprocess.run(["reisoseg", "export-stock", model, "-o", root / "stock"], env=env, capture_output=True,
                       text=True)
    assert p.returncode != 0 and "--overwrite" in p.stderr

def test_fine_tuning_from_a_stock_model_through_import_stock(ws):
    root, env, model = ws
    run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", "nnUNetTrainerStockTiny", "-device", "cpu"], env)
    stock_ckpt = (root / "res" / "Dataset901_SynthEM" / "nnUNetTrainerStockTiny__nnUNetPlans__3d_fullres" / "fold_0"
                  / "checkpoint_final.pth")
    # nnU-Net's loader wants every key of the ReIsoSeg network in the checkpoint: a stock one fails
    p = subprocess.run(["nnUNetv2_train", "901", "3d_fullres", "2", "-tr", TRAINER, "-device", "cpu",
                        "-pretrained_weights", stock_ckpt], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "isotropic.pi_module" in p.stdout + p.stderr
    run(["reisoseg", "import-stock", stock_ckpt, "-o", root / "init.pth"], env)
    out = run(["nnUNetv2_train", "901", "3d_fullres", "1", "-tr", TRAINER, "-device", "cpu", "-pretrained_weights",
               root / "init.pth"], env)
    assert "Loading pretrained weights" in out and "ReIsoSeg: PI levels" in out
    final = torch.load(model / "fold_1" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    stock = torch.load(stock_ckpt, weights_only=False, map_location="cpu")["network_weights"]
    scratch = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    key = next(k for k, v in stock.items() if k.startswith("encoder.") and v.ndim == 5)

    def corr(a, b):
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    # two iterations later the encoder is still the stock model's, not an independent initialisation
    assert corr(final["network_weights"][key], stock[key]) > 0.9
    assert abs(corr(scratch["network_weights"][key], stock[key])) < 0.5
    assert np.isfinite(final["logging"]["train_loss_iso"]).all()

def test_val_npz_find_best_and_zip(ws):
    root, env, model = ws
    val = model / "fold_0" / "validation"
    before = json.loads((val / "summary.json").read_text())
    shutil.rmtree(val)
    run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu", "--val", "--npz"], env)
    assert json.loads((val / "summary.json").read_text())["mean"] == before["mean"]  # the same validation again
    npzs = sorted(val.glob("*.npz"))
    assert npzs
    for f in npzs:
        probs = np.load(f)["probabilities"]
        seg = read(val / f.name.replace(".npz", ".nii.gz"))
        assert probs.shape == (2, *seg.shape) and np.allclose(probs.sum(0), 1, atol=1e-3)
        # labels = argmax, away from near-ties (the two-iteration model has many), which rounding may break
        clear = np.abs(probs[1] - probs[0]) > 1e-3
        assert clear.mean() > 0.5 and np.array_equal(probs.argmax(0)[clear], seg[clear])
    out = run(["nnUNetv2_find_best_configuration", "901", "-c", "3d_fullres", "-tr", TRAINER, "-f", "0",
               "-np", "1"], env)
    assert TRAINER in out
    best = json.loads((root / "res" / "Dataset901_SynthEM" / "inference_information.json").read_text())
    assert best["best_model_or_ensemble"]["selected_model_or_models"][0]["trainer"] == TRAINER
    run(["nnUNetv2_export_model_to_zip", "-d", "901", "-o", root / "model.zip", "-c", "3d_fullres", "-tr", TRAINER,
         "-f", "0"], env)
    with zipfile.ZipFile(root / "model.zip") as z:
        names = {n.split(f"{TRAINER}__nnUNetPlans__3d_fullres/", 1)[-1] for n in z.namelist()}
        packed = torch.load(z.open(next(n for n in z.namelist() if n.endswith("fold_0/checkpoint_final.pth"))),
                            weights_only=False, map_location="cpu")
    assert {"plans.json", "dataset.json", "fold_0/checkpoint_final.pth"} <= names
    assert packed["trainer_name"] == TRAINER and any(k.startswith("isotropic.") for k in packed["network_weights"])

def test_continue_training_keeps_pi_weights_optimizer_and_loss_curves(ws):
    _, env, model = ws
    # on a copy (fold 3), so that the module's model stays as trained for every other test, in any order
    shutil.copytree(model / "fold_0", model / "fold_3", ignore=shutil.ignore_patterns("validation"))
    before = torch.load(model / "fold_3" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    out = run(["nnUNetv2_train", "901", "3d_fullres", "3", "-tr", TRAINER, "-device", "cpu", "--c"],
              {**env, "REISO_TEST_EPOCHS": "2"})
    assert "Epoch 1" in out and "Epoch 0\n" not in out
    after = torch.load(model / "fold_3" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert after["current_epoch"] == 2
    for key in ("train_loss_ani", "train_loss_iso", "train_losses"):
        assert after["logging"][key][0] == before["logging"][key][0] and len(after["logging"][key]) == 2
    k = next(k for k in after["network_weights"] if k.startswith("isotropic.pi_module."))
    assert not torch.equal(after["network_weights"][k], before["network_weights"][k])  # trained on from them
    assert after["optimizer_state"]["state"]

def test_missing_ext_trainer_names_the_fix(ws):
    _, env, _ = ws
    bare = {k: v for k, v in env.items() if k != "nnUNet_extTrainer"}
    p = subprocess.run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", "nnUNetTrainerReIso", "-device", "cpu"],
                       env=bare, capture_output=True, text=True)
    assert p.returncode != 0
    assert "Could not find requested nnunet trainer nnUNetTrainerReIso" in p.stderr and "nnUNet_extTrainer" in p.stderr
    assert run(["reisoseg", "trainer-path"], bare).strip() == str(trainer_dir())  # the value to export

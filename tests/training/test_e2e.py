"""End to end through nnU-Net's real CLIs on a tiny generated anisotropic dataset (CPU, ~4 minutes).

plan/preprocess -> train (a five-line subclass found through nnUNet_extTrainer) -> predict ->
reisoseg export-stock -> predict with stock nnUNetTrainer and no plugin -> identical outputs;
then --val --npz, find_best_configuration, export_model_to_zip and --c; the paper's network; a
training killed mid-epoch and resumed; regions, the ignore label and the cascade; a missing
nnUNet_extTrainer.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_reisoseg import trainer_dir

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainerReIsoTiny"
TINY_TRAINER = '''
import os
import signal
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso


class TinyBudget:
    """Put before a trainer in the bases: 2 iterations per epoch, REISO_TEST_EPOCHS epochs (1)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if os.environ.get("OMP_NUM_THREADS"):  # nnUNetv2_train takes every core; the suite's workers share them
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        self.num_epochs = int(os.environ.get("REISO_TEST_EPOCHS", "1"))
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1


class nnUNetTrainerReIsoTiny(TinyBudget, nnUNetTrainerReIso):
    pass


class nnUNetTrainerReIsoSegNetTiny(TinyBudget, nnUNetTrainerReIsoSegNet):
    pass


class nnUNetTrainerStockTiny(TinyBudget, nnUNetTrainer):
    pass


class nnUNetTrainerReIsoCrashy(nnUNetTrainerReIsoTiny):
    """Saves every epoch; with REISO_TEST_CRASH set it is killed (SIGKILL) in the middle of epoch 1."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 3
        self.save_every = 1
        self._steps = 0

    def train_step(self, batch):
        self._steps += 1
        if os.environ.get("REISO_TEST_CRASH") and self.current_epoch == 1 and self._steps > 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().train_step(batch)
'''


def run(args, env, **kw):
    p = subprocess.run(args, env=env, capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, args))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "ext").mkdir()
    (root / "ext" / "tiny_trainers.py").write_text(TINY_TRAINER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               nnUNet_def_n_proc="1", nnUNet_n_proc_DA="1", nnUNet_compile="f",
               nnUNet_extTrainer=os.pathsep.join([str(trainer_dir()), str(root / "ext")]))
    run([sys.executable, "-m", "nnunetv2_reisoseg", "synth", "--dataset-id", "901", "--name", "SynthEM", "--cases",
         "5", "--test-cases", "1", "--shape", "16", "48", "48", "--anisotropy", "4", "--xy-nm", "10"], env)
    run(["nnUNetv2_plan_and_preprocess", "-d", "901", "-c", "3d_fullres", "-np", "1"], env)
    env["nnUNet_n_proc_DA"] = "0"  # single-threaded augmentation: fast and deterministic on 2 cores
    run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"], env)
    model = root / "res" / "Dataset901_SynthEM" / f"{TRAINER}__nnUNetPlans__3d_fullres"
    return root, env, model


def test_synth_anisotropy_is_what_nnunet_plans(ws):
    root, env, _ = ws
    plans = json.loads((root / "pre" / "Dataset901_SynthEM" / "nnUNetPlans.json").read_text())
    spacing = plans["configurations"]["3d_fullres"]["spacing"]
    assert spacing == [40.0, 10.0, 10.0]  # --anisotropy 4 --xy-nm 10, sections first
    out = run(["reisoseg", "info", "901"], env)
    assert "PI levels [1, 2]" in out and "yes: 16 -> 32 sections" in out


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


def test_resenc_preset_trains_and_predicts(ws):
    root, env, _ = ws
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


def test_paper_network_trains_predicts_resumes_and_is_not_exported_as_stock(ws):
    root, env, _ = ws
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


def test_training_killed_mid_epoch_continues_with_c(ws):
    root, env, _ = ws
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


def test_missing_ext_trainer_names_the_fix(ws):
    _, env, _ = ws
    bare = {k: v for k, v in env.items() if k != "nnUNet_extTrainer"}
    p = subprocess.run(["nnUNetv2_train", "901", "3d_fullres", "0", "-tr", "nnUNetTrainerReIso", "-device", "cpu"],
                       env=bare, capture_output=True, text=True)
    assert p.returncode != 0
    assert "Could not find requested nnunet trainer nnUNetTrainerReIso" in p.stderr and "nnUNet_extTrainer" in p.stderr
    assert run(["reisoseg", "trainer-path"], bare).strip() == str(trainer_dir())  # the value to export


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


def test_ignore_label_and_regions_train(ws):
    root, env, _ = ws

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


def test_cascade_lowres_then_cascade_fullres(ws):
    root, env, _ = ws
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

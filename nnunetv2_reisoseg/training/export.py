"""Export a trained ReIsoSeg model folder as a stock nnU-Net model folder (no plugin needed)."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from nnunetv2_reisoseg.data.raw_dataset import staged_folder
from nnunetv2_reisoseg.method.network import strip_pi_weights

STOCK_TRAINER = "nnUNetTrainer"
_MODEL_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json")
PAPER_NET_KEY = "decoder.heads_iso.0.weight"  # only ReIsoSegPaperNet has per-branch output heads


def export_stock(model_folder: str | Path, out_folder: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy ``model_folder`` to ``out_folder`` with every checkpoint reduced to the base network and
    renamed to ``nnUNetTrainer``. Returns the checkpoints written. Nothing is left behind on error."""
    src, dst = Path(model_folder), Path(out_folder)
    missing = [f for f in ("plans.json", "dataset.json") if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{src} is not a trained nnU-Net model folder (missing {', '.join(missing)}). Pass the folder "
            "that holds plans.json and fold_X/, e.g. $nnUNet_results/DatasetXXX/"
            "nnUNetTrainerReIso__nnUNetPlans__3d_fullres.")
    checkpoints = sorted(src.glob("fold_*/checkpoint_*.pth"))
    if not checkpoints:
        raise FileNotFoundError(f"No fold_*/checkpoint_*.pth in {src}: train a fold first.")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; choose another -o or pass --overwrite.")
    if dst.resolve() == src.resolve():
        raise ValueError("the output folder must differ from the model folder")

    written = []
    with staged_folder(dst) as tmp:
        for name in _MODEL_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        for ckpt_path in checkpoints:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            if PAPER_NET_KEY in ckpt["network_weights"]:
                raise ValueError(
                    f"{ckpt_path} holds the paper's network ({ckpt.get('trainer_name')}), which stock nnU-Net "
                    "cannot build: there is no stock model to export. Predict with the plugin installed "
                    "(nnUNetv2_predict -tr with nnUNet_extTrainer set), or train nnUNetTrainerReIso, whose "
                    "network is nnU-Net's own.")
            stock = {
                "network_weights": strip_pi_weights(ckpt["network_weights"]),
                "trainer_name": STOCK_TRAINER,
                "init_args": ckpt["init_args"],
                "current_epoch": ckpt.get("current_epoch"),
                "inference_allowed_mirroring_axes": ckpt.get("inference_allowed_mirroring_axes"),
                # nnU-Net's checkpoint keys, kept so that the folder is a regular model folder
                "optimizer_state": None,
                "grad_scaler_state": None,
                "logging": ckpt.get("logging"),
                "_best_ema": ckpt.get("_best_ema"),
                "exported_from": ckpt.get("trainer_name"),
            }
            rel = ckpt_path.relative_to(src)
            (tmp / rel.parent).mkdir(parents=True, exist_ok=True)
            torch.save(stock, tmp / rel)
            written.append(dst / rel)
    return written

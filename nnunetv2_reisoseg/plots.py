"""Plots written next to nnU-Net's progress.png."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_reiso_progress(logging: dict, output_folder: str, filename: str = "progress_reiso.png") -> str:
    """Both terms of the re-isotropic loss, the total and the validation loss, with the pseudo Dice."""
    n = min(len(logging.get(k, [])) for k in ("train_losses", "val_losses", "train_loss_ani", "train_loss_iso"))
    epochs = list(range(n))
    fig, ax = plt.subplots(figsize=(10, 6))
    ax.plot(epochs, logging["train_losses"][:n], "b-", lw=2, label="train loss (total)")
    ax.plot(epochs, logging["train_loss_ani"][:n], "c--", lw=2, label="train loss, anisotropic branch")
    ax.plot(epochs, logging["train_loss_iso"][:n], "m--", lw=2, label="train loss, isotropic branch")
    ax.plot(epochs, logging["val_losses"][:n], "r-", lw=2, label="val loss (anisotropic branch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    dice = logging.get("ema_fg_dice", [])[:n]
    if dice:
        ax2 = ax.twinx()
        ax2.plot(epochs[: len(dice)], dice, "g-", lw=2, label="pseudo Dice (mov. avg.)")
        ax2.set_ylabel("pseudo Dice")
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("ReIsoSeg: re-isotropic loss terms")
    fig.tight_layout()
    path = os.path.join(output_folder, filename)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

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
    # nnU-Net's own plot changes seaborn's global font scale; draw ours with matplotlib's defaults
    with plt.style.context("default"):
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        ax.plot(epochs, logging["train_losses"][:n], "b-", lw=2, label="train loss (total)")
        ax.plot(epochs, logging["train_loss_ani"][:n], "c--", lw=2, label="train loss, anisotropic branch")
        ax.plot(epochs, logging["train_loss_iso"][:n], "m--", lw=2, label="train loss, isotropic branch")
        ax.plot(epochs, logging["val_losses"][:n], "r-", lw=2, label="val loss (anisotropic branch)")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
        ax.set_title("ReIsoSeg: re-isotropic loss terms")
        ax2.plot(epochs, logging.get("mean_fg_dice", [])[:n], "g:", lw=2, label="pseudo Dice")
        ax2.plot(epochs, logging.get("ema_fg_dice", [])[:n], "g-", lw=2, label="pseudo Dice (mov. avg.)")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("pseudo Dice")
        ax2.grid(alpha=0.3)
        ax2.legend(loc="lower right")
        fig.tight_layout()
        path = os.path.join(output_folder, filename)
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return path

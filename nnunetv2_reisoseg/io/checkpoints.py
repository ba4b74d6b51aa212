"""nnU-Net checkpoints read with an error that names the file, for every command that reads one (export-stock,
import-stock, predict-volume, the trainer's own continuation check)."""
from __future__ import annotations

import os

import torch


def load_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict:
    """An nnU-Net checkpoint, or a ValueError that names the file and what it is instead of torch's unpickling
    traceback (a truncated download, another file renamed .pth, a checkpoint of something else)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as e:  # torch raises pickle, zipfile and runtime errors for files it cannot read
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]}); "
                         "give the checkpoint_final.pth (or checkpoint_best.pth) nnU-Net wrote") from None
    if not isinstance(ckpt, dict) or "network_weights" not in ckpt or "init_args" not in ckpt:
        raise ValueError(f"{path} is not an nnU-Net checkpoint (no network_weights / init_args); give the "
                         "checkpoint_final.pth nnU-Net wrote")
    return ckpt


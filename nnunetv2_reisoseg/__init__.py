"""ReIsoSeg (Guo et al., IEEE TMI 2024) for nnU-Net v2: PI module, re-isotropic loss, tools."""
from pathlib import Path

__version__ = "0.2.0"


def trainer_dir() -> Path:
    """Folder holding the trainer classes; point ``nnUNet_extTrainer`` at it."""
    from nnunetv2_reisoseg import trainers

    return Path(next(iter(trainers.__path__))).resolve()

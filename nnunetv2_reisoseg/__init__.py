"""ReIsoSeg (Guo et al., IEEE TMI 2024) for nnU-Net v2: PI module, re-isotropic loss, tools."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__version__ = "0.2.0"

EXT_TRAINER = "nnUNet_extTrainer"  # nnU-Net's list of folders where it looks for trainer classes outside its own


def trainer_dir() -> Path:
    """Folder holding the trainer classes; point ``nnUNet_extTrainer`` at it."""
    from nnunetv2_reisoseg import trainers

    return Path(next(iter(trainers.__path__))).resolve()


def trainer_path(folders: tuple[Path, ...] = (), existing: str | None = None) -> str:
    """A value of ``nnUNet_extTrainer``: ``folders`` (default: the plugin's trainers) first, so that our class
    names resolve to our classes, then the folders of ``existing``, each once."""
    ours = [str(f) for f in folders] or [str(trainer_dir())]
    return os.pathsep.join(dict.fromkeys([*ours, *(p for p in (existing or "").split(os.pathsep) if p)]))


@contextmanager
def our_trainers(*folders: Path) -> Iterator[None]:
    """``nnUNet_extTrainer`` set by ``trainer_path`` while nnU-Net looks trainer classes up, then restored: the
    one place where the plugin changes it in its own process."""
    old = os.environ.get(EXT_TRAINER)
    os.environ[EXT_TRAINER] = trainer_path(folders, old)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(EXT_TRAINER, None)
        else:
            os.environ[EXT_TRAINER] = old

"""ReIsoSeg trainers for nnU-Net: ``-tr nnUNetTrainerReIso`` and ``-tr nnUNetTrainerReIso_<N>epochs``.

The logic lives in ``nnunetv2_reisoseg.trainer``; this file only names the classes nnU-Net finds.
The training lengths are the same as nnU-Net's ``nnUNetTrainer_<N>epochs``, so an equal-budget
comparison with stock nnU-Net is one flag away.
"""
import torch

from nnunetv2_reisoseg.trainer import nnUNetTrainerReIso

__all__ = ["nnUNetTrainerReIso"]

EPOCH_VARIANTS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)


def _with_epochs(num_epochs: int) -> type:
    # nnU-Net records init arguments through locals(), so __init__ spells out its parameters
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        nnUNetTrainerReIso.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = num_epochs

    name = f"nnUNetTrainerReIso_{num_epochs}epoch" + ("" if num_epochs == 1 else "s")
    return type(name, (nnUNetTrainerReIso,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})


for _n in EPOCH_VARIANTS:
    _cls = _with_epochs(_n)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)

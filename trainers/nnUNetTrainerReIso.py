"""ReIsoSeg trainers for nnU-Net: ``-tr nnUNetTrainerReIso`` and ``-tr nnUNetTrainerReIso_<N>epochs``.

The logic lives in ``nnunetv2_reisoseg.trainer``; this file only names the classes nnU-Net finds.
The training lengths are the same as nnU-Net's ``nnUNetTrainer_<N>epochs``, so an equal-budget
comparison with stock nnU-Net is one flag away.
"""
import torch

from nnunetv2_reisoseg.trainer import nnUNetTrainerReIso

__all__ = ["nnUNetTrainerReIso"]

EPOCH_VARIANTS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)


def with_epochs(base: type, num_epochs: int, module: str = __name__) -> type:
    """``<base>_<N>epochs``: ``base`` trained for ``num_epochs`` epochs, like nnU-Net's variants;
    ``module`` is the module that will hold the class (for pickling and nnU-Net's lookup)."""

    # nnU-Net records init arguments through locals(), so __init__ spells out its parameters
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = num_epochs

    name = f"{base.__name__}_{num_epochs}epoch" + ("" if num_epochs == 1 else "s")
    return type(name, (base,), {"__init__": __init__, "__module__": module, "__qualname__": name})


for _n in EPOCH_VARIANTS:
    _cls = with_epochs(nnUNetTrainerReIso, _n)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)

"""``-tr nnUNetTrainerReIsoSegNet``: the paper's network (and ``_<N>epochs`` variants); logic in
``nnunetv2_reisoseg.paper_trainer``."""
from nnunetv2_reisoseg.trainers.nnUNetTrainerReIso import EPOCH_VARIANTS, with_epochs

from nnunetv2_reisoseg.paper_trainer import nnUNetTrainerReIsoSegNet

__all__ = ["nnUNetTrainerReIsoSegNet"]

for _n in EPOCH_VARIANTS:
    _cls = with_epochs(nnUNetTrainerReIsoSegNet, _n, __name__)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)

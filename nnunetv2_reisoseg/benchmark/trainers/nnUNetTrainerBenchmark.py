"""Fixed-budget trainers used by ``reisoseg benchmark``: ``nnUNetTrainerBench<Preset>`` (stock
nnU-Net), ``nnUNetTrainerReIsoBench<Preset>`` (ReIsoSeg), ``nnUNetTrainerReIsoAuxBench<Preset>`` (ReIsoSeg with
stock's loss on the deployed branch), ``nnUNetTrainerHalfLossBench<Preset>`` (stock with its loss x a) and
``nnUNetTrainerReIsoSegNetBench<Preset>`` (the paper's network), with the same budget per preset."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_reisoseg.benchmark.budget import BenchmarkBudgetMixin
from nnunetv2_reisoseg.benchmark.controls import nnUNetTrainerHalfLoss
from nnunetv2_reisoseg.benchmark.presets import EQUAL_TIME_SUFFIX, PRESETS
from nnunetv2_reisoseg.paper.trainer import nnUNetTrainerReIsoSegNet
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso, nnUNetTrainerReIsoAux

__all__ = []


def _budget_trainer(base: type, prefix: str, preset: str, suffix: str = "") -> type:
    budget = PRESETS[preset]

    # nnU-Net records init arguments through locals(), so __init__ spells out its parameters
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        BenchmarkBudgetMixin.__init__(self, plans, configuration, fold, dataset_json, device)

    name = f"{prefix}Bench{preset.capitalize()}{suffix}"
    attrs = {"__init__": __init__, "__module__": __name__, "__qualname__": name,
             "bench_epochs": budget.epochs, "bench_iterations": budget.iterations,
             "bench_val_iterations": budget.val_iterations,
             "bench_test_time_mirroring": budget.test_time_mirroring, "bench_epochs_from_env": bool(suffix),
             "bench_save_every": budget.save_every}
    return type(name, (BenchmarkBudgetMixin, base), attrs)


for _preset in PRESETS:
    for _base in (nnUNetTrainer, nnUNetTrainerReIso, nnUNetTrainerReIsoAux, nnUNetTrainerHalfLoss,
                  nnUNetTrainerReIsoSegNet):
        _cls = _budget_trainer(_base, _base.__name__, _preset)
        globals()[_cls.__name__] = _cls
        __all__.append(_cls.__name__)
    # stock nnU-Net trained for as long as ReIsoSeg took (reisoseg benchmark --equal-time)
    _cls = _budget_trainer(nnUNetTrainer, "nnUNetTrainer", _preset, EQUAL_TIME_SUFFIX)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)

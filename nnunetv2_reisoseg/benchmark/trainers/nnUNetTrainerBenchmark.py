"""The benchmark's fixed-budget trainers, ``<trainer>Bench<Preset>`` for every method and preset (and the
equal-time stock trainer): this file only names them; the classes come from ``training/variants.py``'s factory
with ``training/budget.py``'s mixin, the budgets from ``benchmark/presets.py`` and the methods from
``benchmark/methods.py``."""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_reisoseg.benchmark.methods import ALL_METHODS
from nnunetv2_reisoseg.benchmark.presets import PRESETS
from nnunetv2_reisoseg.training.budget import BenchmarkBudgetMixin
from nnunetv2_reisoseg.training.controls import nnUNetTrainerHalfLoss
from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso, nnUNetTrainerReIsoAux
from nnunetv2_reisoseg.training.variants import add_variants

_BASES = {c.__name__: c for c in (nnUNetTrainer, nnUNetTrainerReIso, nnUNetTrainerReIsoAux, nnUNetTrainerHalfLoss,
                                  nnUNetTrainerReIsoSegNet)}

__all__ = add_variants(globals(), [
    (m.trainer_name(b), (BenchmarkBudgetMixin, _BASES[m.trainer]), {**b.trainer_attrs(),
                                                                     "bench_epochs_from_env": m.equal_time}, {})
    for b in PRESETS.values() for m in ALL_METHODS.values()])

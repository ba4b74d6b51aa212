"""The benchmark's methods, defined once: the name ``--methods`` takes, the trainer it trains (its fixed-budget
variant per preset is ``<trainer>Bench<Preset>``, which ``benchmark/trainers/`` defines) and the title reports
show. Adding a method is one entry here, plus its trainer class in ``training/``."""
from __future__ import annotations

from dataclasses import dataclass

from nnunetv2_reisoseg.benchmark.presets import Budget


@dataclass(frozen=True)
class Method:
    """One method of the benchmark."""

    name: str  # as --methods and the records name it
    trainer: str  # the trainer class (its name, so that parsing the command line imports no torch)
    title: str  # as reports and plots show it
    # stock nnU-Net trained for as many epochs as ReIsoSeg took wall time (--equal-time; epochs from EPOCHS_ENV)
    equal_time: bool = False

    def trainer_name(self, budget: Budget) -> str:
        """The fixed-budget trainer class of this method at ``budget``."""
        return f"{self.trainer}Bench{budget.name.capitalize()}{'EqualTime' if self.equal_time else ''}"


# aux and stock_half are the two controls of why ReIsoSeg trails (docs/study_why): the isotropic branch on top of
# stock's loss, and stock nnU-Net with the gradient scale the paper's loss leaves the deployed branch
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("stock", "nnUNetTrainer", "stock nnU-Net"),
    Method("reiso", "nnUNetTrainerReIso", "ReIsoSeg"),
    Method("aux", "nnUNetTrainerReIsoAux", "ReIsoSeg aux (stock loss + isotropic)"),
    Method("stock_half", "nnUNetTrainerHalfLoss", "stock nnU-Net, loss x a"),
    Method("paper", "nnUNetTrainerReIsoSegNet", "ReIsoSeg paper network"),
)}
# not a choice of --methods: --equal-time adds it
EQUAL_TIME = Method("stock_time", "nnUNetTrainer", "stock nnU-Net at ReIsoSeg's wall time", equal_time=True)
ALL_METHODS: dict[str, Method] = {**METHODS, EQUAL_TIME.name: EQUAL_TIME}
METHOD_TITLES = {name: m.title for name, m in ALL_METHODS.items()}

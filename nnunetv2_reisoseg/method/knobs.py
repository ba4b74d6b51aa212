"""The method's knobs, with the paper's values, defined here once. ``nnUNetTrainerReIso`` exposes the PI module's
as one frozen ``PISettings`` (its class attribute ``pi``) and the loss's as class attributes; inference rebuilds the
network from the class alone, so the settings travel through ``build_network_architecture``. Every default
elsewhere refers to these."""
from __future__ import annotations

from dataclasses import dataclass

PI_REDUCTION = 4  # channel reduction inside the PI module (C -> C // 4)
ANI_WEIGHT = 0.5  # the paper's a: L = (1 - a) * L_iso + a * L_ani
LATERAL_DEGRADATION_P = 0.2  # probability of degrading one lateral axis like the section axis
# the scale s of the whole re-isotropic loss, s * ((1 - a) * L_iso + a * L_ani). The paper's is 1, which under
# SGD gives the deployed (anisotropic) branch a times stock nnU-Net's gradient; nnUNetTrainerReIsoAux uses
# 1 / a, so that the deployed branch keeps stock's loss and the isotropic branch is added on top
LOSS_SCALE = 1.0


@dataclass(frozen=True, kw_only=True)
class PISettings:
    """What a user may set of the PI module: the trainer, the network builder, the PI module and the paper's network
    all take this one value. A trainer variant sets its own::

        class nnUNetTrainerReIsoTwoLevels(nnUNetTrainerReIso):
            pi = PISettings(levels=(1, 2))
    """

    levels: tuple[int, ...] | None = None  # encoder stages whose skips the PI module replaces; None: from the plan
    reduction: int = PI_REDUCTION  # channels inside the PI module: C -> C // reduction
    lateral_degradation_p: float = LATERAL_DEGRADATION_P  # chance of degrading a lateral axis (training only)

    def __post_init__(self) -> None:
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))
        if int(self.reduction) != self.reduction or self.reduction < 1:
            raise ValueError(f"PISettings.reduction must be a whole number >= 1, got {self.reduction}")
        if not 0.0 <= float(self.lateral_degradation_p) <= 1.0:
            raise ValueError(f"PISettings.lateral_degradation_p is a probability in [0, 1], got "
                             f"{self.lateral_degradation_p}")

"""Training-length variants: ``<Trainer>_<N>epochs`` for every ``nnUNetTrainer_<N>epochs`` of nnU-Net, so an
equal-budget comparison with stock nnU-Net is one flag away."""
from __future__ import annotations

import torch

EPOCH_VARIANTS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)


def with_epochs(base: type, num_epochs: int, module: str) -> type:
    """``<base>_<N>epochs``: ``base`` trained for ``num_epochs`` epochs, like nnU-Net's variants;
    ``module`` is the module that will hold the class (for pickling and nnU-Net's lookup)."""

    # nnU-Net records init arguments through locals(), so __init__ spells out its parameters
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,  # noqa: N807
                 device: torch.device = torch.device('cuda')):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = num_epochs

    name = f"{base.__name__}_{num_epochs}epoch" + ("" if num_epochs == 1 else "s")
    return type(name, (base,), {"__init__": __init__, "__module__": module, "__qualname__": name})


def add_epoch_variants(base: type, namespace: dict) -> list[str]:
    """Define every ``<base>_<N>epochs`` in ``namespace`` (a trainer module's globals); returns their names."""
    names = []
    for n in EPOCH_VARIANTS:
        cls = with_epochs(base, n, namespace["__name__"])
        namespace[cls.__name__] = cls
        names.append(cls.__name__)
    return names

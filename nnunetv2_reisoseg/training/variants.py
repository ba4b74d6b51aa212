"""The one factory of trainer classes: ``variant`` makes a subclass that differs from its bases in a few attributes,
as nnU-Net's own variants do (``nnUNetTrainer_Xepochs``: one small class per training length). Every generated
trainer of the package comes from it: the ``<Trainer>_<N>epochs`` classes users name with ``-tr``, and the
benchmark's fixed-budget trainers."""
from __future__ import annotations

from collections.abc import Sequence

import torch

EPOCH_VARIANTS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)


def variant(bases: type | Sequence[type], name: str, module: str, class_attrs: dict | None = None,
            init_attrs: dict | None = None) -> type:
    """The trainer class ``name`` with ``bases`` (one class, or several in method resolution order): ``class_attrs``
    are class attributes, ``init_attrs`` are set on the instance after the bases' ``__init__`` (for what nnU-Net's
    ``__init__`` sets itself, such as ``num_epochs``). ``module`` is the module that will hold the class, where
    nnU-Net's lookup and pickling find it."""
    bases = (bases,) if isinstance(bases, type) else tuple(bases)
    after = dict(init_attrs or {})

    # nnU-Net records init arguments through locals(), so __init__ spells out its parameters
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,  # noqa: N807
                 device: torch.device = torch.device('cuda')):
        super(cls, self).__init__(plans, configuration, fold, dataset_json, device)
        for key, value in after.items():
            setattr(self, key, value)

    cls = type(name, bases, {**(class_attrs or {}), "__init__": __init__, "__module__": module,
                             "__qualname__": name})
    return cls


def epochs_name(base: type, num_epochs: int) -> str:
    """nnU-Net's naming of a training-length variant: ``<base>_1epoch``, ``<base>_5epochs``, ..."""
    return f"{base.__name__}_{num_epochs}epoch" + ("" if num_epochs == 1 else "s")


def add_epoch_variants(base: type, namespace: dict) -> list[str]:
    """Define every ``<base>_<N>epochs`` of nnU-Net's lengths in ``namespace`` (a trainer module's globals), so an
    equal-budget comparison with stock nnU-Net is one flag away; returns their names."""
    return add_variants(namespace, [(epochs_name(base, n), (base,), {}, {"num_epochs": n}) for n in EPOCH_VARIANTS])


def add_variants(namespace: dict, specs: Sequence[tuple[str, Sequence[type], dict, dict]]) -> list[str]:
    """Define ``variant(bases, name, module, class_attrs, init_attrs)`` for every ``(name, bases, class_attrs,
    init_attrs)`` of ``specs`` in ``namespace`` (a module's globals); returns their names."""
    names = []
    for name, bases, class_attrs, init_attrs in specs:
        namespace[name] = variant(bases, name, namespace["__name__"], class_attrs, init_attrs)
        names.append(name)
    return names

"""Every trainer class of the package, and its integration with nnU-Net: ``trainer.py`` (``nnUNetTrainerReIso``,
``nnUNetTrainerReIsoAux``), ``paper.py`` (``nnUNetTrainerReIsoSegNet``, the paper's network), ``controls.py``
(``nnUNetTrainerHalfLoss``, a control of the studies), ``budget.py`` (the benchmark's fixed-budget, self-timing
mixin) and ``variants.py``, the one factory of generated trainers (training lengths, benchmark budgets). The thin
modules that name them for nnU-Net's lookup are ``trainers/`` (users) and ``benchmark/trainers/`` (the benchmark).
Also export to and import from stock nnU-Net model folders, and the training progress plot."""

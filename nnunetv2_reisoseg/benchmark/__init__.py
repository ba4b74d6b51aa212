"""``reisoseg benchmark``: stock nnU-Net against ReIsoSeg, trained and evaluated side by side.

``presets`` (budgets, methods, trainer names), ``budget`` and ``trainers/`` (the fixed-budget trainers
the benchmark alone puts on ``nnUNet_extTrainer``), ``runner`` (dataset, plans, trainings, test
predictions), ``metrics`` (per case), ``stats`` (verdicts), ``report`` (report.md and plots).
"""

"""The benchmark's fixed-budget trainers; ``reisoseg benchmark`` puts this folder on ``nnUNet_extTrainer``
for the trainings it starts (users' ``reisoseg trainer-path`` does not include it)."""

"""Trainer classes nnU-Net discovers through ``nnUNet_extTrainer`` (``reisoseg trainer-path``)."""

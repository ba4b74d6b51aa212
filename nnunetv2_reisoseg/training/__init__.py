"""nnU-Net integration: ``nnUNetTrainerReIso`` (the hooks it overrides), export to and import from stock
nnU-Net model folders, and the training progress plot."""

"""The published ReIsoSeg encoder-decoder and ``nnUNetTrainerReIsoSegNet``, which trains it with nnU-Net."""

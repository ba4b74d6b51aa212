"""The published ReIsoSeg encoder-decoder; ``training/paper.py`` trains it with nnU-Net."""

"""Whole-volume prediction (``reisoseg predict-volume``): nnU-Net's sliding window over volumes larger than
memory, block by block, on the blockwise engine (``blockwise/``): ``grid`` (nnU-Net's tiles and which block owns
each), ``intensity`` (the streaming statistics pass and nnU-Net's normalisation), ``output`` (the OME-Zarr and the
run state beside it), ``blocks`` (the workers), ``pyramid`` and ``predict`` (the driver)."""

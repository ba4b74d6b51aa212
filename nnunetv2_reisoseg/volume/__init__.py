"""Whole-volume prediction (``reisoseg predict-volume``): nnU-Net's sliding window over volumes larger than
memory, block by block, in this process or on dask: ``grid`` (tiles and blocks), ``intensity`` (the streaming
statistics pass and nnU-Net's normalisation), ``output`` (OME-Zarr, settings, done markers), ``predict``."""

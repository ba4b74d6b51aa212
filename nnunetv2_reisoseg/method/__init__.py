"""ReIsoSeg's method: anisotropy arithmetic, building blocks, PI module, network wrapper, re-isotropic loss.

Independent of nnU-Net's trainer: the network wrapper takes any encoder that returns the list of skips
and a decoder that consumes it, which is what nnU-Net plans.
"""

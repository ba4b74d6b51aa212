"""The method's knobs, with the paper's values, defined here once. ``nnUNetTrainerReIso`` exposes each as a
class attribute of the same meaning and passes the network's through ``build_network_architecture`` (inference
rebuilds the network from the class alone); every default elsewhere refers to these."""

PI_REDUCTION = 4  # channel reduction inside the PI module (C -> C // 4)
ANI_WEIGHT = 0.5  # the paper's a: L = (1 - a) * L_iso + a * L_ani
LATERAL_DEGRADATION_P = 0.2  # probability of degrading one lateral axis like the section axis
# the scale s of the whole re-isotropic loss, s * ((1 - a) * L_iso + a * L_ani). The paper's is 1, which under
# SGD gives the deployed (anisotropic) branch a times stock nnU-Net's gradient; nnUNetTrainerReIsoAux uses
# 1 / a, so that the deployed branch keeps stock's loss and the isotropic branch is added on top
LOSS_SCALE = 1.0

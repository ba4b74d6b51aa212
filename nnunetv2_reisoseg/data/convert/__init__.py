"""``reisoseg convert``: label rules, downsampling and the nnU-Net raw dataset writer (volumes are read by
``nnunetv2_reisoseg.io.volumes``)."""
from nnunetv2_reisoseg.data.convert.dataset import ConvertOptions, Pair, choose_split_axis, convert
from nnunetv2_reisoseg.data.convert.errors import ConvertError
from nnunetv2_reisoseg.data.convert.labels import LabelRules
from nnunetv2_reisoseg.io.labels import CREMI_BACKGROUND

__all__ = ["CREMI_BACKGROUND", "ConvertError", "ConvertOptions", "LabelRules", "Pair", "choose_split_axis", "convert"]

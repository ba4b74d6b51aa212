"""``reisoseg convert``: readers of EM formats, label rules and the nnU-Net raw dataset writer."""
from nnunetv2_reisoseg.data.convert.dataset import Pair, choose_split_axis, convert
from nnunetv2_reisoseg.data.convert.labels import CREMI_BACKGROUND, LabelRules
from nnunetv2_reisoseg.data.convert.readers import ConvertError, Volume, read_volume

__all__ = ["CREMI_BACKGROUND", "ConvertError", "LabelRules", "Pair", "Volume", "choose_split_axis", "convert",
           "read_volume"]

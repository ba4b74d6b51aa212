"""Intensity statistics in one streaming pass, and nnU-Net's normalisation with them."""
import numpy as np
import pytest

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.volume.intensity import Normalizer, VolumeStats, check_scheme, nnunet_stats, stream_stats


def _volume():
    rng = np.random.default_rng(3)
    vol = np.zeros((13, 40, 30), np.uint8)
    vol[2:11, 5:37, 1:29] = rng.integers(1, 255, (9, 32, 28))  # a zero margin: nnU-Net crops it
    return vol


@pytest.mark.parametrize("slab", [1, 3, 13])
def test_streaming_statistics_match_numpy_and_nnunet(slab):
    vol = _volume()
    ours, ref = stream_stats(vol, slab), nnunet_stats(vol)
    assert ours.bbox == ref.bbox == ((2, 11), (5, 37), (1, 29)) and ours.count == ref.count
    crop = vol[roi.slices(ours.bbox)].astype(np.float64)
    assert ours.mean == pytest.approx(crop.mean(), rel=1e-12) and ours.std == pytest.approx(crop.std(), rel=1e-10)
    assert (ours.min, ours.max) == (crop.min(), crop.max())
    assert ours.mean == pytest.approx(ref.mean, rel=1e-6) and ours.std == pytest.approx(ref.std, rel=1e-5)


def test_zeros_inside_the_box_count_and_those_outside_do_not():
    vol = _volume()
    assert stream_stats(vol, 4).min == 1  # the zero margin is cropped, as nnU-Net does
    vol[5, 20, 10] = 0
    vol[3, 6, 2] = 255
    ours, ref = stream_stats(vol, 4), nnunet_stats(vol)
    assert (ours.min, ours.max) == (ref.min, ref.max) == (0, 255)


def test_all_zero_volume_has_no_box():
    assert stream_stats(np.zeros((4, 5, 6), np.uint8), 2).bbox is None


def test_zscore_is_nnunets_with_the_volumes_statistics():
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import ZScoreNormalization

    vol = _volume()
    stats = nnunet_stats(vol)
    crop = vol[roi.slices(stats.bbox)]
    ours = Normalizer("ZScoreNormalization", False, {}, stats)(crop)
    ref = ZScoreNormalization(use_mask_for_norm=False, intensityproperties={}).run(crop.astype(np.float32))
    assert ours.dtype == np.float32 and np.array_equal(ours, ref)  # whole image: nnU-Net's own numbers


def test_schemes_that_need_the_whole_image_are_refused():
    with pytest.raises(ValueError, match="nonzero mask"):
        check_scheme("ZScoreNormalization", True)
    with pytest.raises(ValueError, match="not supported blockwise"):
        check_scheme("MyNormalization", False)
    with pytest.raises(ValueError, match="not supported blockwise"):
        Normalizer("MyNormalization", False, {}, VolumeStats(None, 0, 0.0, 1.0, 0.0, 1.0))

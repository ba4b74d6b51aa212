"""The pyramid rule (issue 29): lateral halvings while the voxel gets closer to isotropic, then all axes; the
image averaged, labels by the first voxel of each window; built block by block, the same as the whole."""
import numpy as np
import zarr

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.volume import pyramid as pyr


def test_lateral_axes_first_until_about_isotropic_then_all_axes():
    levels = pyr.levels((100, 2000, 1800), (40.0, 5.0, 5.0), (64, 128, 128))
    assert [lv.spacing_nm for lv in levels] == [(40, 5, 5), (40, 10, 10), (40, 20, 20), (40, 40, 40), (80, 80, 80)]
    # until a section fits one chunk laterally (125 x 113 <= 128 x 128)
    assert [lv.shape for lv in levels] == [(100, 2000, 1800), (100, 1000, 900), (100, 500, 450), (100, 250, 225),
                                           (50, 125, 113)]
    # sections of 1.2 pixels are about isotropic already: all axes; a single section stays one
    assert [lv.factor for lv in pyr.levels((8, 300, 300), (12.0, 10.0, 10.0), (8, 128, 128))][1:] == [(2, 2, 2)] * 2
    assert [lv.shape for lv in pyr.levels((1, 300, 300), (10.0, 10.0, 10.0), (1, 128, 128))][1:] == \
        [(1, 150, 150), (1, 75, 75)]
    assert len(pyr.levels((8, 64, 64), (40.0, 4.0, 4.0), (8, 64, 64))) == 1  # fits one chunk: no pyramid


def test_downsampling_rules():
    x = np.arange(2 * 3 * 5, dtype=np.uint16).reshape(2, 3, 5)
    mean = pyr.downsample(x, (1, 2, 2), pyr.MEAN)
    assert mean.shape == (2, 2, 3) and mean.dtype == np.uint16
    assert mean[0, 0, 0] == np.rint(np.mean(x[0, :2, :2])) and mean[1, 1, 2] == x[1, 2, 4]  # partial window
    assert mean[0, 1, 0] == np.rint(np.mean(x[0, 2, :2]))
    assert np.array_equal(pyr.downsample(x, (2, 2, 2), pyr.NEAREST), x[::2, ::2, ::2])
    f = np.random.default_rng(0).random((4, 6, 6)).astype(np.float32)
    assert np.allclose(pyr.downsample(f, (2, 2, 2), pyr.MEAN), f.reshape(2, 2, 3, 2, 3, 2).mean((1, 3, 5)))


def test_blockwise_levels_equal_the_rule_on_the_whole(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 255, (9, 70, 61), dtype=np.uint8)
    store = tmp_path / "s.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.create_array("0", shape=vol.shape, chunks=(4, 16, 16), dtype=vol.dtype)[...] = vol
    levels = pyr.levels(vol.shape, (30.0, 10.0, 10.0), (4, 16, 16))
    assert len(levels) >= 3
    expected = vol
    for i, lv in enumerate(levels[1:], start=1):
        root.create_array(str(i), shape=lv.shape, chunks=(4, 16, 16), dtype=vol.dtype)
        task = pyr.plan_job(tmp_path / "state", store, "", i, pyr.MEAN, (4, 16, 16), lv)
        n = task.n_blocks
        assert n == len(roi.partition(lv.shape, [min(c, s) for c, s in zip((4, 16, 16), lv.shape)])) > 1
        for b in range(n):
            task.process(task.folder, b)
        assert task.markers.done() == set(range(n)) and task.markers.todo(n) == []
        expected = pyr.downsample(expected, lv.factor, pyr.MEAN)
        assert np.array_equal(root[str(i)][...], expected)

"""Objects across blocks (volume/instances.py) against connected components of the whole volume."""
from __future__ import annotations

import csv

import cc3d
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from nnunetv2_reisoseg.blockwise import components as inst
from nnunetv2_reisoseg.blockwise.tasks import TaskRunner

SPACING = (40.0, 10.0, 10.0)


def _labels(shape=(13, 29, 31), seed=0) -> np.ndarray:
    """Two classes of smooth blobs, many larger than the blocks used below, some touching only diagonally."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), (1.0, 2.0, 2.0))
    out = np.zeros(shape, np.uint8)
    out[field > 0.12] = 1
    out[field < -0.15] = 2
    out[rng.random(shape) < 0.01] = 1  # specks: single-voxel objects, many of them diagonal neighbours
    return out


def _store(tmp_path, data: np.ndarray, chunks) -> str:
    path = tmp_path / "labels.zarr"
    arr = zarr.create_array(store=str(path), shape=data.shape, chunks=chunks, dtype=data.dtype, zarr_format=2)
    arr[...] = data
    return str(path)


def _run(tmp_path, data, block, connectivity=26, min_size=0.0, mask=None, ignore=None, dest=True):
    source = _store(tmp_path, data, block)
    dest_path = None
    if dest:
        dest_path = str(tmp_path / "instances.zarr")
        zarr.create_array(store=dest_path, shape=data.shape, chunks=block, dtype=np.uint32, zarr_format=2)
    s = inst.InstanceSettings(source=source, shape=data.shape, block_shape=block, chunks=block, spacing_nm=SPACING,
                              connectivity=connectivity, min_size_nm3=min_size, mask=mask, ignore_label=ignore,
                              dest=dest_path)
    with TaskRunner(progress=False) as runner:
        objects = inst.label_volume(tmp_path / "work", s, runner)
    ids = np.asarray(zarr.open_array(dest_path, mode="r")[...]) if dest else None
    return objects, ids


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_blocks_smaller_than_objects_give_the_whole_volume_components(tmp_path, connectivity):
    data = _labels()
    whole = cc3d.connected_components(data, connectivity=connectivity)
    largest = np.bincount(whole.ravel())[1:].max()
    objects, ids = _run(tmp_path, data, (4, 8, 7), connectivity)
    assert largest > 4 * 8 * 7  # some objects span several blocks
    # raster order of first voxels, as cc3d numbers: the ids themselves are equal, not only the partition
    np.testing.assert_array_equal(ids, whole)
    stats = cc3d.statistics(whole)
    np.testing.assert_array_equal(objects.voxels, stats["voxel_counts"][1:])
    np.testing.assert_allclose(objects.centroid_nm, stats["centroids"][1:] * SPACING)
    lo = np.array([[sl.start for sl in b] for b in stats["bounding_boxes"][1:]])
    hi = np.array([[sl.stop for sl in b] for b in stats["bounding_boxes"][1:]])
    np.testing.assert_array_equal(objects.bbox_lo, lo)
    np.testing.assert_array_equal(objects.bbox_hi, hi)
    first = np.unique(whole, return_index=True)[1][1:]
    np.testing.assert_array_equal(objects.classes, data.ravel()[first])


def test_min_size_drops_small_objects_and_keeps_raster_order(tmp_path):
    data = _labels(seed=1)
    whole = cc3d.connected_components(data, connectivity=26)
    sizes = np.bincount(whole.ravel())
    min_vox = 5
    objects, ids = _run(tmp_path, data, (5, 10, 9), min_size=min_vox * float(np.prod(SPACING)))
    kept = cc3d.connected_components(np.where(sizes[whole] >= min_vox, data, 0), connectivity=26)
    kept = np.where(sizes[whole] >= min_vox, kept, 0)
    np.testing.assert_array_equal(ids, kept)
    assert objects.voxels.min() >= min_vox
    assert len(objects) == int((sizes[1:] >= min_vox).sum()) < int(whole.max())


def test_ignore_mask_and_objects_csv(tmp_path):
    data = _labels(seed=2)
    mask = np.zeros_like(data)
    mask[:, :, 14:17] = 9  # a wall of ignored voxels cuts objects in two
    m = tmp_path / "mask.zarr"
    zarr.create_array(store=str(m), shape=mask.shape, chunks=(4, 8, 7), dtype=mask.dtype, zarr_format=2)[...] = mask
    objects, _ = _run(tmp_path, data, (4, 8, 7), mask=str(m), ignore=9, dest=False)
    expected = cc3d.connected_components(np.where(mask == 9, 0, data), connectivity=26)
    assert len(objects) == expected.max()
    objects.write_csv(tmp_path / "objects.csv", {1: "mito", 2: "synapse"})
    rows = list(csv.DictReader((tmp_path / "objects.csv").read_text().splitlines()))
    assert [int(r["id"]) for r in rows] == list(range(1, len(objects) + 1))
    assert {r["class_name"] for r in rows} == {"mito", "synapse"}
    assert sum(int(r["voxels"]) for r in rows) == int((expected > 0).sum())


def test_continue_refuses_other_settings(tmp_path):
    data = _labels(seed=3)
    _run(tmp_path, data, (4, 8, 7), dest=False)
    s = inst.InstanceSettings(source=str(tmp_path / "labels.zarr"), shape=data.shape, block_shape=(4, 8, 7),
                              chunks=(4, 8, 7), spacing_nm=SPACING, connectivity=6)
    with TaskRunner(progress=False) as runner, pytest.raises(inst.InstanceError, match="connectivity: 26 -> 6"):
        inst.label_volume(tmp_path / "work", s, runner, cont=True)


def test_passes_resume_after_a_kill(tmp_path):
    data = _labels(seed=4)
    block = (4, 8, 7)
    (tmp_path / "a").mkdir()
    fresh, ids = _run(tmp_path / "a", data, block)
    # a run killed after some blocks of the first pass, with one block's ids written but not its marker
    b = tmp_path / "b"
    b.mkdir()
    source = _store(b, data, block)
    dest = str(b / "instances.zarr")
    zarr.create_array(store=dest, shape=data.shape, chunks=block, dtype=np.uint32, zarr_format=2)
    s = inst.InstanceSettings(source=source, shape=data.shape, block_shape=block, chunks=block, spacing_nm=SPACING,
                              dest=dest)
    inst.prepare_work(b / "work", s, cont=False)
    for i in range(5):
        inst.label_block(str(b / "work"), i)
    (b / "work" / inst.LABEL / "4").unlink()  # its marker: block 4 is redone
    (b / "work" / inst.LABEL / "4.npz").unlink()
    with TaskRunner(progress=False) as runner:
        resumed = inst.label_volume(b / "work", s, runner, cont=True)
    np.testing.assert_array_equal(np.asarray(zarr.open_array(dest, mode="r")[...]), ids)
    np.testing.assert_array_equal(resumed.voxels, fresh.voxels)


def test_the_faces_pass_reads_planes_not_the_ids_and_nothing_full_size_is_kept(tmp_path, monkeypatch):
    """Issue 29: the faces pass read its planes out of id chunks the size of a block (41 of 65 minutes on a
    1000x4096x4096 pair); it now reads the planes pass 1 kept, and a finished labelling keeps no full-size ids."""
    data = _labels(seed=5)
    real = inst._ids_array

    def ids_outside_faces(work, mode="r+"):
        import inspect

        assert "face_block" not in [f.function for f in inspect.stack()], "the faces pass read the ids"
        return real(work, mode)

    monkeypatch.setattr(inst, "_ids_array", ids_outside_faces)
    _, ids = _run(tmp_path, data, (4, 8, 7), 26)
    np.testing.assert_array_equal(ids, cc3d.connected_components(data, connectivity=26))
    assert not (tmp_path / "work" / "ids").exists() and not (tmp_path / "work" / "planes").exists()

"""The blockwise seeded watershed: the same objects as one skimage watershed of the whole volume where the halo
covers the objects, touching pairs split, and the passes resumable."""
import numpy as np
import zarr
from scipy import ndimage as ndi

from nnunetv2_reisoseg.blockwise import watershed as ws
from nnunetv2_reisoseg.blockwise.tasks import TaskRunner
from nnunetv2_reisoseg.data.instances import BOUNDARY, INTERIOR, boundary_targets
from nnunetv2_reisoseg.evaluation.evaluate import evaluate_instances

SPACING = (40.0, 10.0, 10.0)


def _truth(shape=(12, 60, 64), seed=0) -> np.ndarray:
    """Instance truth: touching pairs of boxes and lone ellipsoids, apart from each other."""
    rng = np.random.default_rng(seed)
    ids = np.zeros(shape, np.uint32)
    k = 1
    for y0 in (3, 33):
        for x0 in (3, 34):
            z0 = int(rng.integers(1, 4))
            if (y0 + x0) % 2:  # a pair touching along x
                ids[z0:z0 + 6, y0:y0 + 20, x0:x0 + 12], ids[z0:z0 + 6, y0:y0 + 20, x0 + 12:x0 + 26] = k, k + 1
                k += 2
            else:
                zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
                ids[((zz - z0 - 3) / 3) ** 2 + ((yy - y0 - 10) / 9) ** 2 + ((xx - x0 - 12) / 11) ** 2 <= 1] = k
                k += 1
    return ids


def _probabilities(ids: np.ndarray, seed: int = 1) -> np.ndarray:
    """What a model trained on boundary targets might say: smoothed one-hot targets with noise, no ties."""
    t = boundary_targets(ids, SPACING, 10.0)
    rng = np.random.default_rng(seed)
    p = np.stack([ndi.gaussian_filter((t == c).astype(np.float64), (0.5, 1.5, 1.5)) for c in range(3)])
    p += rng.uniform(0, 0.05, p.shape)
    return (p / p.sum(0)).astype(np.float16)


def _whole(p: np.ndarray, s: ws.WatershedSettings) -> np.ndarray:
    """One watershed of the whole volume with the same rules (seeds by cc3d, small ones dropped)."""
    import cc3d
    from skimage.segmentation import watershed

    p = p.astype(np.float32)
    seeds = (p[list(s.interior)].sum(0) > s.seed_threshold) & (p[s.boundary] < s.boundary_threshold)
    markers = cc3d.connected_components(seeds, connectivity=26)
    sizes = np.bincount(markers.ravel())
    markers[sizes[markers] * np.prod(SPACING) < s.min_seed_nm3] = 0
    fg = 1.0 - p[s.background]
    mask = fg > s.foreground_threshold
    return watershed(-fg, markers=np.where(mask, markers, 0), mask=mask)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """The same objects, whatever their numbers."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (pairs[0] == 0).sum() <= 1 and len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


def _run(tmp_path, p: np.ndarray, block=(6, 20, 20), halo_nm=300.0, min_seed=20_000.0):
    store = zarr.open_group(str(tmp_path / "p.zarr"), mode="w", zarr_format=2)
    store.create_array("probabilities", shape=p.shape, chunks=(3, *block), dtype=p.dtype)[...] = p
    s = ws.WatershedSettings(probabilities=str(tmp_path / "p.zarr" / "probabilities"), background=0, interior=(1,),
                             boundary=2, shape=p.shape[1:], block_shape=block, chunks=block, spacing_nm=SPACING,
                             halo_nm=halo_nm, min_seed_nm3=min_seed)
    with TaskRunner(progress=False) as runner:
        spec = ws.grow(tmp_path / "work", s, runner)
    path, key = spec.rsplit(":", 1)
    return np.asarray(zarr.open_group(path, mode="r")[key][...]), s


def test_blocks_equal_one_watershed_of_the_whole_where_the_halo_covers_the_objects(tmp_path):
    truth = _truth()
    p = _probabilities(truth)
    grown, s = _run(tmp_path, p)
    whole = _whole(p, s)
    assert s.halo == (8, 30, 30)  # 300 nm: more than any object's extent from the blocks' edges
    assert _same_partition(grown, whole)
    assert len(np.unique(grown)) - 1 == len(np.unique(truth)) - 1 == 6  # every touching pair split
    import cc3d

    assert cc3d.connected_components(p[0] < 0.5, connectivity=26).max() == 4  # components merge each pair
    scored = evaluate_instances(grown, truth, SPACING)["1"]  # the watershed splits it, as the instance truth
    assert scored["merged_objects"] == scored["split_objects"] == 0 and scored["ap50"] == 1.0
    assert (boundary_targets(truth, SPACING, 10.0) == INTERIOR).sum() > (boundary_targets(truth, SPACING, 10.0)
                                                                         == BOUNDARY).sum() > 0


def test_a_killed_grow_pass_resumes_from_its_markers(tmp_path):
    from nnunetv2_reisoseg.blockwise import roi

    truth = _truth(seed=2)
    p = _probabilities(truth, seed=3)
    full, s = _run(tmp_path, p)
    assert len(np.unique(full)) - 1 == len(np.unique(truth)) - 1
    # as if killed in the middle of the grow pass: three blocks without their marker and their chunks
    work = tmp_path / "work"
    grown = zarr.open_array(str(work / ws.SCRATCH / ws.GROWN), mode="r+")
    for i in (0, 3, 5):
        (work / ws.GROWN / str(i)).unlink()
        grown[roi.slices(s.blocks[i].write)] = 0
    again, _ = _run(tmp_path, p)
    assert np.array_equal(full, again)

"""The tile arithmetic of predict-volume (volume/grid.py), without a network: every tile has one owner, and
the sums each block receives over its border are exactly the tiles that cover it."""
from __future__ import annotations

import numpy as np
import pytest

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.volume import grid as g

CASES = [  # volume, nnU-Net's crop (input axes), patch (network axes), block, transpose_forward
    ((24, 80, 70), ((0, 24), (7, 80), (0, 70)), (16, 48, 48), (8, 32, 32), (0, 1, 2)),  # blocks < patch
    ((10, 50, 60), ((0, 10), (0, 50), (3, 60)), (16, 32, 32), (4, 16, 24), (0, 2, 1)),  # padding, transposed
    ((40, 200, 200), ((0, 40), (0, 200), (0, 200)), (20, 64, 64), (20, 96, 96), (0, 1, 2)),
]


def _coverage(boxes, shape) -> np.ndarray:
    n = np.zeros(shape, int)
    for b in boxes:
        n[roi.slices(b)] += 1
    return n


@pytest.mark.parametrize("shape,crop,patch,block,tf", CASES)
def test_every_tile_once_and_border_sums_complete(shape, crop, patch, block, tf):
    grid = g.TileGrid(g.to_network(crop, tf), patch, 0.5)
    layout = g.Layout(grid, shape, block, tf)
    plans = [layout.plan(i) for i in range(len(layout.boxes))]
    owned = [t for p in plans for t in p.tiles]
    assert sorted(owned) == sorted(grid.tiles())  # a partition of nnU-Net's tiles
    for p in plans:
        assert list(p.tiles) == [t for t in grid.tiles() if t in set(p.tiles)]  # in nnU-Net's order
    everyone = _coverage(grid.tiles(), grid.padded_shape)
    for p in plans:
        if p.write is None:
            continue
        received = np.zeros(grid.padded_shape, int)
        for q in plans:
            own = _coverage(q.tiles, grid.padded_shape)
            for target, box in q.pieces:
                if target == p.index:
                    received[roi.slices(box)] += own[roi.slices(box)]
        border = _coverage(p.border, grid.padded_shape).astype(bool)
        assert (received[border] == everyone[border]).all()  # every tile over the border, once
        assert (received[~border] == 0).all()
        if p.interior is not None:
            own = _coverage(p.tiles, grid.padded_shape)
            assert (own[roi.slices(p.interior)] == everyone[roi.slices(p.interior)]).all()


def test_halo_recomputation_costs_more_than_owned_tiles():
    shape, patch = (1000, 4096, 4096), (48, 224, 192)
    grid = g.TileGrid(tuple((0, s) for s in shape), patch, 0.5)
    block = g.block_shape(shape, patch, g.default_chunks(shape))
    layout = g.Layout(grid, shape, block, (0, 1, 2))
    assert sum(len(layout.plan(i).tiles) for i in range(len(layout.boxes))) == len(grid.tiles())
    assert g.recomputed_overhead(grid, shape, block, (0, 1, 2)) > 1.3


def test_box_difference():
    outer, inner = ((0, 10), (0, 8), (0, 6)), ((2, 7), (0, 8), (1, 5))
    parts = roi.box_difference(outer, inner)
    cover = _coverage(parts, (10, 8, 6)) + _coverage([inner], (10, 8, 6))
    assert (cover == 1).all() and len(parts) == 4


@pytest.mark.parametrize("shape,patch,step", [((20, 70, 50), (8, 32, 32), 0.5), ((8, 33, 33), (8, 32, 32), 0.25),
                                              ((5, 10, 64), (8, 32, 32), 0.5)])
def test_tile_grid_is_nnunets_sliding_window(shape, patch, step):
    """Padding and tile starts as nnU-Net's pad_nd_image and compute_steps_for_sliding_window: the tiles cover
    the padded volume, start at 0 and end at its far edge, in nnU-Net's order."""
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    bbox = tuple((0, s) for s in shape)
    grid = g.TileGrid(bbox, patch, step)
    _, pad = pad_nd_image(np.zeros((1, *shape), np.float32), patch, "constant", None, True)
    assert grid.pad_below == tuple(sl.start for sl in pad[1:])
    assert grid.starts() == compute_steps_for_sliding_window(grid.padded_shape, patch, step)
    tiles = grid.tiles()
    assert len(tiles) == np.prod([len(s) for s in grid.starts()])
    covered = np.zeros(grid.padded_shape, bool)
    for t in tiles:
        covered[roi.slices(t)] = True
    assert covered.all()
    region = ((2, 4), (10, 12), (5, 6))
    assert grid.tiles_for(region) == [t for t in tiles if roi.intersect(t, region) is not None]


def test_blocks_partition_the_volume_in_whole_chunks():
    shape, chunks = (37, 300, 129), g.default_chunks((37, 300, 129))
    assert chunks == (37, 256, 129)
    block = g.block_shape(shape, (8, 32, 32), chunks)
    assert all(b % c == 0 or b >= n for b, c, n in zip(block, chunks, shape))
    hits = np.zeros(shape, np.int32)
    for box in roi.partition(shape, block):
        hits[roi.slices(box)] += 1
    assert (hits == 1).all()
    assert g.block_shape(shape, (8, 32, 32), (8, 16, 16), requested=(10, 20, 20)) == (16, 32, 32)


def test_split_box_bounds_every_piece_and_covers_the_box():
    box = ((3, 40), (0, 10), (5, 15))
    pieces = roi.split_box(box, 250)
    assert all(np.prod(roi.size(p)) <= 250 for p in pieces)
    assert sum(np.prod(roi.size(p)) for p in pieces) == np.prod(roi.size(box))
    assert pieces[0][0][0] == 3 and pieces[-1][0][1] == 40
    assert len(roi.split_box(box, 1)) == 37  # at least one plane each

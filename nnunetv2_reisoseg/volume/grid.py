"""The arithmetic of blockwise prediction: nnU-Net's sliding-window tile grid over the whole volume, the
blocks that partition the output, and which tiles each block needs.

Spaces (all boxes are per-axis half-open ``(lo, hi)`` pairs):

- *input space*: the axes of the stored volume (Z, Y, X);
- *network space*: the input axes in the order ``transpose_forward`` puts them (axis ``i`` of the network
  is input axis ``transpose_forward[i]``);
- *padded space*: network space cropped to the bounding box of nonzero voxels (as nnU-Net crops) and padded
  up to the patch size where it is smaller (as ``pad_nd_image`` pads: the larger half above). nnU-Net's
  tiles live here.

Blocks are boxes of input space aligned with the output chunks, so that each block writes whole chunks of
its own. A block's voxels get exactly the tiles nnU-Net would give them, in nnU-Net's order.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Box = tuple[tuple[int, int], ...]


def tile_starts(shape: Sequence[int], patch: Sequence[int], step_size: float) -> list[list[int]]:
    """Start of every tile along every axis: nnU-Net's ``compute_steps_for_sliding_window``."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    return compute_steps_for_sliding_window(tuple(int(s) for s in shape), tuple(int(p) for p in patch), step_size)


def padding(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """Voxels ``pad_nd_image`` adds below the content on each axis to reach the patch size."""
    return tuple(max(0, p - s) // 2 for s, p in zip(shape, patch))


def intersect(a: Box, b: Box) -> Box | None:
    out = tuple((max(x0, y0), min(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b))
    return out if all(lo < hi for lo, hi in out) else None


def shift(box: Box, offset: Sequence[int]) -> Box:
    return tuple((lo + o, hi + o) for (lo, hi), o in zip(box, offset))


def to_network(box: Box, transpose_forward: Sequence[int]) -> Box:
    return tuple(box[a] for a in transpose_forward)


def to_input(box: Box, transpose_forward: Sequence[int]) -> Box:
    out: list = [None] * len(box)
    for i, a in enumerate(transpose_forward):
        out[a] = box[i]
    return tuple(out)


def slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(lo, hi) for lo, hi in box)


def size(box: Box) -> tuple[int, ...]:
    return tuple(hi - lo for lo, hi in box)


@dataclass(frozen=True)
class TileGrid:
    """nnU-Net's sliding window over a volume cropped to ``bbox`` (network space)."""

    bbox: Box  # network space: the bounding box of nonzero voxels, nnU-Net's crop
    patch: tuple[int, ...]
    step_size: float

    @property
    def cropped_shape(self) -> tuple[int, ...]:
        return size(self.bbox)

    @property
    def pad_below(self) -> tuple[int, ...]:
        return padding(self.cropped_shape, self.patch)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        return tuple(max(s, p) for s, p in zip(self.cropped_shape, self.patch))

    def starts(self) -> list[list[int]]:
        return tile_starts(self.padded_shape, self.patch, self.step_size)

    def tiles(self) -> list[Box]:
        """Every tile, in nnU-Net's order (first axis outermost)."""
        return [tuple((s, s + p) for s, p in zip(start, self.patch)) for start in itertools.product(*self.starts())]

    def tiles_for(self, region: Box) -> list[Box]:
        """The tiles (padded space, nnU-Net's order) that touch ``region`` (padded space)."""
        per_axis = [[s for s in starts if s < hi and s + p > lo]
                    for starts, p, (lo, hi) in zip(self.starts(), self.patch, region)]
        return [tuple((s, s + p) for s, p in zip(start, self.patch)) for start in itertools.product(*per_axis)]

    def padded_from_network(self, box: Box) -> Box:
        return shift(box, [pb - lo for pb, (lo, _) in zip(self.pad_below, self.bbox)])

    def network_from_padded(self, box: Box) -> Box:
        return shift(box, [lo - pb for pb, (lo, _) in zip(self.pad_below, self.bbox)])


def default_chunks(shape: Sequence[int], chunk: Sequence[int] = (64, 256, 256)) -> tuple[int, ...]:
    """Output chunks: at most ``chunk`` (a few MB of labels, what EM viewers read well), at most the volume."""
    return tuple(max(1, min(int(s), int(c))) for s, c in zip(shape, chunk))


def block_shape(volume_shape: Sequence[int], patch_input: Sequence[int], chunks: Sequence[int],
                requested: Sequence[int] | None = None, patches_per_block: int = 6) -> tuple[int, ...]:
    """Block size in input space: ``requested`` or ``patches_per_block`` patches per axis, rounded up to whole
    chunks and capped at the volume (rounded up to whole chunks too)."""
    want = requested if requested is not None else [p * patches_per_block for p in patch_input]
    out = []
    for n, w, c in zip(volume_shape, want, chunks):
        w = max(1, min(int(w), int(n)))
        out.append(math.ceil(w / c) * c)
    return tuple(out)


def blocks(volume_shape: Sequence[int], block: Sequence[int]) -> list[Box]:
    """The blocks that partition the volume (input space), in C order; the last ones may be smaller."""
    ranges = [[(lo, min(lo + b, n)) for lo in range(0, n, b)] for n, b in zip(volume_shape, block)]
    return [tuple(r) for r in itertools.product(*ranges)]


@dataclass(frozen=True)
class BlockPlan:
    """What one block computes: its box (input space), the part inside nnU-Net's crop (padded space, None when
    the block holds no nonzero voxel), the tiles that touch that part, and the region to read for them."""

    index: int
    box: Box
    write: Box | None  # padded space
    tiles: tuple[Box, ...]
    read: Box | None  # padded space: the union of the tiles


def plan_block(index: int, box: Box, grid: TileGrid, transpose_forward: Sequence[int]) -> BlockPlan:
    inside = intersect(to_network(box, transpose_forward), grid.bbox)
    if inside is None:
        return BlockPlan(index, box, None, (), None)
    write = grid.padded_from_network(inside)
    tiles = grid.tiles_for(write)
    read = tuple((min(t[a][0] for t in tiles), max(t[a][1] for t in tiles)) for a in range(len(write)))
    return BlockPlan(index, box, write, tuple(tiles), read)


def overlap_overhead(grid: TileGrid, volume_shape: Sequence[int], block: Sequence[int],
                     transpose_forward: Sequence[int]) -> float:
    """Tile predictions the blocks make together, per tile of nnU-Net's whole-volume sliding window: the
    compute overhead of the block overlap (1.0: none)."""
    total = sum(len(plan_block(i, b, grid, transpose_forward).tiles) for i, b in enumerate(blocks(volume_shape, block)))
    return total / max(1, len(grid.tiles()))


def iter_slabs(shape: Sequence[int], chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges along the first axis, ``chunk_rows`` at a time: how the statistics pass streams."""
    for lo in range(0, int(shape[0]), max(1, int(chunk_rows))):
        yield lo, min(lo + chunk_rows, int(shape[0]))

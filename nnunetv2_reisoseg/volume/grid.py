"""The arithmetic of blockwise prediction: nnU-Net's sliding-window tile grid over the whole volume, the
blocks that partition the output, and which block owns (predicts) each tile.

Spaces (all boxes are per-axis half-open ``(lo, hi)`` pairs):

- *input space*: the axes of the stored volume (Z, Y, X);
- *network space*: the input axes in the order ``transpose_forward`` puts them (axis ``i`` of the network
  is input axis ``transpose_forward[i]``);
- *padded space*: network space cropped to the bounding box of nonzero voxels (as nnU-Net crops) and padded
  up to the patch size where it is smaller (as ``pad_nd_image`` pads: the larger half above). nnU-Net's
  tiles live here.

Blocks are boxes of input space aligned with the output chunks, so that each block writes whole chunks of
its own. Every voxel gets exactly the tiles nnU-Net would give it; each tile is predicted by one block.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from nnunetv2_reisoseg.blockwise.roi import Box, box_difference, intersect, partition, shift, size


def tile_starts(shape: Sequence[int], patch: Sequence[int], step_size: float) -> list[list[int]]:
    """Start of every tile along every axis: nnU-Net's ``compute_steps_for_sliding_window``."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    return compute_steps_for_sliding_window(tuple(int(s) for s in shape), tuple(int(p) for p in patch), step_size)


def padding(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """Voxels ``pad_nd_image`` adds below the content on each axis to reach the patch size."""
    return tuple(max(0, p - s) // 2 for s, p in zip(shape, patch))


def to_network(box: Box, transpose_forward: Sequence[int]) -> Box:
    return tuple(box[a] for a in transpose_forward)


def to_input(box: Box, transpose_forward: Sequence[int]) -> Box:
    out: list = [None] * len(box)
    for i, a in enumerate(transpose_forward):
        out[a] = box[i]
    return tuple(out)


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


@dataclass(frozen=True)
class BlockPlan:
    """What one block computes. Each of nnU-Net's tiles is owned by the one block that holds its centre, so
    every tile is predicted once. A block sums its tiles over their union (``read``); where only its own
    tiles reach (``interior``) that sum is nnU-Net's, in nnU-Net's order, and becomes labels at once. The
    rest of its sums go to the blocks they fall in (``pieces``), which add up every block's pieces over
    their borders (write region minus interior) in a second pass.

    ``box`` is input space; the rest is padded space. ``write`` is None when the block holds no voxel of
    nnU-Net's crop; ``read`` and ``interior`` are None when it owns no tile / no voxel only its tiles reach."""

    index: int
    box: Box
    write: Box | None
    tiles: tuple[Box, ...]
    read: Box | None
    interior: Box | None
    pieces: tuple[tuple[int, Box], ...]  # (block that receives the sums, padded box)

    @property
    def border(self) -> list[Box]:
        """The write region outside the interior: where other blocks' tiles reach too."""
        if self.write is None:
            return []
        return [self.write] if self.interior is None else box_difference(self.write, self.interior)


@dataclass(frozen=True)
class Layout:
    """The blocks of a volume over nnU-Net's tile grid: which block owns each tile, and every block's plan."""

    grid: TileGrid
    volume_shape: tuple[int, ...]  # input space
    block: tuple[int, ...]  # input space
    transpose_forward: tuple[int, ...]

    @property
    def boxes(self) -> list[Box]:
        return partition(self.volume_shape, self.block)

    def _block_along(self, axis: int, x: int) -> int:
        """Block index along network axis ``axis`` of padded coordinate ``x``."""
        g = self.grid
        return (x - g.pad_below[axis] + g.bbox[axis][0]) // self.block[self.transpose_forward[axis]]

    def owners(self, axis: int) -> list[int]:
        """Per tile start along network axis ``axis``: the block index (along that axis) that owns the tile, the
        one holding its centre, clamped into the crop (padding is nobody's)."""
        g = self.grid
        lo, hi = g.pad_below[axis], g.pad_below[axis] + g.cropped_shape[axis] - 1
        return [self._block_along(axis, min(max(s + g.patch[axis] // 2, lo), hi)) for s in g.starts()[axis]]

    def write_region(self, box: Box) -> Box | None:
        inside = intersect(to_network(box, self.transpose_forward), self.grid.bbox)
        return None if inside is None else self.grid.padded_from_network(inside)

    def blocks_touching(self, region: Box) -> list[int]:
        """Indices of the blocks whose box meets ``region`` (padded space), in C order."""
        inside = intersect(self.grid.network_from_padded(region), self.grid.bbox)
        if inside is None:
            return []
        box = to_input(inside, self.transpose_forward)
        n_blocks = [math.ceil(n / b) for n, b in zip(self.volume_shape, self.block)]
        ranges = [range(lo // b, (hi - 1) // b + 1) for (lo, hi), b in zip(box, self.block)]
        return [int(sum(k * math.prod(n_blocks[a + 1:]) for a, k in enumerate(idx)))
                for idx in itertools.product(*ranges)]

    def plan(self, index: int) -> BlockPlan:
        g, tf = self.grid, self.transpose_forward
        box = self.boxes[index]
        write = self.write_region(box)
        if write is None:
            return BlockPlan(index, box, None, (), None, None, ())
        mine = [box[tf[i]][0] // self.block[tf[i]] for i in range(len(box))]
        starts, owners = g.starts(), [self.owners(i) for i in range(len(box))]
        own = [[s for s, o in zip(starts[i], owners[i]) if o == mine[i]] for i in range(len(box))]
        tiles = tuple(tuple((s, s + p) for s, p in zip(start, g.patch)) for start in itertools.product(*own))
        read = tuple((min(o), max(o) + p) for o, p in zip(own, g.patch)) if tiles else None
        interior = []
        for i, (lo, hi) in enumerate(write):
            # voxels of this axis reached by tiles of this block only
            only = [x for x in range(lo, hi) if all(o == mine[i] for s, o in zip(starts[i], owners[i])
                                                    if s <= x < s + g.patch[i])]
            interior.append((only[0], only[-1] + 1) if only else None)
        inner = None if any(r is None for r in interior) else tuple(interior)
        pieces = []
        if read is not None:
            for j in self.blocks_touching(read):
                target = self.write_region(self.boxes[j])
                if target is None or intersect(target, read) is None:
                    continue
                parts = [target] if j != index else ([write] if inner is None else box_difference(write, inner))
                pieces += [(j, b) for b in (intersect(part, read) for part in parts) if b is not None]
        return BlockPlan(index, box, write, tiles, read, inner, tuple(pieces))


def finish_after(plans: Sequence[BlockPlan]) -> dict[int, set[int]]:
    """For every block, the blocks whose pass 1 must be complete before its pass 2 can run: itself and every
    block that hands it a piece of its sums. Once its pass 2 is done, nothing reads its pieces again."""
    after = {p.index: {p.index} for p in plans}
    for p in plans:
        for j, _ in p.pieces:
            after[j].add(p.index)
    return after


def recomputed_overhead(grid: TileGrid, volume_shape: Sequence[int], block: Sequence[int],
                        transpose_forward: Sequence[int]) -> float:
    """Tile predictions per tile of nnU-Net's whole-volume window if each block predicted every tile that
    touches it, as blockwise tools with a halo do (and predict-volume did before tiles had owners)."""
    total = 0
    for b in partition(volume_shape, block):
        inside = intersect(to_network(b, transpose_forward), grid.bbox)
        total += len(grid.tiles_for(grid.padded_from_network(inside))) if inside is not None else 0
    return total / max(1, len(grid.tiles()))

"""Boxes of voxels and the blocks of a volume, the coordinates every blockwise pass hands its workers.

A box is a per-axis half-open ``(lo, hi)`` tuple (``Box``), with the arithmetic of boxes here. A ``Block`` is one
block of a volume in daisy's terms: the box it writes (whole chunks of its own, so that no two workers write the
same chunk) and the box it reads, its write box grown by a halo and clipped to the volume (the context a pass such
as a watershed needs around it; none for the labelling and table passes, which read exactly what they write).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Box = tuple[tuple[int, int], ...]


def intersect(a: Box, b: Box) -> Box | None:
    out = tuple((max(x0, y0), min(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b))
    return out if all(lo < hi for lo, hi in out) else None


def shift(box: Box, offset: Sequence[int]) -> Box:
    return tuple((lo + o, hi + o) for (lo, hi), o in zip(box, offset))


def slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(lo, hi) for lo, hi in box)


def size(box: Box) -> tuple[int, ...]:
    return tuple(hi - lo for lo, hi in box)


def box_difference(outer: Box, inner: Box) -> list[Box]:
    """Disjoint boxes that cover ``outer`` minus ``inner`` (``inner`` inside ``outer``): at most 2 per axis."""
    out, rest = [], list(outer)
    for a, (lo, hi) in enumerate(inner):
        if rest[a][0] < lo:
            out.append(tuple((rest[a][0], lo) if i == a else rest[i] for i in range(len(rest))))
        if hi < rest[a][1]:
            out.append(tuple((hi, rest[a][1]) if i == a else rest[i] for i in range(len(rest))))
        rest[a] = (lo, hi)
    return out


def split_box(box: Box, max_voxels: int) -> list[Box]:
    """``box`` cut along its first axis into boxes of at most ``max_voxels`` (at least one plane each)."""
    plane = math.prod(size(box)[1:])
    step = max(1, max_voxels // max(1, plane))
    (lo, hi), rest = box[0], tuple(box[1:])
    return [((z, min(z + step, hi)), *rest) for z in range(lo, hi, step)]


def partition(volume_shape: Sequence[int], block: Sequence[int]) -> list[Box]:
    """The blocks that partition the volume (input space), in C order; the last ones may be smaller."""
    ranges = [[(lo, min(lo + b, n)) for lo in range(0, n, b)] for n, b in zip(volume_shape, block)]
    return [tuple(r) for r in itertools.product(*ranges)]


@dataclass(frozen=True)
class Block:
    """One block of a volume: its index in C order, the box it writes and the box it reads (write + halo)."""

    index: int
    write: Box
    read: Box

    @property
    def in_read(self) -> tuple[slice, ...]:
        """Where the write box lies inside an array of the read box."""
        return slices(shift(self.write, [-lo for lo, _ in self.read]))


def blocks(volume_shape: Sequence[int], block: Sequence[int], halo: Sequence[int] = (0, 0, 0)) -> list[Block]:
    """The blocks that partition the volume (``partition``), each reading ``halo`` voxels more on every side
    within the volume."""
    out = []
    for i, box in enumerate(partition(volume_shape, block)):
        read = tuple((max(0, lo - h), min(n, hi + h)) for (lo, hi), h, n in zip(box, halo, volume_shape))
        out.append(Block(i, box, read))
    return out


def block_grid(volume_shape: Sequence[int], block: Sequence[int]) -> tuple[int, ...]:
    """Blocks along each axis."""
    return tuple(math.ceil(n / b) for n, b in zip(volume_shape, block))


def iter_slabs(shape: Sequence[int], chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges along the first axis, ``chunk_rows`` at a time: how the statistics pass streams."""
    for lo in range(0, int(shape[0]), max(1, int(chunk_rows))):
        yield lo, min(lo + chunk_rows, int(shape[0]))

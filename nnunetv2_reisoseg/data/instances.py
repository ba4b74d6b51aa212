"""Instance ids as nnU-Net can train them: boundary targets that separate touching objects, ids downsampled by
majority, and how many objects touch another.

Boundary targets are three classes, 0 background, 1 interior and 2 boundary (the MitoEM 2.0 baseline's; the "BC"
targets of pytorch_connectomics as classes). On an anisotropic stack the contour is drawn per section: a voxel is
boundary where a voxel of another id, or background, lies within the boundary's thickness in its own section. A
3D contour one section thick would make a mitochondrion that spans 2-4 sections all boundary; across sections only
a contact between two different ids is boundary (both voxels), not an object's own top or bottom face.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def section_axis(spacing_nm: Sequence[float]) -> int:
    """The coarsest axis (the section axis of serial-section EM; the first on ties)."""
    return int(np.argmax(spacing_nm))


def boundary_targets(ids: np.ndarray, spacing_nm: Sequence[float], thickness_nm: float) -> np.ndarray:
    """0 background, 1 interior, 2 boundary (uint8) from object ids (0 background) on a grid of ``spacing_nm``:
    the in-plane contour is ``thickness_nm`` wide inside each object (at least one pixel), plus the voxels of two
    different ids that meet across sections."""
    if thickness_nm <= 0:
        raise ValueError(f"the boundary thickness must be > 0 nm, got {thickness_nm}")
    axis = section_axis(spacing_nm)
    # a disk of the thickness in each section: its radius in pixels along the two in-plane axes
    radii = [0 if a == axis else max(1, round(thickness_nm / spacing_nm[a])) for a in range(3)]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    footprint = sum((g / max(r, 1)) ** 2 for g, r in zip(grids, radii)) <= 1.0 + 1e-9
    hi = ndi.maximum_filter(ids, footprint=footprint, mode="nearest")
    lo = ndi.minimum_filter(ids, footprint=footprint, mode="nearest")
    fg = ids != 0
    edge = fg & (hi != lo)  # another id or background within the thickness, in the same section
    a = [slice(None)] * 3
    b = [slice(None)] * 3
    a[axis], b[axis] = slice(None, -1), slice(1, None)
    below, above = ids[tuple(a)], ids[tuple(b)]
    contact = (below != above) & (below != 0) & (above != 0)
    edge[tuple(a)] |= contact
    edge[tuple(b)] |= contact
    out = fg.astype(np.uint8)
    out[edge] = BOUNDARY
    return out


def downsample_ids(ids: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """The most frequent value of each block of ``factors`` (background included; a tie to the larger value);
    ``ids``' shape must be a multiple of ``factors``."""
    shape = tuple(v for n, f in zip(ids.shape, factors) for v in (n // f, f))
    blocks = ids.reshape(shape).transpose(0, 2, 4, 1, 3, 5).reshape(-1, int(np.prod(factors)))
    counts = np.stack([(blocks == blocks[:, [j]]).sum(1) for j in range(blocks.shape[1])], axis=1)
    out = np.where(counts == counts.max(1, keepdims=True), blocks, 0).max(1)  # ids >= 0: 0 never wins a tie
    return out.reshape([n // f for n, f in zip(ids.shape, factors)]).astype(ids.dtype)


def touching_ids(ids: np.ndarray) -> set[int]:
    """The ids of the objects that touch (26-neighbourhood) an object of another id."""
    found: set[int] = set()
    offsets = [d for d in itertools.product((-1, 0, 1), repeat=3) if d > (0, 0, 0)]  # each pair of neighbours once
    for d in offsets:
        here = tuple(slice(max(0, -k), ids.shape[a] - max(0, k)) for a, k in enumerate(d))
        there = tuple(slice(max(0, k), ids.shape[a] - max(0, -k)) for a, k in enumerate(d))
        x, y = ids[here], ids[there]
        hit = (x != y) & (x != 0) & (y != 0)
        found.update(np.unique(x[hit]).tolist())
        found.update(np.unique(y[hit]).tolist())
    return found

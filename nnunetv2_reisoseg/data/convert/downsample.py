"""Integer downsampling of converted blocks, to bring a large EM stack to a size a CPU can train.

Images by block mean, labels by majority vote per block. A tie goes to the higher class, so that thin
foreground is not lost to background on a tie; voxels nnU-Net should ignore win only with a strict
majority over every class.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _blocks(shape: Sequence[int], factors: Sequence[int]) -> tuple[int, ...]:
    """(Z', fz, Y', fy, X', fx) for a shape that is a multiple of ``factors``."""
    return tuple(v for n, f in zip(shape, factors) for v in (n // f, f))


def downsample_image(block: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Block mean (float32); ``block``'s shape must be a multiple of ``factors``."""
    return block.astype(np.float32).reshape(_blocks(block.shape, factors)).mean(axis=(1, 3, 5))


def downsample_labels(classes: np.ndarray, ignore: np.ndarray, factors: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Majority class per block (ties to the higher class) and the blocks that are mostly ignore."""
    shape = _blocks(classes.shape, factors)
    best = np.zeros(tuple(n // f for n, f in zip(classes.shape, factors)), np.int64)
    best_count = np.full(best.shape, -1, np.int64)
    for c in range(int(classes.max(initial=0)) + 1):  # ascending, >= : a tie goes to the higher class
        count = ((classes == c) & ~ignore).reshape(shape).sum(axis=(1, 3, 5))
        take = count >= best_count
        best[take], best_count[take] = c, count[take]
    ignored = ignore.reshape(shape).sum(axis=(1, 3, 5)) > best_count
    return best, ignored

"""Normalisation of a volume too large to hold: one streaming pass for nnU-Net's crop and statistics, then
the same float32 operations nnU-Net's preprocessor applies, block by block.

nnU-Net crops every image to the bounding box of its nonzero voxels and normalises the cropped image
with its own statistics (z-score: mean and standard deviation of every voxel in the crop). Here one pass
over the volume, a slab at a time, gives the bounding box and those statistics (exact merges in float64;
voxels outside the box are zero, so sums over the volume are sums over the box). Normalising each block
with its own statistics instead would change several percent of the labels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from nnunetv2_reisoseg.errors import ReisosegError

# nnU-Net's normalisation schemes whose operation does not depend on the image (fixed parameters)
_FIXED = ("CTNormalization", "NoNormalization", "RGBTo01Normalization")
SUPPORTED = ("ZScoreNormalization", "RescaleTo01Normalization", *_FIXED)


class NonFiniteError(ReisosegError, ValueError):
    """The volume holds NaN or infinite values, which no statistic or normalisation survives."""


@dataclass
class VolumeStats:
    """Bounding box of nonzero voxels and intensity statistics of the voxels inside it (input space)."""

    bbox: tuple[tuple[int, int], ...] | None  # None: the volume is all zeros
    count: int  # voxels inside the box
    mean: float
    std: float  # population standard deviation (numpy's default, as nnU-Net)
    min: float
    max: float

    def to_dict(self) -> dict:
        return asdict(self)


def stream_stats(array, slab: int, progress: Callable[[int, int], None] | None = None) -> VolumeStats:
    """One pass over a (Z, Y, X) array-like, ``slab`` sections at a time: nonzero bounding box, and mean,
    std, min and max over the box (Chan et al.'s pairwise merge of count, mean and M2, in float64). Raises
    ``NonFiniteError`` at the first slab with a NaN or infinite voxel."""
    shape = tuple(int(s) for s in array.shape)
    n_all, mean_all, m2_all = 0, 0.0, 0.0
    lo = [None] * 3
    hi = [None] * 3
    vmin, vmax, n_nonzero = np.inf, -np.inf, 0  # over the nonzero voxels, which all lie in the box
    for z0 in range(0, shape[0], slab):
        block = np.asarray(array[z0:z0 + slab], dtype=np.float64)
        finite = np.isfinite(block)
        if not finite.all():
            z = z0 + int(np.flatnonzero(~finite.reshape(len(block), -1).all(axis=1))[0])
            raise NonFiniteError(f"{int(finite.size - finite.sum())} NaN or infinite voxel(s) in sections "
                                 f"{z0}-{z0 + len(block) - 1} (the first in section {z})")
        n = block.size
        m = float(block.mean())
        m2 = float(np.square(block - m).sum())
        delta = m - mean_all
        total = n_all + n
        mean_all += delta * n / total
        m2_all += m2 + delta * delta * n_all * n / total
        n_all = total
        nz = block != 0
        if nz.any():
            vmin, vmax = min(vmin, float(block[nz].min())), max(vmax, float(block[nz].max()))
            n_nonzero += int(nz.sum())
            for a in range(3):
                other = tuple(b for b in range(3) if b != a)
                idx = np.flatnonzero(nz.any(axis=other))
                first, last = int(idx[0]), int(idx[-1]) + 1
                if a == 0:
                    first, last = first + z0, last + z0
                lo[a] = first if lo[a] is None else min(lo[a], first)
                hi[a] = last if hi[a] is None else max(hi[a], last)
        if progress is not None:
            progress(min(z0 + slab, shape[0]), shape[0])
    if lo[0] is None:
        return VolumeStats(None, 0, 0.0, 0.0, 0.0, 0.0)
    bbox = tuple((int(a), int(b)) for a, b in zip(lo, hi))
    n_box = int(np.prod([b - a for a, b in bbox]))
    # sums over the volume are sums over the box (zeros outside); move the M2 from n_all to n_box voxels
    s = mean_all * n_all
    mean = s / n_box
    m2 = m2_all - s * s * (n_all - n_box) / (n_all * n_box)
    if n_nonzero < n_box:  # zeros inside the box count too; those outside it do not (nnU-Net crops them)
        vmin, vmax = min(vmin, 0.0), max(vmax, 0.0)
    return VolumeStats(bbox, n_box, float(mean), float(np.sqrt(max(m2, 0.0) / n_box)), vmin, vmax)


def nnunet_stats(image: np.ndarray) -> VolumeStats:
    """The statistics nnU-Net's preprocessor computes on an image it holds whole (float32 numpy reductions
    over the nonzero crop): to compare with, or to reproduce nnU-Net's labels exactly."""
    from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero

    data, _, bbox = crop_to_nonzero(image[None].astype(np.float32))
    c = data[0]
    return VolumeStats(tuple((int(a), int(b)) for a, b in bbox), int(c.size), float(c.mean()), float(c.std()),
                       float(c.min()), float(c.max()))


class Normalizer:
    """nnU-Net's normalisation of one channel with statistics of the whole volume."""

    def __init__(self, scheme: str, use_mask_for_norm: bool, intensity_properties: dict, stats: VolumeStats) -> None:
        check_scheme(scheme, use_mask_for_norm)
        self.scheme, self.stats = scheme, stats
        self._fixed = None
        if scheme in _FIXED:
            from nnunetv2.preprocessing.normalization import default_normalization_schemes as schemes

            self._fixed = getattr(schemes, scheme)(use_mask_for_norm=use_mask_for_norm,
                                                   intensityproperties=intensity_properties)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """float32 normalised copy of ``block``: the operations of nnU-Net's class, in its order."""
        image = np.asarray(block).astype(np.float32)
        if self._fixed is not None:
            return self._fixed.run(image)
        if self.scheme == "ZScoreNormalization":
            image -= np.float32(self.stats.mean)
            image /= max(np.float32(self.stats.std), 1e-8)
        else:  # RescaleTo01Normalization: x - min, then / max of the shifted image
            lo = np.float32(self.stats.min)
            image -= lo
            image /= np.clip(np.float32(self.stats.max) - lo, a_min=1e-8, a_max=None)
        return image


def check_scheme(scheme: str, use_mask_for_norm: bool) -> None:
    """Refuse, before any work, a normalisation that cannot run blockwise."""
    if scheme not in SUPPORTED:
        raise ValueError(f"normalisation {scheme} is not supported blockwise (supported: {', '.join(SUPPORTED)})")
    if use_mask_for_norm and scheme == "ZScoreNormalization":
        raise ValueError(
            "the model normalises inside the nonzero mask (use_mask_for_norm), which needs the whole image in "
            "memory to fill the mask's holes; predict this volume with nnUNetv2_predict, or in crops")

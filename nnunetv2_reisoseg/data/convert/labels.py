"""How label values become nnU-Net classes: background values, instance ids merged, label maps and
the ignore label."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunetv2_reisoseg.data.convert.errors import ConvertError

CREMI_BACKGROUND = 0xFFFFFFFFFFFFFFFF  # CREMI's "no label" value in its uint64 label volumes
MAX_CLASSES = 50  # more distinct values than this are instance ids, not classes


@dataclass
class LabelRules:
    """How label values become nnU-Net classes."""

    binary: bool = False
    label_map: dict[int, int] = field(default_factory=dict)
    background: tuple[int, ...] = (0, CREMI_BACKGROUND)
    ignore: tuple[int, ...] = ()
    threshold: float | None = None  # anti-aliased masks: values >= threshold are class 1, the rest background
    unmapped_background: bool = False  # values missing from label_map are background instead of an error

    def apply(self, raw: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Class map (int64) and ignore mask of a label block; errors for non-integer or negative values."""
        if self.threshold is not None:
            raw = (np.asarray(raw) >= self.threshold).astype(np.uint8)
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
                raise ConvertError(f"{source}: labels are not integers (float values with fractions); "
                                   "pass an integer label volume")
            raw = raw.astype(np.int64)
        elif raw.dtype.kind == "b":
            raw = raw.astype(np.uint8)
        elif raw.dtype.kind not in "iu":
            raise ConvertError(f"{source}: label dtype {raw.dtype} is not an integer type")
        ignore = np.isin(raw, np.asarray(self.ignore, dtype=raw.dtype)) if self.ignore else np.zeros(raw.shape, bool)
        background = np.isin(raw, np.asarray([b for b in self.background if _fits(b, raw.dtype)], dtype=raw.dtype))
        if raw.dtype.kind == "i" and np.any((raw < 0) & ~ignore & ~background):
            raise ConvertError(f"{source}: negative label values {sorted(np.unique(raw[raw < 0]))[:5]}; map them "
                               "with --label-map, --background or --ignore-value")
        if raw.dtype == np.uint64 and raw.size and raw.max() > np.iinfo(np.int64).max:
            big = (raw > np.iinfo(np.int64).max) & ~background & ~ignore
            if big.any():
                raise ConvertError(f"{source}: label values above 2**63 other than CREMI's background "
                                   "0xffffffffffffffff; map them with --label-map or --ignore-value")
            raw = np.where(background | ignore, 0, raw)
        out = raw.astype(np.int64)
        out[background] = 0
        if self.label_map:
            mapped = np.zeros_like(out)
            known = np.zeros(out.shape, bool)
            for src, dst in self.label_map.items():
                m = out == src
                mapped[m] = dst
                known |= m
            stray = ~known & (out != 0) & ~ignore
            if stray.any() and not self.unmapped_background:
                raise ConvertError(f"{source}: label values {sorted(np.unique(out[stray]))[:8]} are not in "
                                   "--label-map; add them (SRC:0 to make them background), or pass "
                                   "--unmapped-background")
            out = mapped
        if self.binary:
            out = (out != 0).astype(np.int64)
        out[ignore] = 0
        return out, ignore


def _fits(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max

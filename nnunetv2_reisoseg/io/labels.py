"""Label values as classes, checked the same way by every command that reads labels (convert, evaluate,
blockwise objects): integers only, background values (0 and CREMI's 2**64 - 1 by default) mapped to 0, and a
clear error, never a made-up class, for fractions, non-finite, negative or too large values."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunetv2_reisoseg.errors import ReisosegError

CREMI_BACKGROUND = 0xFFFFFFFFFFFFFFFF  # CREMI's "no label" value in its uint64 label volumes
DEFAULT_BACKGROUND = (0, CREMI_BACKGROUND)


class LabelValueError(ReisosegError, ValueError):
    """Label values that are not classes; the message names the file and the values (callers add the fix)."""


def fits_dtype(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def integer_labels(raw: np.ndarray, source: str, background: Sequence[int] = DEFAULT_BACKGROUND,
                   exempt: np.ndarray | None = None) -> np.ndarray:
    """``raw`` as integer labels with every ``background`` value 0: integer arrays keep their dtype (a copy only
    where a background value other than 0 occurs), floats become int64, booleans uint8. Raises
    ``LabelValueError`` for float values with fractions or not finite, and, outside ``exempt`` (a mask the
    caller maps itself), for negative values and values above 2**63."""
    raw = np.asarray(raw)
    if raw.dtype.kind == "b":
        return raw.astype(np.uint8)
    if raw.dtype.kind == "f":
        finite = np.isfinite(raw)
        fraction = finite & (raw != np.round(raw))
        if not finite.all() or fraction.any():
            bad = np.unique(raw[~finite | fraction])[:5].tolist()
            raise LabelValueError(f"{source}: labels are not integers (values such as {bad})")
        raw = raw.astype(np.int64)
    elif raw.dtype.kind not in "iu":
        raise LabelValueError(f"{source}: label dtype {raw.dtype} is not an integer type")
    others = [b for b in background if b != 0 and fits_dtype(b, raw.dtype)]
    is_background = np.isin(raw, np.asarray(others, dtype=raw.dtype)) if others else None
    allowed = is_background if exempt is None else exempt if is_background is None else is_background | exempt
    outside = (lambda m: m) if allowed is None else (lambda m: m & ~allowed)
    if raw.dtype.kind == "i" and raw.size and raw.min() < 0:
        negative = outside(raw < 0)
        if negative.any():
            raise LabelValueError(f"{source}: negative label values {np.unique(raw[negative])[:5].tolist()}")
    if raw.dtype == np.uint64 and raw.size and raw.max() > np.iinfo(np.int64).max:
        big = outside(raw > np.iinfo(np.int64).max)
        if big.any():
            raise LabelValueError(f"{source}: label values above 2**63 ({np.unique(raw[big])[:3].tolist()}) other "
                                  "than the background values")
    if is_background is not None and is_background.any():
        raw = np.where(is_background, raw.dtype.type(0), raw)
    return raw

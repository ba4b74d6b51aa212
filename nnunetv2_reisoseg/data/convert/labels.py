"""How label values become nnU-Net classes: background values, instance ids merged, label maps and
the ignore label."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nnunetv2_reisoseg.data.convert.errors import ConvertError
from nnunetv2_reisoseg.io.labels import (
    DEFAULT_BACKGROUND,
    LabelValueError,
    fits_dtype,
    integer_labels,
)

MAX_CLASSES = 50  # more distinct values than this are instance ids, not classes


@dataclass
class LabelRules:
    """How label values become nnU-Net classes."""

    binary: bool = False
    label_map: dict[int, int] = field(default_factory=dict)
    background: tuple[int, ...] = DEFAULT_BACKGROUND
    ignore: tuple[int, ...] = ()
    threshold: float | None = None  # anti-aliased masks: values >= threshold are class 1, the rest background
    unmapped_background: bool = False  # values missing from label_map are background instead of an error

    def apply(self, raw: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Class map (int64) and ignore mask of a label block; errors for non-integer or negative values."""
        raw = np.asarray(raw)
        if self.threshold is not None:
            raw = (raw >= self.threshold).astype(np.uint8)
        ignore = np.zeros(raw.shape, bool)
        values = [v for v in self.ignore
                  if raw.dtype.kind == "f" or (raw.dtype.kind in "iu" and fits_dtype(v, raw.dtype))]
        if self.ignore and not values and self.threshold is None:
            raise ConvertError(f"{source}: --ignore-value {' '.join(map(str, self.ignore))} cannot occur in labels of "
                               f"dtype {raw.dtype}; give the value that marks 'not annotated' in this file")
        if values:
            ignore = np.isin(raw, np.asarray(values, dtype=raw.dtype))
        try:
            out = integer_labels(raw, source, self.background, exempt=ignore)
        except LabelValueError as e:
            raise ConvertError(f"{e}; map them with --label-map, --background or --ignore-value, or pass an "
                               "integer label volume") from None
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
        if ignore.any():  # a new array: ``out`` may be the reader's (read-only) memory
            out = np.where(ignore, 0, out)
        return out, ignore


def parse_label_map(items: Sequence[str]) -> dict[int, int]:
    """``--label-map SRC:DST ...`` (SRC decimal or 0x..., DST a class >= 0) as a mapping."""
    out = {}
    for item in items:
        src, sep, dst = item.partition(":")
        try:
            key, value = int(src, 0), int(dst)
        except ValueError:
            value = -1
        if not sep or value < 0:
            raise ConvertError(f"--label-map takes SRC:DST pairs of integers with DST >= 0, got {item!r}")
        out[key] = value
    return out

"""Every measure of ``reisoseg evaluate``, defined once: its name (the key in evaluate's JSON and the benchmark's
records), its title, which way is better, what it is computed from, and so how it adds up across blocks.

A class of one volume is summarised three ways (``ClassSummary``), and each measure reads one of them:

- ``COUNTS``: voxels predicted, in the reference, in both. Counts of disjoint blocks add up.
- ``TABLE``: the contingency table of (reference object, predicted object) voxel counts (``objects.py``). Tables of
  disjoint blocks add up too, once object ids hold across blocks.
- ``SURFACE``: the surface distances of the whole masks. A nearest surface can lie in any block, so they do not
  add up: a blockwise evaluation reports them as null.

In memory (``evaluate.evaluate_class``) and block by block (``blockwise.py``) a row is ``measure_row`` of the
summary; the benchmark's titles, directions and comparisons read ``MEASURES`` too. Adding a measure is one
``register`` (or one entry below).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nnunetv2_reisoseg.evaluation.objects import (
    ContingencyTable,
    ObjectPairs,
    adapted_rand_error,
    average_precision,
    error_counts,
    f1_at,
    variation_of_information,
)

COUNTS, TABLE, SURFACE = "counts", "table", "surface"


@dataclass(frozen=True)
class VoxelCounts:
    """Voxels of one class: predicted, in the reference, in both. Counts of disjoint blocks add up."""

    pred: int
    ref: int
    both: int

    @classmethod
    def of(cls, pred: np.ndarray, ref: np.ndarray) -> VoxelCounts:
        return cls(int(np.count_nonzero(pred)), int(np.count_nonzero(ref)), int(np.count_nonzero(pred & ref)))

    def __add__(self, other: VoxelCounts) -> VoxelCounts:
        return VoxelCounts(self.pred + other.pred, self.ref + other.ref, self.both + other.both)

    @property
    def both_empty(self) -> bool:
        return self.pred == self.ref == 0

    def ratio(self, num: float, den: float) -> float:
        """num / den; where den is 0, 1 when both masks are empty (nothing to find, nothing found), else 0."""
        if den == 0:
            return 1.0 if self.both_empty else 0.0
        return float(num / den)


@dataclass(frozen=True)
class Surfaces:
    """Surface distances of the whole masks (nm); None where the masks were not whole (blockwise)."""

    hd95_nm: float | None = None
    assd_nm: float | None = None


class ObjectView:
    """A class's objects as its contingency table gives them, with what several measures share computed once.
    ``scores`` rank predicted objects for AP (their mean probability); None ranks them by size."""

    def __init__(self, table: ContingencyTable, scores: dict[int, float] | None = None) -> None:
        self.table, self.scores = table, scores

    @cached_property
    def pairs(self) -> ObjectPairs:
        return ObjectPairs.from_table(self.table)

    @cached_property
    def errors(self) -> dict[str, int]:
        return error_counts(self.pairs)

    @cached_property
    def voi(self) -> tuple[float, float]:
        return variation_of_information(self.table)


@dataclass(frozen=True)
class ClassSummary:
    """Everything a measure of one class is computed from."""

    counts: VoxelCounts
    objects: ObjectView
    surfaces: Surfaces = Surfaces()


@dataclass(frozen=True)
class Measure:
    """One measure: ``compute`` reads the part of a ``ClassSummary`` that ``source`` names."""

    name: str  # the key in evaluate's JSON and the benchmark's records
    title: str  # as reports and plots show it
    higher_is_better: bool | None  # None: no better direction (a count of the reference's own objects)
    source: str  # COUNTS, TABLE or SURFACE: what it reads, and so how it adds up across blocks
    compute: Callable[[ClassSummary], float | int | bool | None]
    compared: bool = True  # whether the benchmark compares methods on it (not on the empty-mask flags)


_MEASURES = (
    Measure("dice", "Dice", True, COUNTS, lambda s: s.counts.ratio(2 * s.counts.both, s.counts.pred + s.counts.ref)),
    Measure("iou", "IoU", True, COUNTS,
            lambda s: s.counts.ratio(s.counts.both, s.counts.pred + s.counts.ref - s.counts.both)),
    Measure("precision", "voxel precision", True, COUNTS, lambda s: s.counts.ratio(s.counts.both, s.counts.pred)),
    Measure("recall", "voxel recall", True, COUNTS, lambda s: s.counts.ratio(s.counts.both, s.counts.ref)),
    Measure("hd95_nm", "HD95 (nm)", False, SURFACE, lambda s: s.surfaces.hd95_nm),
    Measure("assd_nm", "ASSD (nm)", False, SURFACE, lambda s: s.surfaces.assd_nm),
    Measure("empty_prediction", "empty prediction", None, COUNTS, lambda s: s.counts.pred == 0, compared=False),
    Measure("empty_reference", "empty reference", None, COUNTS, lambda s: s.counts.ref == 0, compared=False),
    Measure("ref_objects", "reference objects", None, TABLE, lambda s: len(s.objects.pairs.ref_sizes)),
    Measure("pred_objects", "predicted objects", None, TABLE, lambda s: len(s.objects.pairs.pred_sizes)),
    Measure("f1_50", "object F1 (IoU 0.5)", True, TABLE, lambda s: f1_at(s.objects.pairs, 0.5)),
    Measure("f1_75", "object F1 (IoU 0.75)", True, TABLE, lambda s: f1_at(s.objects.pairs, 0.75)),
    Measure("ap50", "AP-50", True, TABLE, lambda s: average_precision(s.objects.pairs, 0.5, s.objects.scores)),
    Measure("ap75", "AP-75", True, TABLE, lambda s: average_precision(s.objects.pairs, 0.75, s.objects.scores)),
    Measure("voi_split", "VOI split (bits)", False, TABLE, lambda s: s.objects.voi[0]),
    Measure("voi_merge", "VOI merge (bits)", False, TABLE, lambda s: s.objects.voi[1]),
    Measure("arand", "adapted Rand error", False, TABLE, lambda s: adapted_rand_error(s.objects.table)),
    Measure("split_objects", "split objects", False, TABLE, lambda s: s.objects.errors["split_objects"]),
    Measure("merged_objects", "merged objects", False, TABLE, lambda s: s.objects.errors["merged_objects"]),
    Measure("missed_objects", "missed objects", False, TABLE, lambda s: s.objects.errors["missed_objects"]),
    Measure("false_objects", "false objects", False, TABLE, lambda s: s.objects.errors["false_objects"]),
)
# the registry, in the order of evaluate's JSON
MEASURES: dict[str, Measure] = {m.name: m for m in _MEASURES}


def register(measure: Measure) -> None:
    """Add ``measure`` (last in every row); evaluate, the blockwise pass, the benchmark and its report take it."""
    if measure.source not in (COUNTS, TABLE, SURFACE):
        raise ValueError(f"measure {measure.name}: source must be one of {COUNTS}, {TABLE}, {SURFACE}")
    MEASURES[measure.name] = measure


def fields() -> tuple[str, ...]:
    """The keys of every class's result, in order."""
    return tuple(MEASURES)


def surface_fields() -> tuple[str, ...]:
    """The measures a blockwise evaluation reports as null: they need the whole masks."""
    return tuple(m.name for m in MEASURES.values() if m.source == SURFACE)


def measure_row(summary: ClassSummary) -> dict:
    """Every measure of one class, in the registry's order."""
    return {m.name: m.compute(summary) for m in MEASURES.values()}


def object_measures(table: ContingencyTable, scores: dict[int, float] | None = None) -> dict:
    """The measures computed from the table alone (``TABLE``), for one class."""
    summary = ClassSummary(VoxelCounts(0, 0, 0), ObjectView(table, scores))
    return {m.name: m.compute(summary) for m in MEASURES.values() if m.source == TABLE}

"""Object measures from one contingency table of (reference object, predicted object) voxel counts.

Every object measure here (matches and F1 at an IoU threshold, MitoEM's average precision, VOI split and
merge, adapted Rand error, split / merged / missed / false object counts) is a function of that table
alone. The table is a sum over voxels, so it adds up block by block (``ContingencyTable.__add__``) once
the object ids are the same in every block.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# a reference and a predicted object "overlap" for the split / merge / missed / false counts when their
# intersection is at least this fraction of the smaller of the two
OVERLAP_FRACTION = 0.1
# COCO's (and MitoEM's) 101 recall points of the interpolated precision-recall curve
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
# above this many (reference id, predicted id) bins a dense bincount costs more memory than sorting the keys
_DENSE_BINS = 1 << 24


def _count(keys: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys and how often each occurs."""
    if n_bins <= _DENSE_BINS:
        counts = np.bincount(keys, minlength=n_bins)
        nz = np.flatnonzero(counts)
        return nz.astype(np.int64), counts[nz].astype(np.int64)
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq.astype(np.int64), counts.astype(np.int64)


@dataclass(frozen=True)
class ContingencyTable:
    """Voxel counts of every (reference id, predicted id) pair that occurs, background (0) included.

    ``ref_ids``, ``pred_ids`` and ``counts`` are parallel int64 arrays without duplicate pairs.
    """

    ref_ids: np.ndarray
    pred_ids: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_labels(cls, ref: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None) -> ContingencyTable:
        """The table of two object labelings of one shape (0 = background); voxels outside ``valid`` are
        not counted. Background-background voxels are counted without materialising them."""
        if ref.shape != pred.shape:
            raise ValueError(f"reference shape {ref.shape} and prediction shape {pred.shape} differ")
        fg = (ref != 0) | (pred != 0)
        if valid is not None:
            fg &= valid
        n_valid = int(valid.sum()) if valid is not None else int(ref.size)
        r = ref[fg].astype(np.int64)
        p = pred[fg].astype(np.int64)
        del fg
        width = int(p.max()) + 1 if p.size else 1
        n_bins = (int(r.max()) + 1 if r.size else 1) * width
        keys, counts = _count(r * width + p, n_bins)
        ref_ids, pred_ids = keys // width, keys % width
        n_background = n_valid - int(counts.sum())
        if n_background:
            ref_ids, pred_ids = np.append(ref_ids, 0), np.append(pred_ids, 0)
            counts = np.append(counts, n_background)
        return cls(ref_ids, pred_ids, counts)

    def __add__(self, other: ContingencyTable) -> ContingencyTable:
        """The table of the union of two disjoint sets of voxels (e.g. two blocks of one volume)."""
        return ContingencyTable.total([self, other])

    @classmethod
    def total(cls, tables: Sequence[ContingencyTable]) -> ContingencyTable:
        """The table of the union of disjoint sets of voxels, e.g. every block of a volume, in one sort."""
        r = np.concatenate([t.ref_ids for t in tables])
        p = np.concatenate([t.pred_ids for t in tables])
        width = int(p.max()) + 1 if p.size else 1
        keys, inverse = np.unique(r * width + p, return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([t.counts for t in tables])).astype(np.int64)
        return cls(keys // width, keys % width, counts)

    @property
    def n_voxels(self) -> int:
        return int(self.counts.sum())

    def sizes(self, axis: str) -> dict[int, int]:
        """Voxels per object id (background excluded) of the ``"ref"`` or ``"pred"`` labeling."""
        ids = self.ref_ids if axis == "ref" else self.pred_ids
        keep = ids > 0
        uniq, inverse = np.unique(ids[keep], return_inverse=True)
        return dict(zip(uniq.tolist(), np.bincount(inverse, weights=self.counts[keep]).astype(np.int64).tolist()))


def _ratio(num: float, den: float) -> float:
    """num / den, with 0 / 0 = 1 (nothing to find and nothing found) and x / 0 = 0 otherwise."""
    if den == 0:
        return 1.0 if num == 0 else 0.0
    return float(num / den)


@dataclass(frozen=True)
class ObjectPairs:
    """The overlapping (reference object, predicted object) pairs of a table with their IoU."""

    ref: np.ndarray
    pred: np.ndarray
    intersection: np.ndarray
    iou: np.ndarray
    ref_sizes: dict[int, int]
    pred_sizes: dict[int, int]

    @classmethod
    def from_table(cls, table: ContingencyTable) -> ObjectPairs:
        rs, ps = table.sizes("ref"), table.sizes("pred")
        both = (table.ref_ids > 0) & (table.pred_ids > 0)
        r, p, n = table.ref_ids[both], table.pred_ids[both], table.counts[both].astype(float)
        union = np.array([rs[i] for i in r.tolist()], float) + np.array([ps[j] for j in p.tolist()], float) - n
        return cls(r, p, n, n / np.maximum(union, 1), rs, ps)


def matches(pairs: ObjectPairs, threshold: float) -> int:
    """One-to-one matches at IoU >= ``threshold``: greedily by decreasing IoU (unique anyway above 0.5)."""
    order = np.argsort(-pairs.iou, kind="stable")
    used_r: set[int] = set()
    used_p: set[int] = set()
    for k in order.tolist():
        if pairs.iou[k] < threshold:
            break
        r, p = int(pairs.ref[k]), int(pairs.pred[k])
        if r not in used_r and p not in used_p:
            used_r.add(r)
            used_p.add(p)
    return len(used_r)


def f1_at(pairs: ObjectPairs, threshold: float) -> float:
    """Object F1 = 2 TP / (reference objects + predicted objects), TP the one-to-one matches."""
    return _ratio(2 * matches(pairs, threshold), len(pairs.ref_sizes) + len(pairs.pred_sizes))


def average_precision(pairs: ObjectPairs, threshold: float, scores: dict[int, float] | None = None) -> float:
    """Average precision at one IoU threshold, as the MitoEM challenge scores instances (Wei et al., MICCAI
    2020; its evaluation tool follows COCO's ``cocoeval``): predicted objects in decreasing score order
    (ties by id) each take the unmatched reference object of highest IoU >= ``threshold``; the precision
    is made non-increasing from the right and read at the first rank reaching each of 101 recall points
    (0 where recall never reaches it); AP is their mean. ``scores`` default to object size. With no
    reference objects AP is 1 when nothing is predicted, else 0."""
    n_ref = len(pairs.ref_sizes)
    score = scores if scores is not None else pairs.pred_sizes
    preds = sorted(pairs.pred_sizes, key=lambda j: (-score.get(j, 0.0), j))
    if n_ref == 0:
        return 1.0 if not preds else 0.0
    if not preds:
        return 0.0
    candidates: dict[int, list[tuple[float, int]]] = {}
    for r, p, iou in zip(pairs.ref.tolist(), pairs.pred.tolist(), pairs.iou.tolist()):
        if iou >= threshold:
            candidates.setdefault(p, []).append((iou, r))
    matched: set[int] = set()
    tp = np.zeros(len(preds))
    for k, j in enumerate(preds):
        for _, r in sorted(candidates.get(j, []), key=lambda x: (-x[0], x[1])):
            if r not in matched:
                matched.add(r)
                tp[k] = 1
                break
    tps = np.cumsum(tp)
    recall = tps / n_ref
    precision = np.maximum.accumulate((tps / np.arange(1, len(preds) + 1))[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.where(idx < len(preds), precision[np.minimum(idx, len(preds) - 1)], 0.0).mean())


def variation_of_information(table: ContingencyTable) -> tuple[float, float]:
    """(split, merge) in bits: H(prediction | reference) and H(reference | prediction) over every counted
    voxel, background included (scikit-image's ``variation_of_information(ref, pred)`` order)."""
    n = table.n_voxels
    if n == 0:
        return 0.0, 0.0
    pij = table.counts / n
    pr = _marginal(table.ref_ids, pij)
    pp = _marginal(table.pred_ids, pij)
    h_pred_given_ref = -float(np.sum(pij * np.log2(pij / pr)))
    h_ref_given_pred = -float(np.sum(pij * np.log2(pij / pp)))
    # 0.0 first: max(-0.0, 0.0) is -0.0, which JSON prints as -0.0 for a perfect match
    return max(0.0, h_pred_given_ref), max(0.0, h_ref_given_pred)


def _marginal(ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per entry, the summed weight of all entries with its id."""
    inverse = np.unique(ids, return_inverse=True)[1]
    return np.bincount(inverse, weights=weights)[inverse]


def adapted_rand_error(table: ContingencyTable) -> float:
    """Adapted Rand error (Arganda-Carreras et al. 2015, alpha 0.5) over the voxels of reference objects,
    as scikit-image computes it (reference background ignored, predicted background one segment). With no
    reference object it is 0 when nothing is predicted either, else 1. When no reference voxel lies in a
    predicted object (an empty prediction among them) it is 1, the worst: scikit-image's value there is 0 for a
    single reference object, which would read as perfect."""
    keep = table.ref_ids > 0
    if not keep.any():
        return 0.0 if not (table.pred_ids > 0).any() else 1.0
    if not (table.pred_ids[keep] > 0).any():
        return 1.0
    n = table.counts[keep].astype(float)
    a = np.bincount(np.unique(table.ref_ids[keep], return_inverse=True)[1], weights=n)
    b = np.bincount(np.unique(table.pred_ids[keep], return_inverse=True)[1], weights=n)
    sum_ij = n @ n - n.sum()
    den = 0.5 * (a @ a - a.sum()) + 0.5 * (b @ b - b.sum())
    return 0.0 if den == 0 else float(1.0 - sum_ij / den)


def error_counts(pairs: ObjectPairs, fraction: float = OVERLAP_FRACTION) -> dict[str, int]:
    """Split, merged, missed and false objects; a pair overlaps when its intersection is at least
    ``fraction`` of the smaller object."""
    smaller = np.minimum([pairs.ref_sizes[i] for i in pairs.ref.tolist()],
                         [pairs.pred_sizes[j] for j in pairs.pred.tolist()]) if pairs.ref.size else np.zeros(0)
    hit = pairs.intersection >= fraction * smaller
    per_ref = _count_by(pairs.ref[hit])
    per_pred = _count_by(pairs.pred[hit])
    return {"split_objects": sum(v >= 2 for v in per_ref.values()),
            "merged_objects": sum(v >= 2 for v in per_pred.values()),
            "missed_objects": sum(i not in per_ref for i in pairs.ref_sizes),
            "false_objects": sum(j not in per_pred for j in pairs.pred_sizes)}


def _count_by(ids: np.ndarray) -> dict[int, int]:
    uniq, counts = np.unique(ids, return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist()))

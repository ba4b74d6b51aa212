"""``reisoseg evaluate``: voxel, surface and object measures of a segmentation against a reference.

ReIsoSeg claims continuity: organelles that stay whole across sections. Voxel overlap and surface
distances cannot see a mitochondrion broken in two at one section; objects can. Objects are the 3D
connected components of each class (connected-components-3d, 26-connectivity by default), and every
object measure comes from one contingency table of their voxel counts (``objects.py``). The benchmark
calls ``evaluate_labels`` for every case, so a study and a user's own volumes are measured alike.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnunetv2_reisoseg.errors import ReisosegError
from nnunetv2_reisoseg.evaluation.measures import ClassSummary, ObjectView, Surfaces, VoxelCounts, measure_row
from nnunetv2_reisoseg.evaluation.objects import ContingencyTable
from nnunetv2_reisoseg.evaluation.surface import surface_distances
from nnunetv2_reisoseg.io import checks
from nnunetv2_reisoseg.io.checks import spacing_problem, voxel_size
from nnunetv2_reisoseg.io.labels import DEFAULT_BACKGROUND, LabelValueError, integer_labels
from nnunetv2_reisoseg.io.volumes import ITK_SUFFIXES

CONNECTIVITIES = (6, 18, 26)


class EvaluationError(ReisosegError, ValueError):
    """Bad input for ``reisoseg evaluate``; the message names the problem and the fix."""


def evaluate_class(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], connectivity: int = 26,
                   probability: np.ndarray | None = None, valid: np.ndarray | None = None,
                   objects: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Every measure of ``measures.MEASURES`` for one class given as two boolean masks. Its objects are the
    connected components of each mask, or, with ``objects`` (predicted ids, reference ids), those ids as they are.
    ``probability`` (the class's predicted probability per voxel) ranks predicted objects for AP by their mean;
    without it, by size. Voxels outside ``valid`` (an ignore label) count nowhere."""
    import cc3d
    import fastremap

    if valid is not None:
        pred, ref = pred & valid, ref & valid
    hd95, assd = surface_distances(pred, ref, spacing)
    if objects is None:
        ref_obj = cc3d.connected_components(ref, connectivity=connectivity)
        pred_obj = cc3d.connected_components(pred, connectivity=connectivity)
    else:  # ids 1..n, whatever their values (CREMI's are 64-bit): the table's keys stay small
        pred_obj = fastremap.renumber(np.where(pred, objects[0], 0), preserve_zero=True, in_place=False)[0]
        ref_obj = fastremap.renumber(np.where(ref, objects[1], 0), preserve_zero=True, in_place=False)[0]
    scores = None
    if probability is not None:
        sums = np.bincount(pred_obj.ravel(), weights=probability.ravel().astype(np.float64))
        sizes = np.bincount(pred_obj.ravel(), minlength=sums.size)
        scores = {j: float(sums[j] / sizes[j]) for j in np.flatnonzero(sizes[1:]) + 1}
    table = ContingencyTable.from_labels(ref_obj, pred_obj, valid)
    return measure_row(ClassSummary(VoxelCounts.of(pred, ref), ObjectView(table, scores), Surfaces(hd95, assd)))


def evaluate_labels(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], classes: Sequence[int] | None = None,
                    connectivity: int = 26, probabilities: np.ndarray | None = None,
                    ignore_label: int | None = None) -> dict[str, dict]:
    """Per class label (as a string): ``evaluate_class`` of two label volumes. ``classes`` default to every
    non-zero label in either volume; ``probabilities`` is (classes incl. background, Z, Y, X), or (Z, Y, X)
    for a single class."""
    if pred.shape != ref.shape:
        raise EvaluationError(f"prediction shape {pred.shape} and reference shape {ref.shape} differ: evaluate "
                              "volumes of the same grid (crop or resample one of them first)")
    if pred.ndim != 3:
        raise EvaluationError(f"volumes must be 3D (Z, Y, X), got shape {pred.shape}")
    if connectivity not in CONNECTIVITIES:
        raise EvaluationError(f"--connectivity must be one of {CONNECTIVITIES}, got {connectivity}")
    if classes is None:
        classes = labels_present(pred, ref, ignore_label)
        if not classes:
            raise EvaluationError("neither volume holds a foreground label: nothing to evaluate")
    if probabilities is not None:
        if probabilities.ndim == 3:
            if len(classes) != 1:
                raise EvaluationError("a 3D probability volume ranks one class: give --classes C, or probabilities "
                                      "of shape (classes, Z, Y, X)")
            probabilities = {classes[0]: probabilities}
        if isinstance(probabilities, np.ndarray):
            if probabilities.shape[1:] != pred.shape or probabilities.shape[0] <= max(classes):
                raise EvaluationError(f"probabilities of shape {probabilities.shape} do not fit labels of shape "
                                      f"{pred.shape} with classes up to {max(classes)}: expected "
                                      f"(>{max(classes)}, {', '.join(map(str, pred.shape))})")
            probabilities = {c: probabilities[c] for c in classes}
        elif next(iter(probabilities.values())).shape != pred.shape:
            raise EvaluationError(f"probabilities of shape {next(iter(probabilities.values())).shape} do not fit "
                                  f"labels of shape {pred.shape}")
    valid = ref != ignore_label if ignore_label is not None else None
    return {str(c): evaluate_class(pred == c, ref == c, spacing, connectivity,
                                   None if probabilities is None else np.asarray(probabilities[c]), valid)
            for c in classes}


def evaluate_instances(pred_ids: np.ndarray, ref_ids: np.ndarray, spacing: Sequence[float],
                       ignore_label: int | None = None, probability: np.ndarray | None = None) -> dict[str, dict]:
    """Object ids against instance truth: every id of either volume is one object, wherever its voxels lie (no
    connected components), all of one class, reported as class "1"."""
    if pred_ids.shape != ref_ids.shape:
        raise EvaluationError(f"prediction shape {pred_ids.shape} and reference shape {ref_ids.shape} differ: "
                              "evaluate volumes of the same grid")
    valid = ref_ids != ignore_label if ignore_label is not None else None
    pred, ref = pred_ids != 0, (ref_ids != 0) if valid is None else (ref_ids != 0) & valid
    if not pred.any() and not ref.any():
        raise EvaluationError("neither volume holds an object: nothing to evaluate")
    return {"1": evaluate_class(pred, ref, spacing, probability=probability, valid=valid,
                                objects=(pred_ids, ref_ids))}


def labels_present(pred: np.ndarray, ref: np.ndarray, ignore_label: int | None = None) -> list[int]:
    """The foreground labels found in either volume."""
    import fastremap

    labels = set(fastremap.unique(pred).tolist()) | set(fastremap.unique(ref).tolist())
    return sorted(int(c) for c in labels if c not in (0, ignore_label))


# ----------------------------------------------------------------------------------------------- files
@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """How label files are read: the values that mean 'no object', whether an unfinished predict-volume output
    may be scored, and whether every other value is one class."""

    background: tuple[int, ...] = DEFAULT_BACKGROUND
    allow_unfinished: bool = False
    binary: bool = False  # every non-background value is class 1 (instance ids against a semantic prediction)
    instances: bool = False  # both volumes hold object ids, scored as objects of one class (instance truth)

    def __post_init__(self) -> None:
        if self.binary and self.instances:
            raise EvaluationError("--binary merges ids into one class; --instances scores each id as an object: "
                                  "give one")


def read_labels(spec: str, reading: ReadOptions | None = None, spacing_given: bool = False
                ) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """A 3D label volume (int64, every ``background`` value 0) and its voxel size (nm, or None) from NIfTI / MHA /
    NRRD (SimpleITK: the header's spacing taken as nm, as nnU-Net EM datasets store it) or anything ``reisoseg
    convert`` reads. Refuses labels that are not classes, unfinished predict-volume outputs and, unless
    ``spacing_given`` (--spacing replaces it), a voxel size the file states that is not one."""
    from nnunetv2_reisoseg.io.volumes import VolumeReadError, read_image, read_volume

    reading = reading or ReadOptions()
    if spec.lower().endswith(ITK_SUFFIXES):
        try:
            array, spacing = read_image(spec)
        except VolumeReadError as e:
            raise EvaluationError(str(e)) from None
        if array.ndim != 3:
            raise EvaluationError(f"{spec} is {array.ndim}D; evaluate takes 3D volumes")
        problem = spacing_problem(spacing)
        if problem and not spacing_given:
            raise EvaluationError(f"{spec}: its header's voxel size {problem}; pass --spacing Z Y X (nm)")
        return checked_labels(array, spec, reading), None if problem else spacing  # type: ignore[return-value]
    try:
        vol = read_volume(spec)
        check_finished(vol, reading.allow_unfinished)
        try:
            if not spacing_given:
                vol.stated_spacing(None)  # a voxel size the file states badly is refused
            return checked_labels(np.asarray(vol.array[...]), vol.source, reading), vol.spacing_nm
        finally:
            vol.close()
    except VolumeReadError as e:
        raise EvaluationError(str(e).replace("reisoseg convert reads", "reisoseg evaluate reads")) from None


def checked_labels(raw: np.ndarray, source: str, reading: ReadOptions | None = None) -> np.ndarray:
    """``io.labels.integer_labels`` with evaluate's fix in the error; with ``reading.binary`` one class."""
    reading = reading or ReadOptions()
    try:
        labels = integer_labels(raw, source, reading.background)
        return (labels != 0).astype(np.uint8) if reading.binary else labels
    except LabelValueError as e:
        raise EvaluationError(f"{e}: evaluate scores classes, which are non-negative integers. Pass --background V "
                              "for values that mean 'no object', or give the labels (not probabilities)") from None


def check_finished(vol, allow_unfinished: bool) -> None:
    """Refuse a predict-volume output that its run has not finished (its missing blocks read as background)."""
    if vol.unfinished and not allow_unfinished:
        vol.close()
        raise EvaluationError(f"{vol.unfinished}; finish it (predict-volume ... --c), or pass --allow-unfinished "
                              "to score it anyway")


def read_probabilities(spec: str) -> np.ndarray:
    """Probabilities (C, Z, Y, X) or (Z, Y, X): nnU-Net's ``.npz`` (key ``probabilities``), predict-volume's
    ``OUT.zarr/probabilities`` (its level 0), HDF5 ``file.h5:key`` or anything ``read_labels`` reads."""
    from nnunetv2_reisoseg.io.volumes import VolumeReadError, read_array, split_spec

    try:
        path, key = split_spec(spec)
    except VolumeReadError as e:
        raise EvaluationError(str(e)) from None
    if path.suffix in (".npz", ".zarr", ".h5", ".hdf5", ".hdf"):
        try:
            return read_array(path, key)
        except VolumeReadError as e:
            raise EvaluationError(str(e)) from None
    from nnunetv2_reisoseg.io.volumes import read_volume

    try:
        vol = read_volume(spec)
    except VolumeReadError as e:
        raise EvaluationError(str(e)) from None
    try:
        return np.asarray(vol.array[...])
    finally:
        vol.close()


def resolve_spacing(pred_spacing: Sequence[float] | None, ref_spacing: Sequence[float] | None,
                    given: Sequence[float] | None) -> tuple[float, float, float]:
    """``--spacing`` if given; else the files' voxel size, which must agree where both have one."""
    if given is not None:
        return voxel_size(given, "--spacing")
    if pred_spacing is not None and ref_spacing is not None and not np.allclose(pred_spacing, ref_spacing, rtol=1e-3):
        raise EvaluationError(f"voxel sizes differ: prediction {tuple(pred_spacing)} nm, reference "
                              f"{tuple(ref_spacing)} nm; evaluate volumes of one grid, or pass --spacing Z Y X "
                              "if one file's metadata is wrong")
    found = ref_spacing if ref_spacing is not None else pred_spacing
    if found is None:
        raise EvaluationError("neither file states its voxel size: pass --spacing Z Y X (nm)")
    return tuple(float(s) for s in found)  # type: ignore[return-value]


def evaluate_files(pred: str, ref: str, spacing: Sequence[float] | None = None, classes: Sequence[int] | None = None,
                   connectivity: int = 26, ignore_label: int | None = None, reading: ReadOptions | None = None, *,
                   probabilities: str | None = None) -> dict[str, dict]:
    """``evaluate_labels`` of two volumes on disk (``read_labels``); the arguments of ``evaluate_blockwise`` in
    its order, and ``probabilities`` (in memory only) to rank predicted objects."""
    reading = reading or ReadOptions()
    if spacing is not None:  # before reading anything
        voxel_size(spacing, "--spacing")
    p, p_sp = read_labels(pred, reading, spacing is not None)
    r, r_sp = read_labels(ref, reading, spacing is not None)
    if p.shape != r.shape:
        raise EvaluationError(f"prediction {pred} has shape {p.shape} but reference {ref} has {r.shape}: evaluate "
                              "volumes of the same grid")
    sp = resolve_spacing(p_sp, r_sp, spacing)
    if classes is not None and reading.instances and list(classes) != [1]:
        raise EvaluationError("--instances scores one class of objects (reported as 1): leave --classes out")
    if classes is not None and not reading.instances:  # a class in neither volume is a typo, not a perfect score
        present = labels_present(p, r, ignore_label)
        missing = [c for c in classes if c not in present]
        if missing:
            raise EvaluationError(f"class{'es' if len(missing) > 1 else ''} {missing} in neither volume (labels "
                                  f"present: {present}); pick --classes among those")
    prob = checks.probabilities(read_probabilities(probabilities), f"--probabilities {probabilities}") \
        if probabilities else None
    if reading.instances:
        if prob is not None and prob.ndim == 4:  # the object class's probability
            prob = prob[1]
        return evaluate_instances(p, r, sp, ignore_label, prob)
    return evaluate_labels(p, r, sp, classes, connectivity, prob, ignore_label)

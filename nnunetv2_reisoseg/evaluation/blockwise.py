"""``reisoseg evaluate`` on volumes of any size: the same measures, block by block, in bounded memory.

Objects are labelled across blocks by the blockwise engine's components passes (``blockwise/components.py``, ids
equal to cc3d on the whole volume), then one more pass adds up, per block, the voxel counts and the contingency
table of every class (``measures.py``: counts and tables sum over disjoint voxels). Every voxel and object
measure then equals ``evaluate_labels`` on the whole volume. Surface distances do not: a nearest surface can lie
anywhere, so HD95 and ASSD would need the whole masks in memory, and they are reported as null here.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.blockwise import components as cc
from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.state import Markers, save_npz
from nnunetv2_reisoseg.blockwise.tasks import BlockTask, TaskRunner
from nnunetv2_reisoseg.evaluation.evaluate import (
    ITK_SUFFIXES,
    EvaluationError,
    ReadOptions,
    check_finished,
    checked_labels,
    resolve_spacing,
)
from nnunetv2_reisoseg.evaluation.measures import ClassSummary, ObjectView, VoxelCounts, measure_row
from nnunetv2_reisoseg.evaluation.objects import ContingencyTable
from nnunetv2_reisoseg.io.checks import voxel_size, whole_numbers
from nnunetv2_reisoseg.io.checks import workers as checks_workers
from nnunetv2_reisoseg.io.labels import LabelValueError
from nnunetv2_reisoseg.io.volumes import VolumeReadError

# volumes above this many voxels are evaluated block by block (in memory a pair costs ~15 bytes per voxel)
BLOCKWISE_ABOVE = 2**28
TABLES = "tables"  # the tables pass's folder in the work folder: its markers and each block's counts and tables
DEFAULT_BLOCK = (64, 1024, 1024)
# a note that the blocks are tiny: more blocks than this, each of fewer voxels than that
SMALL_BLOCKS_NOTE, SMALL_BLOCK_VOXELS = 1000, 32**3


def _open(spec: str):
    from nnunetv2_reisoseg.io.volumes import read_volume

    if spec.lower().endswith(ITK_SUFFIXES):
        raise EvaluationError(f"{spec}: NIfTI / MHA / NRRD are read whole; for block-by-block evaluation convert "
                              "the volume to zarr or HDF5 first, or evaluate it in memory (without --blockwise)")
    try:
        return read_volume(spec)
    except VolumeReadError as e:
        raise EvaluationError(str(e).replace("reisoseg convert reads", "reisoseg evaluate reads")) from None


def volume_info(spec: str, allow_unfinished: bool = False, spacing_given: bool = False
                ) -> tuple[tuple[int, ...], tuple[float, float, float] | None]:
    """Shape and voxel size of a volume, without reading its voxels; an unfinished predict-volume output is
    refused unless ``allow_unfinished``, and a voxel size the file states badly unless ``spacing_given``."""
    vol = _open(spec)
    check_finished(vol, allow_unfinished)
    try:
        if not spacing_given:
            try:
                vol.stated_spacing(None)
            except VolumeReadError as e:
                raise EvaluationError(str(e)) from None
        return vol.shape, vol.spacing_nm
    finally:
        vol.close()


def contingency_block(work: str, index: int) -> int:
    """Per class, the voxel counts and the contingency table of one block; saved in the work folder."""
    markers = Markers(Path(work) / TABLES)
    if markers.is_done(index):
        return index
    s = json.loads((Path(work) / "evaluation.json").read_text())
    box = roi.partition(s["shape"], s["block_shape"])[index]
    sl = roi.slices(box)
    pv, rv = _open(s["prediction"]), _open(s["reference"])
    try:
        reading = ReadOptions(background=tuple(s["background"]), binary=s["binary"])
        pred = checked_labels(pv.array[sl], pv.source, reading)
        ref = checked_labels(rv.array[sl], rv.source, reading)
    finally:
        pv.close()
        rv.close()
    pred_ids = cc.final_ids(Path(work) / "prediction", index)
    ref_ids = cc.final_ids(Path(work) / "reference", index)
    valid = ref != s["ignore_label"] if s["ignore_label"] is not None else None
    if s.get("instances"):  # ids: one class of objects, which the labelling passes took as given
        pred, ref = (pred != 0).astype(np.uint8), ((ref != 0) & (True if valid is None else valid)).astype(np.uint8)
    out: dict[str, np.ndarray] = {}
    for c in s["classes"]:
        pm, rm = pred == c, ref == c
        if valid is not None:
            pm &= valid
        t = ContingencyTable.from_labels(np.where(rm, ref_ids, 0), np.where(pm, pred_ids, 0), valid)
        out[f"{c}_table"] = np.stack([t.ref_ids, t.pred_ids, t.counts])
        out[f"{c}_counts"] = np.array([pm.sum(), rm.sum(), np.count_nonzero(pm & rm)], np.int64)
    save_npz(Path(work) / TABLES / f"{index}.npz", **out)
    markers.mark(index)
    return index


def _class_result(work: Path, n_blocks: int, c: int) -> dict:
    """Every measure of class ``c`` from the blocks' counts and tables, summed (surface distances: null)."""
    tables, counts = [], VoxelCounts(0, 0, 0)
    for i in range(n_blocks):
        with np.load(work / TABLES / f"{i}.npz") as z:
            tables.append(z[f"{c}_table"])
            counts += VoxelCounts(*(int(v) for v in z[f"{c}_counts"]))
    t = ContingencyTable.total([ContingencyTable(*a) for a in tables])
    return measure_row(ClassSummary(counts, ObjectView(t)))


@dataclass(frozen=True, kw_only=True)
class BlockwiseRun:
    """How a blockwise evaluation runs: its blocks, where (serial, ``workers`` local processes or a dask
    ``scheduler``) and where its scratch goes (a temporary folder inside ``work_dir``)."""

    block_shape: tuple[int, ...] | None = None  # None: DEFAULT_BLOCK
    workers: int = 0
    scheduler: str | None = None
    work_dir: str | None = None
    progress: bool = True


def evaluate_blockwise(pred: str, ref: str, spacing: Sequence[float] | None = None,
                       classes: Sequence[int] | None = None, connectivity: int = 26, ignore_label: int | None = None,
                       reading: ReadOptions | None = None, *, run: BlockwiseRun | None = None) -> dict[str, dict]:
    """Every field of ``evaluate_labels`` except the surface distances (null), block by block. Scratch (object
    ids, 4 bytes per voxel and volume, compressed) goes to a temporary folder inside ``run.work_dir``."""
    run, reading = run or BlockwiseRun(), reading or ReadOptions()
    try:
        return _evaluate_blockwise(pred, ref, spacing, classes, connectivity, ignore_label, run, reading)
    except LabelValueError as e:  # found by a block of the labelling passes
        raise EvaluationError(f"{e}: evaluate scores classes, which are non-negative integers. Pass --background V "
                              "for values that mean 'no object'") from None


def _check_numbers(spacing: Sequence[float] | None, block_shape: Sequence[int] | None, workers: int) -> int:
    """The numbers a blockwise run reads, before any work (``io.checks``); returns the worker count."""
    if spacing is not None:
        voxel_size(spacing, "--spacing")
    if block_shape is not None:
        whole_numbers(block_shape, "--block-size")
    return checks_workers(workers)


def _evaluate_blockwise(pred: str, ref: str, spacing: Sequence[float] | None, classes: Sequence[int] | None,
                        connectivity: int, ignore_label: int | None, run: BlockwiseRun,
                        reading: ReadOptions) -> dict[str, dict]:
    block_shape, workers, scheduler, work_dir, progress = (run.block_shape, run.workers, run.scheduler, run.work_dir,
                                                           run.progress)
    if connectivity not in cc.CONNECTIVITIES:
        raise EvaluationError(f"--connectivity must be one of {cc.CONNECTIVITIES}, got {connectivity}")
    workers = _check_numbers(spacing, block_shape, workers)
    p_shape, p_sp = volume_info(pred, reading.allow_unfinished, spacing is not None)
    r_shape, r_sp = volume_info(ref, reading.allow_unfinished, spacing is not None)
    if p_shape != r_shape:
        raise EvaluationError(f"prediction {pred} has shape {p_shape} but reference {ref} has {r_shape}: evaluate "
                              "volumes of the same grid")
    if len(p_shape) != 3:
        raise EvaluationError(f"volumes must be 3D (Z, Y, X), got shape {p_shape}")
    sp = resolve_spacing(p_sp, r_sp, spacing)
    block = tuple(max(1, min(int(b), n)) for b, n in zip(block_shape or DEFAULT_BLOCK, p_shape))
    n_blocks = len(roi.partition(p_shape, block))
    if progress and n_blocks > SMALL_BLOCKS_NOTE and np.prod(block) < SMALL_BLOCK_VOXELS:
        print(f"evaluate: {n_blocks:,} blocks of {'x'.join(map(str, block))} voxels; blocks this small spend their "
              f"time on overhead (the default is {'x'.join(map(str, DEFAULT_BLOCK))})", file=sys.stderr, flush=True)
    if work_dir is not None and not Path(work_dir).is_dir():
        raise EvaluationError(f"--work-dir {work_dir} is not a folder")
    work = Path(tempfile.mkdtemp(prefix="reisoseg-evaluate-", dir=work_dir))
    try:
        with TaskRunner(workers, scheduler, progress, stream=sys.stderr) as runner:
            labelled = {}
            for name, spec, mask in (("reference", ref, None), ("prediction", pred, ref)):
                if reading.instances:  # the reference's ignore id is no object either
                    mask = ref
                s = cc.InstanceSettings(source=spec, shape=p_shape, block_shape=block, chunks=block, spacing_nm=sp,
                                        connectivity=connectivity, mask=mask if ignore_label is not None else None,
                                        ignore_label=ignore_label, background=tuple(reading.background),
                                        binary=reading.binary, given_ids=reading.instances)
                if progress:
                    print(f"evaluate: objects of the {name} ({len(s.blocks)} blocks of {'x'.join(map(str, block))})",
                          file=sys.stderr, flush=True)
                labelled[name] = cc.label_volume(work / name, s, runner)
            present = sorted({int(c) for o in labelled.values() for c in np.unique(o.classes)} - {0, ignore_label})
            if classes is None:
                classes = present
                if not classes:
                    raise EvaluationError("neither volume holds a foreground label: nothing to evaluate")
            else:
                missing = [c for c in classes if c not in present]
                if missing:
                    raise EvaluationError(f"class{'es' if len(missing) > 1 else ''} {missing} in neither volume "
                                          f"(labels present: {present}); pick --classes among those")
            settings = {"prediction": pred, "reference": ref, "shape": list(p_shape), "block_shape": list(block),
                        "classes": [int(c) for c in classes], "ignore_label": ignore_label,
                        "background": [int(b) for b in reading.background], "binary": reading.binary,
                        "instances": reading.instances}
            (work / "evaluation.json").write_text(json.dumps(settings))
            runner.run(BlockTask("evaluate: tables", contingency_block, str(work), n_blocks, Markers(work / TABLES)))
        return {str(c): _class_result(work, n_blocks, int(c)) for c in classes}
    finally:
        shutil.rmtree(work, ignore_errors=True)

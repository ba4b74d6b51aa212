"""``reisoseg predict-volume``: segment a volume larger than memory with any nnU-Net 3D model, block by block,
with nnU-Net's own answer. This module is the driver; the workers' code is ``blocks.py``.

A run is a few named parts, as in daisy: the total region (the volume), the blocks that partition it (each
writes whole output chunks of its own), the region a block reads (the nnU-Net tiles that touch it), a
process function (``run_block``) and a check that a block is done (its marker). Workers receive only
(output folder, block index); each opens the input and output stores itself and keeps its predictor.

Every block follows nnU-Net's sliding window over the whole volume: the tiles nnU-Net would place, in its
order, with its Gaussian weighting, fp16 accumulation, test-time mirroring and fold ensembling, on data
normalised with statistics of the whole volume (a first streaming pass). Each tile is predicted once, by the
block that holds its centre (``grid.Layout``): pass 1 writes the labels where only a block's own tiles reach
(identical to ``nnUNetPredictor`` on the whole volume with its statistics) and hands its sums over block
borders to their blocks, per fold; pass 2 adds those up and follows nnU-Net's float16 steps from each fold's
logits on. A border voxel can still differ where its classes are within float16 rounding of a tie: nnU-Net
adds the same tiles in another order.
"""
from __future__ import annotations

import io
import math
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg import our_trainers
from nnunetv2_reisoseg.blockwise import components as inst
from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.tasks import TaskRunner
from nnunetv2_reisoseg.errors import ReisosegError
from nnunetv2_reisoseg.io import checks
from nnunetv2_reisoseg.io.checkpoints import load_checkpoint
from nnunetv2_reisoseg.io.folders import OutputError
from nnunetv2_reisoseg.io.volumes import VolumeReadError, input_path, read_volume
from nnunetv2_reisoseg.progress import progress_bar
from nnunetv2_reisoseg.volume import grid as g
from nnunetv2_reisoseg.volume import output as store
from nnunetv2_reisoseg.volume import pyramid as pyr
from nnunetv2_reisoseg.volume.blocks import finish_block, release_predictors, run_block
from nnunetv2_reisoseg.volume.intensity import NonFiniteError, VolumeStats, check_scheme, stream_stats
from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions, RunSettings

SLAB_VOXELS = 2**24  # voxels per slab of the statistics pass (128 MB in float64)


class VolumeError(ReisosegError, ValueError):
    """Bad input for predict-volume; the message names the problem and the fix. Nothing has been written."""


# ------------------------------------------------------------------------------------------------ model
@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What ``check_model`` finds in a model folder: its plans, configuration, dataset.json and trainer."""

    plans: dict
    configuration: str
    dataset_json: dict
    trainer: str | None

    @property
    def cfg(self) -> dict:
        """The configuration's entry of the plans (patch size, spacing, ...)."""
        return self.plans["configurations"][self.configuration]

    @property
    def labels(self) -> dict[str, int]:
        """dataset.json's label classes (regions' lists left out)."""
        return {k: v for k, v in self.dataset_json["labels"].items() if isinstance(v, int)}

    @property
    def n_outputs(self) -> int:
        """The network's output channels (nnU-Net's segmentation heads)."""
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        return PlansManager(self.plans).get_label_manager(self.dataset_json).num_segmentation_heads


def check_model(model: Path, folds: Sequence[int | str], checkpoint: str) -> ModelInfo:
    """The model folder's plans, dataset.json and configuration; clear errors for what is missing."""
    missing = [f for f in ("plans.json", "dataset.json") if not (model / f).is_file()]
    if missing:
        raise VolumeError(f"{model} is not an nnU-Net model folder (no {', '.join(missing)}); pass the folder that "
                          "holds plans.json and fold_X/, e.g. $nnUNet_results/DatasetXXX/nnUNetTrainer__nnUNetPlans__"
                          "3d_fullres")
    available = sorted(p.name[5:] for p in model.glob("fold_*") if (p / checkpoint).is_file())
    absent = [str(f) for f in folds if str(f) not in available]
    if absent:
        raise VolumeError(f"{model} has no {checkpoint} for fold(s) {', '.join(absent)}; folds with one: "
                          f"{', '.join(available) or 'none'} (-f, or -chk for another checkpoint)")
    try:
        ckpt = load_checkpoint(model / f"fold_{folds[0]}" / checkpoint, mmap=True)
    except ValueError as e:
        raise VolumeError(str(e)) from None
    _check_trainer(ckpt.get("trainer_name"), model)
    plans = checks.read_plans(model / "plans.json", "the model folder's plans.json is damaged: copy the model again")
    configuration = (ckpt.get("init_args") or {}).get("configuration")
    if configuration not in plans["configurations"]:
        raise VolumeError(f"{model}: its checkpoint names configuration {configuration!r}, which its plans.json lacks "
                          f"({', '.join(plans['configurations'])}); the checkpoint is not from this model folder")
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cm = PlansManager(plans).get_configuration(configuration)
    if len(cm.patch_size) != 3:
        raise VolumeError(f"{model} is a 2D model ({configuration}); predict-volume needs a 3D one (3d_fullres)")
    if cm.previous_stage_name is not None:
        raise VolumeError(f"{model} is a cascade stage ({configuration}) that needs the previous stage's "
                          "segmentation; predict with a 3d_fullres or 3d_lowres model")
    dataset_json = checks.json_shape(
        checks.read_json(model / "dataset.json", "the model's dataset.json", "copy the model folder again"),
        str(model / "dataset.json"), {"channel_names": dict, "labels": dict}, "copy the model folder again")
    for scheme, masked in zip(cm.normalization_schemes, cm.use_mask_for_norm):
        try:
            check_scheme(scheme, masked)
        except ValueError as e:
            raise VolumeError(str(e)) from None
    return ModelInfo(plans=plans, configuration=configuration, dataset_json=dataset_json,
                     trainer=ckpt.get("trainer_name"))


def _check_trainer(name: str | None, model: Path) -> None:
    """The checkpoint's trainer class must be found (nnU-Net rebuilds the network from it), before any output."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        with our_trainers(), redirect_stdout(io.StringIO()):  # nnU-Net prints every folder it searches
            recursive_find_trainer_class_by_name(str(name))
    except (RuntimeError, AssertionError) as e:
        raise VolumeError(f"{model}'s checkpoint was written by trainer {name}, which nnU-Net cannot find ({e}). "
                          "Install the package that defines it and add its folder to nnUNet_extTrainer, or export "
                          "the model for stock nnU-Net (reisoseg export-stock)") from None


# ------------------------------------------------------------------------------------------------ driver
@dataclass(frozen=True)
class InstanceOptions:
    """``--instances``: objects as 3D connected components of each class (``components``, for a semantic model),
    or, for a model trained on boundary targets, seeds grown by a watershed (``watershed``, ``blockwise/
    watershed.py``: its thresholds, halo and smallest seed); objects smaller than ``min_size_nm3`` are dropped."""

    connectivity: int = 26
    min_size_nm3: float = 0.0
    mode: str = "components"
    watershed: dict = field(default_factory=dict)  # WatershedSettings' thresholds, halo_nm and min_seed_nm3

    @classmethod
    def from_flags(cls, instances: str | None, connectivity: int | None, min_size_nm3: float | None,
                   watershed: dict | None = None) -> InstanceOptions | None:
        """``--instances [MODE]`` with the options that shape its objects, which shape nothing without it."""
        given = {k: v for k, v in (watershed or {}).items() if v is not None}
        if not instances:
            if min_size_nm3 is not None or connectivity is not None or given:
                raise VolumeError("--min-size, --connectivity and the watershed's options shape the objects of "
                                  "--instances; add --instances")
            return None
        if instances not in INSTANCE_MODES:
            raise VolumeError(f"--instances {instances}: choose one of {', '.join(INSTANCE_MODES)}")
        if given and instances != "watershed":
            raise VolumeError(f"{', '.join('--' + k.replace('_', '-') for k in given)} shape(s) the watershed: pass "
                              "--instances watershed")
        return cls(connectivity or 26, min_size_nm3 or 0.0, instances, given)

    def record(self) -> dict:
        """What the instances were made with, kept with them (``--c`` on a finished output compares it)."""
        out = {"connectivity": self.connectivity, "min_size_nm3": self.min_size_nm3}
        if self.mode != "components":  # outputs of before the watershed recorded no mode
            out.update(mode=self.mode, **self.watershed_knobs())
        return out

    def watershed_knobs(self) -> dict:
        """The watershed's knobs: ``WatershedSettings``' defaults with this run's options over them."""
        from nnunetv2_reisoseg.blockwise.watershed import WatershedSettings

        defaults = {f.name: f.default for f in fields(WatershedSettings) if f.name in WATERSHED_KNOBS}
        return {**defaults, **self.watershed}


INSTANCE_MODES = ("components", "watershed")
WATERSHED_KNOBS = ("seed_threshold", "boundary_threshold", "foreground_threshold", "halo_nm", "min_seed_nm3")


@dataclass
class Summary:
    output: Path
    blocks: int
    blocks_run: int
    voxels: int
    seconds: float
    tiles_run: int
    tiles_whole_volume: int
    objects: int | None = None  # with instances: how many
    instance_seconds: float = 0.0
    levels: int = 1  # pyramid levels, level 0 included

    @property
    def overlap_overhead(self) -> float:
        return self.tiles_run / max(1, self.tiles_whole_volume)


def predict_volume(input_spec: str, output: str | os.PathLike, model: str | os.PathLike,
                   options: PredictOptions | None = None, run: RunOptions | None = None,
                   instances: InstanceOptions | None = None, norm_stats: VolumeStats | None = None) -> Summary:
    """Segment ``input_spec`` (PATH[:KEY] of HDF5, zarr / OME-Zarr, MRC, TIFF) into the OME-Zarr ``output``;
    with ``instances``, also its objects across the whole volume (``write_instances``). ``norm_stats`` replaces
    the statistics pass (tests give nnU-Net's own)."""
    options, run = options or PredictOptions(), run or RunOptions()
    out, model = Path(output).absolute(), Path(model).resolve()  # not resolved: a symlinked -o is refused
    check_options(options, instances)
    checks.workers(run.workers)
    if instances is not None and instances.mode == "watershed" and not options.save_probabilities:
        options = replace(options, save_probabilities=True)  # the watershed grows from them; they stay with it
    try:
        dest = store.previous_run(out, run.cont, run.overwrite, [input_path(input_spec), model])
    except OutputError as e:
        raise VolumeError(str(e)) from None
    info = check_model(model, options.folds, options.checkpoint)
    if instances is not None and instances.mode == "watershed":
        watershed_channels(info)  # a model without a boundary class is refused before any work
    settings = plan_run(input_spec, model, options, info, dest.previous, norm_stats, run.progress)
    try:
        summary = _write(dest, settings, info, run, instances)
    except BaseException as e:
        if dest.created and dest.work.exists() and not store.written_any(dest.work):
            shutil.rmtree(dest.work)  # nothing of this run worth continuing: leave no output behind
            store.drop_run_state(dest.work)
        if isinstance(e, VolumeReadError):  # a damaged part of the input, found by the block that reads it
            raise VolumeError(f"{e} (the blocks written so far stay; --c continues once the input is repaired)") \
                from None
        raise
    return summary


def _write(dest: store.Destination, settings: RunSettings, info: ModelInfo, run: RunOptions,
           instances: InstanceOptions | None) -> Summary:
    """Create (or reopen) the store, run both passes and the instances, mark it complete and swap it into place."""
    out = dest.work
    try:
        if dest.previous is not None and store.is_complete(out):
            store.check_same(out, settings, dest.previous)
            _check_same_instances(out, instances)
            if run.progress:
                print(f"predict-volume: {dest.out} is complete: nothing to continue (--overwrite predicts it again)",
                      flush=True)
            n = len(roi.partition(settings.shape, settings.block_shape))
            return Summary(dest.out, n, 0, int(np.prod(settings.shape)), 0.0, 0, 0)
        done = store.prepare(out, settings, info.labels, info.n_outputs, dest.previous)
    except OutputError as e:
        raise VolumeError(str(e)) from None
    with TaskRunner(run.workers, run.scheduler, run.progress, release=release_predictors) as runner:
        summary = predict_blocks(out, settings, info, done, runner, run.progress)
        if instances is not None:
            t0 = time.perf_counter()
            summary.objects = len(write_instances(out, settings, info.labels, instances, runner, run.cont, info))
            summary.instance_seconds = time.perf_counter() - t0
            if run.progress:
                print(f"predict-volume: {summary.objects} objects in {dest.out / store.INSTANCES} "
                      f"({summary.instance_seconds:.1f} s, {summary.instance_seconds / max(summary.seconds, 1e-9):.2f}x"
                      " the prediction's time in this run)", flush=True)
        summary.levels = write_pyramids(out, settings, runner)
    store.finish(dest, {"blocks": summary.blocks, "objects": summary.objects, "levels": summary.levels})
    summary.output = dest.out
    return summary


def _check_same_instances(out: Path, instances: InstanceOptions | None) -> None:
    """--c on a finished output: asking for instances other than those it holds is refused (nothing is redone)."""
    import zarr

    if instances is None:
        return
    root = zarr.open_group(str(out), mode="r")
    made = dict(root[store.INSTANCES].attrs.get("reisoseg", {})) if store.INSTANCES in root else {}
    want = instances.record()
    diff = [f"{k}: {made.get(k, 'no instances')} -> {v}" for k, v in want.items() if made.get(k) != v]
    if diff:
        raise VolumeError(f"{out} is a finished output made with other settings ({', '.join(diff)}); pass "
                          "--overwrite to predict it again")


def check_options(options: PredictOptions, instances: InstanceOptions | None) -> None:
    """The options' own rules, before anything is read."""
    import torch

    checks.number(options.step_size, "-step_size", 0.0, 1.0, low_open=True, what="a fraction of the patch")
    if options.spacing is not None:
        checks.voxel_size(options.spacing, "--spacing")
    if options.block_size is not None:
        checks.whole_numbers(options.block_size, "--block-size")
    if instances is not None and instances.connectivity not in inst.CONNECTIVITIES:
        raise VolumeError(f"--connectivity must be one of {inst.CONNECTIVITIES}, got {instances.connectivity}")
    if instances is not None:
        checks.number(instances.min_size_nm3, "--min-size", 0.0, math.inf, what="a volume in nm^3")
        knobs = instances.watershed_knobs()
        for k in ("seed_threshold", "boundary_threshold", "foreground_threshold"):
            checks.probability(knobs[k], "--" + k.replace("_", "-"))
        checks.number(knobs["halo_nm"], "--halo-nm", 0.0, 1e7, what="a width in nm")
        checks.number(knobs["min_seed_nm3"], "--min-seed-nm3", 0.0, math.inf, what="a volume in nm^3")
    if options.device == "cuda" and not torch.cuda.is_available():
        raise VolumeError("-device cuda but CUDA is not available here; pass -device cpu")


def plan_run(input_spec: str, model: Path, options: PredictOptions, info: ModelInfo, previous: dict | None,
             norm_stats: VolumeStats | None, progress: bool) -> RunSettings:
    """The run's settings: the input checked against the model, the blocks and chunks, and the intensity
    statistics (those of the run being continued, given ones, or a streaming pass over the input)."""
    try:
        vol = read_volume(input_spec)
    except VolumeReadError as e:
        raise VolumeError(str(e)) from None
    try:
        shape = vol.shape
        sp = vol.stated_spacing(options.spacing)
        if sp is None:
            raise VolumeError(f"{vol.source}: no voxel size in the file; pass --spacing Z Y X in nm")
        n_channels = len(info.dataset_json["channel_names"])
        if n_channels != 1:
            raise VolumeError(f"the model takes {n_channels} input channels; predict-volume reads one-channel volumes")
        tf = info.plans.get("transpose_forward", [0, 1, 2])
        _check_voxel_size(vol.source, shape, sp, tf, info.cfg["spacing"])
        chunks, block = _blocks(shape, tf, info.cfg["patch_size"], options.block_size)
        if previous is not None and norm_stats is None:
            statistics = previous.get("statistics")  # computed by the run being continued
        else:
            statistics = (norm_stats if norm_stats is not None else _statistics(vol, progress)).to_dict()
        if statistics["bbox"] is None:
            raise VolumeError(f"{vol.source} is all zeros: nothing to segment")
        image = np.dtype(vol.array.dtype).name if options.image else None  # native byte order in the copy
    except VolumeReadError as e:
        raise VolumeError(str(e)) from None
    finally:
        vol.close()
    return RunSettings(input=input_spec, shape=tuple(shape), spacing_nm=tuple(sp), model=str(model),
                       folds=tuple(int(f) if str(f).isdigit() else f for f in options.folds),
                       checkpoint=options.checkpoint, step_size=options.step_size, tta=options.tta,
                       device=options.device, block_shape=tuple(block), chunks=tuple(chunks),
                       save_probabilities=options.save_probabilities, transpose_forward=tuple(tf),
                       trainer=info.trainer, configuration=info.configuration, statistics=statistics, image=image)


def _check_voxel_size(source: str, shape: Sequence[int], sp: Sequence[float], tf: Sequence[int],
                      target: Sequence[float]) -> None:
    """predict-volume never resamples: the volume must be at the model's voxel size."""
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    net_shape = [shape[a] for a in tf]
    if list(compute_new_shape(net_shape, [sp[a] for a in tf], target)) != net_shape:
        want = [0.0] * 3
        for i, a in enumerate(tf):
            want[a] = target[i]
        raise VolumeError(
            f"{source} has voxels of {'x'.join(f'{v:g}' for v in sp)} nm but the model was trained at "
            f"{'x'.join(f'{v:g}' for v in want)} nm: nnU-Net would resample the whole volume. Give a volume at "
            "the model's voxel size (e.g. the OME-Zarr level at that scale), or --spacing if the file's is wrong")


def _blocks(shape: Sequence[int], tf: Sequence[int], patch: Sequence[int],
            block_size: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(chunks, block shape) in input axes."""
    patch_in = [0] * 3
    for i, a in enumerate(tf):
        patch_in[a] = patch[i]
    chunks = g.default_chunks(shape)
    if block_size is not None:  # blocks smaller than the default chunks get chunks of their size
        chunks = tuple(min(c, max(1, int(b))) for c, b in zip(chunks, block_size))
    return chunks, g.block_shape(shape, patch_in, chunks, block_size)


def _statistics(vol, progress: bool) -> VolumeStats:
    """The statistics pass: one streaming read of the input."""
    t0 = time.perf_counter()
    shape = vol.shape
    slab = max(1, SLAB_VOXELS // max(1, shape[1] * shape[2]))

    bar = progress_bar(shape[0], "predict-volume: statistics pass", "section", show=progress)

    def show(done: int, n: int) -> None:
        bar.update(done - bar.n)

    try:
        stats = stream_stats(vol.array, slab, show)
    except NonFiniteError as e:
        raise VolumeError(f"{vol.source}: {e}; nnU-Net's statistics and every label would be wrong. Replace them "
                          "in the volume (e.g. with 0, numpy.nan_to_num) and run again") from None
    finally:
        bar.close()
    if progress:
        print(f"predict-volume: mean {stats.mean:.4g}, sd {stats.std:.4g} over the nonzero box "
              f"{stats.bbox} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return stats


def predict_blocks(out: Path, settings: RunSettings, info: ModelInfo, done: set[int], runner: TaskRunner,
                   progress: bool) -> Summary:
    """Both passes over the blocks not yet done, on ``runner``; the scratch pieces are removed afterwards."""
    shape, block = tuple(settings.shape), tuple(settings.block_shape)
    all_blocks = roi.partition(shape, block)
    todo = [i for i in range(len(all_blocks)) if i not in done]
    grid = g.TileGrid(g.to_network(settings.volume_stats.bbox, settings.transpose_forward),
                      tuple(info.cfg["patch_size"]), settings.step_size)
    if progress:
        print(f"predict-volume: {len(all_blocks)} blocks of {'x'.join(map(str, block))} (chunks "
              f"{'x'.join(map(str, settings.chunks))}), {len(done)} already done; {len(grid.tiles())} nnU-Net tiles "
              f"of {'x'.join(map(str, info.cfg['patch_size']))}, folds {list(settings.folds)}, TTA "
              f"{'on' if settings.tta else 'off'}, {settings.device}" + runner.describe(), flush=True)
    t0 = time.perf_counter()
    summed = store.done_blocks(out, "summed") | done
    layout = g.Layout(grid, shape, block, tuple(settings.transpose_forward))
    after = g.finish_after([layout.plan(i) for i in range(len(all_blocks))])
    # a block's borders are finished, and their scratch released, as soon as its neighbours have their sums
    results = runner.two_passes(run_block, finish_block, str(out), [i for i in todo if i not in summed],
                                {t: after[t] for t in todo}, "blocks", len(all_blocks), len(done))
    store.drop_pieces(out)  # pieces for blocks finished by an earlier run, if a killed run left any
    seconds = time.perf_counter() - t0
    summary = Summary(out, len(all_blocks), len(todo), int(np.prod(shape)), seconds,
                      sum(r["tiles"] for r in results), len(grid.tiles()))
    if progress:
        print(f"predict-volume: wrote {out}: {len(todo)} blocks in {seconds:.1f} s "
              f"({summary.voxels / max(seconds, 1e-9):,.0f} voxels/s over the volume"
              # after --c only some blocks ran here: their tiles say nothing of the whole run's overhead
              + (f"; {summary.overlap_overhead:.2f} tile predictions per nnU-Net tile)"
                 if len(results) == len(all_blocks) else ")"),
              flush=True)
    return summary


def watershed_channels(info: ModelInfo) -> tuple[int, tuple[int, ...], int]:
    """The probability channels of background, the object's interior and the boundary of a model trained on
    boundary targets (a class named "boundary", as convert and synth --boundary-nm write it)."""
    labels = info.labels
    if len(labels) != len(info.dataset_json["labels"]):
        raise VolumeError("--instances watershed decodes label classes; this model predicts regions")
    if "boundary" not in labels:
        raise VolumeError(f"--instances watershed grows objects from a model trained on boundary targets, with a class "
                          f"named 'boundary' (reisoseg convert or synth --boundary-nm); this model's classes are "
                          f"{sorted(labels)}. Use --instances (components) for a semantic model")
    interior = tuple(v for k, v in labels.items() if k not in ("background", "boundary", "ignore"))
    if not interior:
        raise VolumeError("--instances watershed needs an object class beside background and boundary")
    return labels.get("background", 0), interior, labels["boundary"]


def _watershed(out: Path, settings: RunSettings, info: ModelInfo, options: InstanceOptions,
               runner: TaskRunner) -> str:
    """The seeds grown by the blockwise watershed (``blockwise/watershed.py``) from the run's probabilities; returns
    the grown ids, which the components passes then number (given ids) and table."""
    from nnunetv2_reisoseg.blockwise import watershed as ws

    background, interior, boundary = watershed_channels(info)
    s = ws.WatershedSettings(probabilities=str(out / "probabilities" / "0"), background=background,
                             interior=interior, boundary=boundary, shape=tuple(settings.shape),
                             block_shape=tuple(settings.block_shape), chunks=tuple(settings.chunks),
                             spacing_nm=tuple(settings.spacing_nm), **options.watershed_knobs())
    return ws.grow(store.run_dir(out) / "watershed", s, runner)


def write_instances(out: Path, settings: RunSettings, labels: dict[str, int], options: InstanceOptions,
                    runner: TaskRunner, cont: bool, info: ModelInfo | None = None) -> inst.Objects:
    """The objects over the whole predicted volume (the 3D connected components of each class, or with the
    watershed mode the seeds grown over the probabilities of ``info``'s model): an OME-NGFF label image
    ``OUT.zarr/labels/instances`` and the table of its objects, ``OUT.zarr/objects``."""
    import zarr

    shape, chunks = tuple(settings.shape), tuple(settings.chunks)
    dest = out / store.INSTANCES
    source, given_ids = f"{out}:{store.SEMANTIC}", False
    if options.mode == "watershed":
        source, given_ids = _watershed(out, settings, info, options, runner), True
    s = inst.InstanceSettings(source=source, shape=shape, block_shape=tuple(settings.block_shape),
                              chunks=chunks, spacing_nm=tuple(settings.spacing_nm), connectivity=options.connectivity,
                              min_size_nm3=options.min_size_nm3, dest=str(dest / "0"), given_ids=given_ids)
    work = store.run_dir(out) / "instances"
    if not cont and dest.exists():
        shutil.rmtree(dest)
    group = zarr.open_group(str(out), mode="r+").require_group("labels")
    image = group.require_group("instances")
    if "0" not in image:
        image.create_array("0", shape=shape, chunks=chunks, dtype=np.uint32, fill_value=0)
    # zarr writes a group's attributes whole from the handle's copy: this handle's writes first, then the
    # label metadata through a handle of its own
    image.attrs["reisoseg"] = options.record()
    store.write_multiscales(image, "instances", [list(settings.spacing_nm)])
    store.write_label_image(group, "instances", None, settings.image is not None)
    try:
        objects = inst.label_volume(work, s, runner, cont)
    except inst.InstanceError as e:
        raise VolumeError(str(e)) from None
    objects.write_zarr(str(out / store.OBJECTS), {v: k for k, v in labels.items()})
    return objects


def write_pyramids(out: Path, settings: RunSettings, runner: TaskRunner) -> int:
    """The pyramid levels of the image and every label image in ``out`` (``volume.pyramid``'s rule), level by
    level, block by block, resumable from the markers in the run state; returns the number of levels."""
    import zarr

    root = zarr.open_group(str(out), mode="r+")
    arrays = [(store.SEMANTIC, pyr.NEAREST)] + ([(store.INSTANCES, pyr.NEAREST)] if store.INSTANCES in root else [])
    if settings.image is not None:
        arrays.insert(0, ("", pyr.MEAN))
    chunks = tuple(settings.chunks)
    levels = pyr.levels(settings.shape, settings.spacing_nm, chunks)
    for array, kind in arrays:
        group = root[array] if array else root
        for i, lv in enumerate(levels[1:], start=1):
            if str(i) not in group:
                group.create_array(str(i), shape=lv.shape, chunks=tuple(min(c, n) for c, n in zip(chunks, lv.shape)),
                                   dtype=group["0"].dtype, fill_value=0)
            runner.run(pyr.plan_job(store.run_dir(out), out, array, i, kind, chunks, lv))
        # written last: a viewer reads the levels the metadata names
        store.write_multiscales(group, array.rsplit("/", 1)[-1] or Path(settings.input).name,
                                [lv.spacing_nm for lv in levels])
    return len(levels)

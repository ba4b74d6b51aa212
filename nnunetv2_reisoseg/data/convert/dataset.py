"""``reisoseg convert``: EM volumes into an nnU-Net raw dataset.

EM datasets are often one or two large volumes; ``split`` cuts each into blocks so that nnU-Net's
cross-validation has cases, and writes a splits file with one fold per block position. Voxel sizes
are written in nm, from the files or from ``spacing``. Everything is written to a staging folder first,
so an error leaves nothing behind.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.data.convert.downsample import downsample_image, downsample_labels
from nnunetv2_reisoseg.data.convert.errors import ConvertError
from nnunetv2_reisoseg.data.convert.labels import MAX_CLASSES, LabelRules
from nnunetv2_reisoseg.data.instances import boundary_targets, downsample_ids
from nnunetv2_reisoseg.data.raw_dataset import raw_dataset_target, write_dataset_json, write_image
from nnunetv2_reisoseg.io.checks import number, voxel_size
from nnunetv2_reisoseg.io.folders import staged_folder
from nnunetv2_reisoseg.io.volumes import Volume, VolumeReadError, input_path, read_volume
from nnunetv2_reisoseg.progress import progress_bar


@dataclass
class Pair:
    image: str
    labels: str | None


def volume_pairs(images: Sequence[str], labels: Sequence[str], test_images: Sequence[str] = (),
                 test_labels: Sequence[str] = ()) -> tuple[list[Pair], list[Pair]]:
    """The training and test (image, labels) pairs of ``--image``/``--labels`` and ``--test-image``/
    ``--test-labels``, given in the same order (test labels may be left out)."""
    if len(images) != len(labels):
        raise ConvertError(f"{len(images)} --image but {len(labels)} --labels; give one --labels per --image, in "
                           "the same order")
    if test_labels and len(test_labels) != len(test_images):
        raise ConvertError("give one --test-labels per --test-image (or none)")
    test = [Pair(i, test_labels[k] if test_labels else None) for k, i in enumerate(test_images)]
    return [Pair(i, lab) for i, lab in zip(images, labels)], test


def _split_slices(shape: Sequence[int], n: int, axis: int, start: int = 0, stop: int | None = None,
                  factors: Sequence[int] = (1, 1, 1)) -> list[tuple[slice, ...]]:
    """``n`` blocks along ``axis`` of the part [start, stop) of a grid of ``shape``, as slices of the original
    volume, which is ``factors`` times finer (the remainder that does not fill a coarse voxel is left out)."""
    stop = shape[axis] if stop is None else stop
    edges = np.linspace(start, stop, n + 1).round().astype(int)
    out = []
    for a, b in itertools.pairwise(edges):
        s = [slice(0, int(k) * f) for k, f in zip(shape, factors)]
        s[axis] = slice(int(a) * factors[axis], int(b) * factors[axis])
        out.append(tuple(s))
    return out


def _hold_out_parts(img: Volume, sp: Sequence[float], split: int, split_axis: str, hold_out: float,
                    factors: Sequence[int]) -> list[tuple[str, tuple[slice, ...]]]:
    """(kind, slices) of a training volume: ``split`` blocks, and with ``hold_out`` a test region at the end of
    the split axis, spatially separate from every training block (not random blocks)."""
    grid = tuple(n // f for n, f in zip(img.shape, factors))
    axis = choose_split_axis(grid, sp, split + (1 if hold_out else 0)) if split_axis == "auto" \
        else "zyx".index(split_axis)
    n_test = round(hold_out * grid[axis])
    n_train = grid[axis] - n_test
    if hold_out and (n_test < MIN_BLOCK or n_train // split < MIN_BLOCK):
        raise ConvertError(f"{img.source}: --hold-out {hold_out:g} along {'zyx'[axis]} leaves a test region of "
                           f"{n_test} and training blocks of {n_train // split} voxels; at least {MIN_BLOCK} each")
    if split > 1 and n_train // split < MIN_BLOCK:
        raise ConvertError(f"{img.source}: --split {split} along {'zyx'[axis]} gives blocks of "
                           f"{n_train // split} voxels; use fewer blocks or another --split-axis")
    parts = [("train", s) for s in _split_slices(grid, split, axis, 0, n_train, factors)]
    if n_test:
        parts += [("test", s) for s in _split_slices(grid, 1, axis, n_train, None, factors)]
    return parts


SPLITS_FILE = "splits_final.json"


def _open(spec: str) -> Volume:
    try:
        return read_volume(spec)
    except VolumeReadError as e:
        raise ConvertError(str(e)) from None


def _write_block_folds(folder: Path, folds: dict[int, list[str]]) -> None:
    """nnU-Net's splits file with one fold per block position: fold k validates the k-th block of every
    training volume, so that validation is spatially separate from training. nnU-Net reads it from
    $nnUNet_preprocessed/<dataset>/ (its own random 5-fold split needs 5 cases and mixes neighbours)."""
    everything = [c for k in sorted(folds) for c in folds[k]]
    splits = [{"train": sorted(c for c in everything if c not in folds[k]), "val": sorted(folds[k])}
              for k in sorted(folds)]
    (folder / SPLITS_FILE).write_text(json.dumps(splits, indent=1))


MIN_BLOCK = 8  # voxels along the split axis: fewer leave nnU-Net nothing to pool


def choose_split_axis(shape: Sequence[int], spacing: Sequence[float], n: int = 1) -> int:
    """The axis of largest physical extent (a lateral axis on ties, so every block keeps all sections) among
    those that give blocks of at least ``MIN_BLOCK`` voxels; the largest extent when none does."""
    extent = [k * s for k, s in zip(shape, spacing)]
    # preference: larger extent first, lateral before z when within 1%
    order = sorted(range(3), key=lambda a: (-round(extent[a] / (0.01 * max(extent) or 1)), a == 0, a))
    fits = [a for a in order if shape[a] // max(1, n) >= MIN_BLOCK]
    return fits[0] if fits else order[0]


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """How volumes become cases: voxel size, blocks, a held-out test region, label rules, downsampling."""

    spacing_nm: tuple[float, float, float] | None = None  # None: the files' own voxel size
    split: int = 1  # blocks per training volume (one fold each)
    split_axis: str = "auto"
    rules: LabelRules = field(default_factory=LabelRules)
    channel_name: str = "EM"
    class_names: tuple[str, ...] | None = None
    downsample: tuple[int, int, int] = (1, 1, 1)  # Z, Y, X: images by block mean, labels by majority
    hold_out: float = 0.0  # fraction of each training volume, at the end of the split axis, kept as test
    # the labels are object ids: kept in instancesTr/ and instancesTs/ (which nnU-Net ignores), and the classes
    # nnU-Net trains are one object class, or with boundary_nm the boundary targets (object interior, boundary)
    instances: bool = False
    boundary_nm: float | None = None  # the in-plane thickness of the boundary class (implies instances)

    @property
    def keeps_ids(self) -> bool:
        return self.instances or self.boundary_nm is not None

    def check(self) -> None:
        """Raise a ConvertError naming the option and what it takes."""
        if len(self.downsample) != 3 or min(self.downsample) < 1:
            raise ConvertError(f"--downsample takes three integer factors Z Y X >= 1, got {list(self.downsample)}")
        if not 0.0 <= self.hold_out < 1.0:
            raise ConvertError(f"--hold-out is a fraction in [0, 1), got {self.hold_out}")
        if self.split < 1:
            raise ConvertError(f"--split must be >= 1, got {self.split}")
        if self.spacing_nm is not None:
            voxel_size(self.spacing_nm, "--spacing")
        if self.split_axis not in ("auto", "z", "y", "x"):
            raise ConvertError(f"--split-axis must be auto, z, y or x, got {self.split_axis}")
        if self.rules.threshold is not None:
            number(self.rules.threshold, "--threshold", -math.inf, math.inf)
        both = sorted(set(self.rules.ignore) & set(self.rules.background))
        if both:
            raise ConvertError(f"--ignore-value {' '.join(map(str, both))} is also a background value (--background "
                               f"{' '.join(map(str, self.rules.background))}): every such voxel would become 'not "
                               "annotated'. If it does mean 'not annotated', pass --background with the values that "
                               "mean background")
        names = self.class_names or ()
        reserved = [n for n in names if n.strip().lower() in ("background", "ignore") or not n.strip()]
        if reserved:
            raise ConvertError(f"--class-names names classes 1..K; {reserved[0]!r} is not a name for one (background "
                               "is class 0 and ignore the 'not annotated' label, both named by convert itself)")
        if len(set(names)) != len(names):
            raise ConvertError(f"--class-names {' '.join(names)}: each class needs its own name")
        self._check_instances()

    def _check_instances(self) -> None:
        if self.boundary_nm is not None:
            number(self.boundary_nm, "--boundary-nm", 0.0, 1e6, low_open=True, what="a thickness in nm")
        if not self.keeps_ids:
            return
        r = self.rules
        clash = [flag for flag, on in (("--binary", r.binary), ("--label-map", bool(r.label_map)),
                                       ("--threshold", r.threshold is not None)) if on]
        if clash:
            raise ConvertError(f"--instances (or --boundary-nm) takes the labels as object ids as they are; "
                               f"{clash[0]} would change them: leave it out")
        if self.class_names and len(self.class_names) != 1:
            raise ConvertError("with --instances, --class-names names the one object class (e.g. mitochondria)")


@dataclass
class _Source:
    """One opened image (and labels) with the voxel size it is converted at."""

    kind: str  # "train" or "test"
    image: Volume
    labels: Volume | None
    spacing: tuple[float, float, float]


@dataclass
class _Block:
    """One case to write: a region of a source, at the (downsampled) voxel size of the case."""

    kind: str
    source: _Source
    spacing: tuple[float, float, float]
    region: tuple[slice, ...]


def convert(raw_root: str | os.PathLike, dataset_id: int, name: str, train: Sequence[Pair], test: Sequence[Pair] = (),
            options: ConvertOptions | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``DatasetXXX_NAME`` under ``raw_root`` from image/label volume pairs; returns its path. Everything
    is opened and checked before anything is written, and written to a staging folder first."""
    options = options or ConvertOptions()
    options.check()
    if not train:
        raise ConvertError("no training volume: pass --image PATH[:KEY] --labels PATH[:KEY]")
    if any(p.labels is None for p in train):
        raise ConvertError("every --image needs its --labels (in the same order)")
    try:
        target, clashes = raw_dataset_target(raw_root, dataset_id, name, overwrite,
                                             [input_path(p) for pair in (*train, *test)
                                              for p in (pair.image, pair.labels) if p])
    except ValueError as e:
        raise ConvertError(str(e)) from None
    sources: list[_Source] = []
    try:
        _convert(target, clashes, name, train, test, options, progress, sources)
    except VolumeReadError as e:  # a damaged file found while reading it
        raise ConvertError(str(e)) from None
    finally:
        for src in sources:
            src.image.close()
            if src.labels is not None:
                src.labels.close()
    return target


def _convert(target: Path, clashes: list[Path], name: str, train: Sequence[Pair], test: Sequence[Pair],
             options: ConvertOptions, progress: bool, sources: list[_Source]) -> None:
    """Open, check, cut and write (into a staging folder swapped in at the end); ``sources`` collects what is
    opened, for the caller to close."""
    _open_sources(train, test, options.spacing_nm, sources)
    blocks = _cut_blocks(sources, options)
    with staged_folder(target, "convert", replaces=clashes) as tmp:
        labels, n_train, folds = _write_cases(tmp, name.lower(), blocks, options, progress)
        spacing = blocks[0].spacing if len({b.spacing for b in blocks}) == 1 else \
            {f"{name.lower()}_{i:03d}": b.spacing for i, b in enumerate(blocks)}
        write_dataset_json(tmp, labels, n_train, name, _description(sources, options), spacing,
                           options.channel_name, ("that of the source volumes", "reisoseg convert"))
        if options.split > 1:
            _write_block_folds(tmp, folds)


def _open_sources(train: Sequence[Pair], test: Sequence[Pair], spacing_nm: Sequence[float] | None,
                  sources: list[_Source]) -> None:
    """Open every pair into ``sources`` (closed by the caller, also after an error) and check it."""
    for kind, pairs in (("train", train), ("test", test)):
        for p in pairs:
            img = _open(p.image)
            src = _Source(kind, img, None, (0.0, 0.0, 0.0))
            sources.append(src)
            lab = src.labels = _open(p.labels) if p.labels else None
            if lab is not None and lab.shape != img.shape:
                raise ConvertError(f"image {img.source} has shape {img.shape} but labels {lab.source} "
                                   f"have {lab.shape}; they must cover the same voxels")
            if img.array.dtype.kind not in "iufb":
                raise ConvertError(f"{img.source}: image dtype {img.array.dtype} is not numeric")
            src.spacing = _source_spacing(img, lab, spacing_nm)
    spacings = sorted({s.spacing for s in sources})
    if len(spacings) > 1:
        print(f"convert: the volumes have {len(spacings)} voxel sizes ({', '.join(_nm(s) for s in spacings)}); "
              "nnU-Net resamples them to one, and dataset.json lists each case's", file=sys.stderr)


def _nm(spacing: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in spacing) + " nm"


def _source_spacing(img: Volume, lab: Volume | None, given: Sequence[float] | None) -> tuple[float, float, float]:
    """The voxel size a pair is converted at: ``--spacing`` (saying where it replaces a file's), or the files'
    own, which must agree between image and labels and be a voxel size where a file states one."""
    if given is not None:
        sp = tuple(float(v) for v in given)
        for vol in (img, lab):
            if vol is not None and vol.spacing_problem:
                print(f"convert: {vol.source}: {vol.spacing_problem}; using --spacing {_nm(sp)}", file=sys.stderr)
            elif vol is not None and vol.spacing_nm and not np.allclose(vol.spacing_nm, sp, rtol=1e-3):
                print(f"convert: {vol.source} says {vol.spacing_nm} nm; using --spacing {sp}")
        return sp  # type: ignore[return-value]
    img_sp = img.stated_spacing(None)
    lab_sp = lab.stated_spacing(None) if lab is not None else None
    if img_sp is not None and lab_sp is not None and not np.allclose(img_sp, lab_sp, rtol=1e-3):
        raise ConvertError(f"voxel sizes differ: image {img.source} says {_nm(img_sp)}, labels {lab.source} "  # type: ignore[union-attr]
                           f"say {_nm(lab_sp)}; they must describe the same grid. Pass --spacing Z Y X (nm) if one "
                           "file's metadata is wrong")
    sp = img_sp if img_sp is not None else lab_sp
    if sp is None:
        raise ConvertError(f"{img.source}: no voxel size in the file; pass --spacing Z Y X in nm "
                           "(e.g. --spacing 40 4 4 for 40 nm sections of 4 nm pixels)")
    return tuple(float(v) for v in sp)  # type: ignore[return-value]


def _cut_blocks(sources: Sequence[_Source], options: ConvertOptions) -> list[_Block]:
    """The cases: training volumes in blocks (and a held-out region), test volumes whole; training first,
    as nnU-Net numbers them."""
    factors = tuple(int(f) for f in options.downsample)
    blocks: list[_Block] = []
    for src in sources:
        if any(n < f for n, f in zip(src.image.shape, factors)):
            raise ConvertError(f"{src.image.source}: shape {src.image.shape} is smaller than --downsample "
                               f"{list(factors)}")
        coarse = tuple(s * f for s, f in zip(src.spacing, factors))
        if src.kind == "train":
            parts = _hold_out_parts(src.image, coarse, options.split, options.split_axis, options.hold_out, factors)
        else:
            grid = tuple(n // f for n, f in zip(src.image.shape, factors))
            parts = [("test", sl) for sl in _split_slices(grid, 1, 0, factors=factors)]
        blocks += [_Block(kind, src, coarse, sl) for kind, sl in parts]  # type: ignore[arg-type]
    blocks.sort(key=lambda b: b.kind == "test")
    return blocks


def _write_cases(tmp: Path, prefix: str, blocks: Sequence[_Block], options: ConvertOptions,
                 progress: bool) -> tuple[dict[str, int], int, dict[int, list[str]]]:
    """Images and labels of every block into ``tmp``; returns (dataset.json labels, training cases, folds)."""
    rules, factors = options.rules, tuple(int(f) for f in options.downsample)
    has_test = any(b.kind == "test" for b in blocks)
    has_test_labels = any(b.source.labels is not None for b in blocks if b.kind == "test")
    for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if has_test else ()) + \
            (("labelsTs",) if has_test_labels else ()):
        (tmp / sub).mkdir()
    max_class, n_train, label_files, seen = 0, 0, [], set()
    folds: dict[int, list[str]] = {}  # block index within its volume -> the cases of that fold
    per_volume: dict[int, int] = {}
    bar = progress_bar(len(blocks), "convert: blocks", "block", show=progress)
    for i, b in enumerate(blocks):
        case_id, tr = f"{prefix}_{i:03d}", b.kind == "train"
        n_train += tr
        if tr:
            k = per_volume[id(b.source)] = per_volume.get(id(b.source), -1) + 1
            folds.setdefault(k, []).append(case_id)
        _write_block_image(b, factors, tmp / ("imagesTr" if tr else "imagesTs") / f"{case_id}_0000.nii.gz")
        lab = b.source.labels
        if lab is not None:
            classes, ignore = _block_classes(b, options, tmp / ("instancesTr" if tr else "instancesTs") /
                                             f"{case_id}.nii.gz")
            max_class = max(max_class, int(classes.max(initial=0)))
            seen.update(int(v) for v in np.unique(classes))
            if max_class > MAX_CLASSES:
                raise ConvertError(f"{lab.source}: label values up to {max_class} look like instance "
                                   "ids, not classes; pass --instances to keep them as objects (--boundary-nm to "
                                   "train boundary targets), --binary to merge them into one class or "
                                   "--label-map to choose classes")
            # labels are written once the class count is known: the ignore label must be the largest
            label_files.append((tmp / ("labelsTr" if tr else "labelsTs") / f"{case_id}.nii.gz",
                                classes.astype(np.uint8), ignore, b.spacing))
        bar.update()
    bar.close()
    _check_classes(seen, max_class, rules)
    ignored = any(ignore.any() for _, _, ignore, _ in label_files)
    if rules.ignore and not ignored:  # an ignore label changes nnU-Net's loss and sampling: only where it is used
        print(f"convert: no voxel holds --ignore-value {' '.join(map(str, rules.ignore))}; dataset.json declares no "
              "ignore label", file=sys.stderr)
    names = options.class_names
    if options.keeps_ids:  # the object class, and the boundary class the watershed of predict-volume looks for
        names = (*(names or ("object",)), *(("boundary",) if options.boundary_nm is not None else ()))
        max_class = len(names)  # a dataset without a single boundary voxel still declares the class
    labels = _label_names(max_class, names, ignored)
    for path, classes, ignore, spc in label_files:
        if ignored:
            classes[ignore] = labels["ignore"]
        write_image(classes, spc, path)
    return labels, n_train, folds


def _write_block_image(b: _Block, factors: tuple[int, ...], path: Path) -> None:
    """The block's image (downsampled by block mean), refused where it holds NaN or infinite voxels."""
    image = np.asarray(b.source.image.array[b.region])
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ConvertError(f"{b.source.image.source}: {int(image.size - np.isfinite(image).sum())} NaN or "
                           f"infinite voxel(s) in the block {_region_text(b.region)}; nnU-Net would learn from "
                           "them. Replace them in the source volume (e.g. numpy.nan_to_num) and convert again")
    if factors != (1, 1, 1):
        image = downsample_image(image, factors)
    if image.dtype == np.float16:  # SimpleITK writes no float16; float32 holds every float16 value exactly
        image = image.astype(np.float32)
    write_image(image.astype(np.uint8) if image.dtype == bool else image, b.spacing, path)


def _block_classes(b: _Block, options: ConvertOptions, ids_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The block's classes (downsampled by majority) and ignore mask; from object ids (``_instance_targets``,
    which writes them to ``ids_file``) or by the label rules."""
    lab = b.source.labels
    raw = np.asarray(lab.array[b.region])
    if options.keeps_ids:
        return _instance_targets(raw, lab.source, b, options, ids_file)
    factors = tuple(int(f) for f in options.downsample)
    classes, ignore = options.rules.apply(raw, lab.source)
    if factors != (1, 1, 1):
        classes, ignore = downsample_labels(classes, ignore, factors)
    return classes, ignore


def _instance_targets(raw: np.ndarray, source: str, b: _Block, options: ConvertOptions,
                      ids_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The classes nnU-Net trains from a block of object ids (one class, or the boundary targets) and its ignore
    mask; the ids (downsampled by majority) are written to ``ids_file``."""
    from dataclasses import replace

    factors = tuple(int(f) for f in options.downsample)
    ids, ignore = replace(options.rules, binary=False).apply(raw, source)
    if factors != (1, 1, 1):
        _, ignore = downsample_labels((ids != 0).astype(np.int64), ignore, factors)
        ids = downsample_ids(ids, factors)
        ids[ignore] = 0
    ids_file.parent.mkdir(exist_ok=True)
    write_image(ids.astype(np.uint32 if int(ids.max(initial=0)) < 2**32 else np.uint64), b.spacing, ids_file)
    if options.boundary_nm is None:
        return (ids != 0).astype(np.int64), ignore
    return boundary_targets(ids, b.spacing, options.boundary_nm).astype(np.int64), ignore


def _region_text(region: Sequence[slice]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


def _check_classes(seen: set[int], max_class: int, rules: LabelRules) -> None:
    """Classes must be 1..K: a gap would become a class nnU-Net trains on without a single example."""
    gaps = sorted(set(range(1, max_class + 1)) - seen)
    if not gaps:
        return
    present = sorted(seen - {0})
    if rules.label_map:
        fix = "map them onto 1..K with --label-map"
    else:
        fix = "pass --label-map " + " ".join(f"{v}:{k}" for k, v in enumerate(present, 1)) + " (SRC:DST)"
    raise ConvertError(f"the labels hold classes {present}, so classes {gaps[:8]} would be written without a single "
                       f"voxel; {fix}")


def _label_names(max_class: int, class_names: Sequence[str] | None, ignore: bool) -> dict[str, int]:
    """dataset.json's labels: classes 1..max_class named, and the ignore label after them."""
    names = list(class_names) if class_names else []
    if names and len(names) != max_class:
        raise ConvertError(f"--class-names gives {len(names)} names but the labels have classes 1..{max_class}")
    if max_class == 0:
        raise ConvertError("the training labels hold no foreground at all; check --labels, --label-map and "
                           "--background")
    labels = {"background": 0, **{(names[c - 1] if names else f"class_{c}"): c for c in range(1, max_class + 1)}}
    if ignore:
        labels["ignore"] = max_class + 1
    return labels


def _description(sources: Sequence[_Source], options: ConvertOptions) -> str:
    factors = tuple(int(f) for f in options.downsample)
    return "reisoseg convert: " + "; ".join(
        f"{s.kind} {s.image.source} ({'x'.join(map(str, s.image.shape))}, {'x'.join(f'{v:g}' for v in s.spacing)} "
        "nm)" for s in sources) \
        + (f"; each training volume split into {options.split}" if options.split > 1 else "") \
        + (f"; downsampled by {'x'.join(map(str, factors))}" if factors != (1, 1, 1) else "") \
        + (f"; the last {options.hold_out:g} of each along the split axis held out as test" if options.hold_out
           else "")

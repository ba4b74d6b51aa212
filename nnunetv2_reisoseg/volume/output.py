"""The output of ``reisoseg predict-volume``: an OME-Zarr (NGFF 0.4, zarr format 2) that napari and neuroglancer
open as the EM image with its labels over it, and the run state beside it, so that a killed run resumes where it
stopped.

Layout::

    OUT.zarr/                   multiscales of the image (axes z/y/x in nanometres), reisoseg (the run's
                                settings), reisoseg_complete (written last)
    OUT.zarr/0, 1, ...          the input volume as read, and its pyramid (left out with --no-image)
    OUT.zarr/labels/semantic    nnU-Net's labels (uint8 or uint16) with their pyramid; image-label with the colours
                                and class names of dataset.json
    OUT.zarr/labels/instances   with --instances: the objects' ids (uint32) with their pyramid
    OUT.zarr/objects/           with --instances: the table of objects, one 1-D array per column
    OUT.zarr/probabilities      with --save_probabilities: per-class probabilities (float16, c/z/y/x)
    OUT.zarr.reisoseg-run/      beside the store while a run is unfinished: settings.json (refuses a --c run with
                                other settings), done/<block> markers, border sums, instance scratch; removed at
                                the end

Pyramids (``volume.pyramid``) are built once every block is done. A store without ``reisoseg_complete`` is
unfinished, and evaluate refuses it. A run that replaces an output (``--overwrite``) writes into the sibling
``.OUT.zarr.reisoseg-new`` and swaps it into place when complete (``io.folders``' rule for every output); ``--c``
continues either.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.blockwise.state import Markers, save_npy, write_json
from nnunetv2_reisoseg.io import checks
from nnunetv2_reisoseg.io.folders import OutputError, check_output, files_under, swap_into_place
from nnunetv2_reisoseg.io.volumes import COMPLETE_ATTR, OUTPUT_ATTR, RUN_STATE_SUFFIX
from nnunetv2_reisoseg.volume.settings import RunSettings

RUN_SUFFIX = RUN_STATE_SUFFIX
SETTINGS = "settings.json"
SEMANTIC = "labels/semantic"
INSTANCES = "labels/instances"
OBJECTS = "objects"
# what predict-volume writes into a store: zarr metadata and chunk keys only (and, before issue 29, its run state
# in .reisoseg/ and objects.csv: such an output can be replaced, not continued)
_OWN_FILE = re.compile(r"(\.zattrs|\.zgroup|\.zarray|zarr\.json|\d+(\.\d+)*)")
_LEGACY = ".reisoseg"
# zarr's LocalStore writes a file as <name>.<uuid hex>.partial and then renames it: a run killed mid-write leaves
# one behind, which is ours and which a continued run removes
_PARTIAL = re.compile(r".+\.[0-9a-f]{32}\.partial")
AXES = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]


def label_colour(i: int) -> list[int]:
    """A stable, distinct colour per label (background transparent)."""
    if i == 0:
        return [0, 0, 0, 0]
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["tab10"]((i - 1) % 10)
    return [int(255 * r), int(255 * g), int(255 * b), 255]


def _ome_writer():
    """ome-zarr-py's writer module (its import warns about a class this project does not use)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr import writer
    return writer


def write_multiscales(group, name: str, scales: Sequence[Sequence[float]], axes: Sequence[dict] = AXES) -> None:
    """NGFF 0.4 multiscales of ``group`` (levels "0", "1", ... at ``scales``), written by ome-zarr-py."""
    from ome_zarr.format import FormatV04

    datasets = [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [float(v) for v in sc]}]}
                for i, sc in enumerate(scales)]
    _ome_writer().write_multiscales_metadata(group, datasets, fmt=FormatV04(), axes=list(axes), name=name)


def write_label_image(labels_group, name: str, names: dict[int, str] | None, with_image: bool) -> None:
    """The image-label metadata of ``labels/<name>`` (colours, class names; its source is the root image)."""
    from ome_zarr.format import FormatV04

    extra = {"source": {"image": "../../"}} if with_image else {}
    colors = properties = None
    if names is not None:
        colors = [{"label-value": v, "rgba": label_colour(v)} for v in sorted(names)]
        properties = [{"label-value": v, "name": names[v]} for v in sorted(names)]
    _ome_writer().write_label_metadata(labels_group, name, colors=colors, properties=properties, fmt=FormatV04(),
                                       **extra)


def run_dir(out: Path) -> Path:
    """The run state of the store ``out``, beside it (nothing foreign inside the store)."""
    return out.with_name(out.name + RUN_SUFFIX)


def is_complete(out: Path) -> bool:
    try:
        return COMPLETE_ATTR in json.loads((out / ".zattrs").read_text())
    except (OSError, ValueError):
        return False


def _own_name(name: str) -> bool:
    return bool(_OWN_FILE.fullmatch(name) or _PARTIAL.fullmatch(name))


def drop_partial_writes(out: Path) -> int:
    """Remove the unfinished writes a killed run left in the store ``out``; returns how many."""
    stale = [p for p in out.rglob("*.partial") if _PARTIAL.fullmatch(p.name)]
    for p in stale:
        p.unlink()
    return len(stale)


def store_owner(path: Path) -> str | None:
    """None when ``path`` is a predict-volume output holding nothing else, otherwise why it is not one."""
    try:
        attrs = json.loads((path / ".zattrs").read_text())
    except (OSError, ValueError):
        attrs = {}
    if not path.is_dir() or OUTPUT_ATTR not in attrs:
        return "it is not a reisoseg predict-volume output"
    foreign = [f for f in files_under(path) if not _own_name(f.rsplit("/", 1)[-1])
               and not f.startswith(_LEGACY + "/") and not f.endswith("instances/objects.csv")]
    if foreign:
        return f"it holds {len(foreign)} file(s) predict-volume did not write ({', '.join(foreign[:3])})"
    return None


@dataclass(frozen=True)
class Destination:
    """Where a run writes: ``work`` is ``out``, or its staging sibling while a run replaces ``out``."""

    out: Path
    work: Path
    previous: dict | None  # the settings of the run being continued
    created: bool  # this run creates ``work``: an error before any block is written removes it again

    @property
    def replaces(self) -> bool:
        return self.work != self.out


def staging(out: Path) -> Path:
    return out.parent / f".{out.name}.reisoseg-new"


def previous_run(out: Path, cont: bool, overwrite: bool, protected: Sequence[Path] = ()) -> Destination:
    """The rules for an existing output, in one place, checked before any work: ``--c`` continues the run that
    wrote ``out`` (or the unfinished replacement of it); otherwise ``out`` must be absent, or replaceable by the
    rule of every output (``io.folders.check_output``), and the new run writes beside it."""
    new = staging(out)
    if cont:
        for path in (new, out):
            if path.exists() and not path.is_symlink():
                reason = store_owner(path)
                if reason is not None:
                    raise OutputError(f"{path} exists but {reason}; choose another -o")
                if (path / _LEGACY).exists():
                    raise OutputError(f"{path} was written by an earlier version of predict-volume (labels at the "
                                      "root, run state inside): it cannot be continued; pass --overwrite instead of "
                                      "--c to predict it again")
                for p in (path, run_dir(path)):
                    if p.exists() and not os.access(p, os.W_OK | os.X_OK):
                        raise OutputError(f"{p} is not writable, so the run cannot continue there")
                return Destination(out, path, settings_of(path), False)
    replaces = check_output(out, overwrite, store_owner, protected, also="pass --c to continue the run that wrote it, ")
    if replaces and not any(out.iterdir()):  # an empty folder made for the output: write there directly
        replaces = False
    if new.exists() or new.is_symlink():  # an unfinished replacement that this run starts again
        check_output(new, True, store_owner, protected)
        shutil.rmtree(new)
    drop_run_state(new)
    if not replaces:
        drop_run_state(out)  # the state of an output that is gone
    return Destination(out, new if replaces else out, None, True)


def prepare(out: Path, settings: RunSettings, labels: dict[str, int], n_classes: int,
            previous: dict | None) -> set[int]:
    """Create the store ``out`` (a ``Destination``'s ``work``) and its run state, or check that ``previous``
    (the run being continued) had the same settings; returns the blocks already done."""
    if previous is not None:
        check_same(out, settings, previous)
        drop_partial_writes(out)
        state = run_dir(out)
        if not (state / SETTINGS).is_file():  # a finished store (or one whose state was deleted): start it again
            (state / "done").mkdir(parents=True, exist_ok=True)
            (state / SETTINGS).write_text(json.dumps(settings.to_json(), indent=1))
        return done_blocks(out)
    import zarr

    if out.exists():  # only an empty folder made for the output (previous_run refuses anything else)
        out.rmdir()
    out.mkdir(parents=True)
    root = zarr.open_group(str(out), mode="a", zarr_format=2)
    dtype = np.uint8 if max(labels.values(), default=0) < 255 else np.uint16
    shape, chunks = tuple(settings.shape), tuple(settings.chunks)
    spacing = list(settings.spacing_nm)
    if settings.image is not None:
        root.create_array("0", shape=shape, chunks=chunks, dtype=settings.image, fill_value=0)
        write_multiscales(root, Path(settings.input).name, [spacing])
    root.attrs[OUTPUT_ATTR] = settings.to_json()
    group = root.require_group("labels")
    group.require_group("semantic").create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    write_multiscales(group["semantic"], "semantic", [spacing])
    write_label_image(group, "semantic", {v: k for k, v in labels.items()}, settings.image is not None)
    if settings.save_probabilities:
        prob = root.create_group("probabilities")
        prob.create_array("0", shape=(n_classes, *shape), chunks=(n_classes, *chunks), dtype=np.float16, fill_value=0)
        write_multiscales(prob, "probabilities", [[1.0, *spacing]], [{"name": "c", "type": "channel"}, *AXES])
    state = run_dir(out)
    drop_run_state(out)
    (state / "done").mkdir(parents=True)
    (state / SETTINGS).write_text(json.dumps(settings.to_json(), indent=1))
    return set()


def check_same(out: Path, settings: RunSettings, previous: dict) -> None:
    """--c continues only a run with the same settings."""
    diff = settings.differences(previous)
    if diff:
        new = settings.to_json()
        changes = ", ".join(f"{k}: {previous.get(k)} -> {new.get(k)}" for k in diff)
        raise OutputError(f"{out} was started with other settings ({changes}); rerun with the same settings "
                          "to continue, or pass --overwrite to start again")


def finish(dest: Destination, summary: dict) -> None:
    """Mark the store complete (the attribute evaluate looks for), drop the run state, then swap a replacement
    into place; the old output (and any state of an unfinished one) is removed only now."""
    import zarr

    zarr.open_group(str(dest.work), mode="r+").attrs[COMPLETE_ATTR] = summary
    drop_run_state(dest.work)
    if dest.replaces:
        swap_into_place(dest.work, dest.out)
        drop_run_state(dest.out)


_STATE_ENTRIES = {SETTINGS, "done", "summed", "pieces", "instances", "watershed", "pyramid"}  # all a run state holds


def drop_run_state(out: Path) -> None:
    """Remove the run state beside ``out``: only a folder predict-volume made (its settings.json and nothing but
    the entries a run writes), never a folder of the same name holding anything else."""
    state = run_dir(out)
    if (state.is_dir() and not state.is_symlink() and (state / SETTINGS).is_file()
            and {p.name for p in state.iterdir()} <= _STATE_ENTRIES):
        shutil.rmtree(state)


def written_any(out: Path) -> bool:
    """Whether a block of the run in ``out`` has written its chunks (after which an error keeps the store)."""
    return bool(done_blocks(out, "summed") or done_blocks(out))


def markers(out: Path, stage: str = "done") -> Markers:
    """The markers of a stage of the run in ``out``: "summed" (pass 1) or "done" (finished)."""
    return Markers(run_dir(out) / stage)


def done_blocks(out: Path, stage: str = "done") -> set[int]:
    """Blocks with the marker of ``stage``: "summed" (pass 1) or "done" (finished)."""
    return markers(out, stage).done()


def mark_done(out: Path, index: int, info: dict) -> None:
    """Written after every chunk of the block: a block without its marker is redone by --c."""
    markers(out).mark(index, info)


def mark_summed(out: Path, index: int, info: dict) -> None:
    """Written after pass 1 wrote the block's interior and every piece of its sums."""
    markers(out, "summed").mark(index, info)


def save_piece(out: Path, target: int, source: int, k: int, fold: int, box: tuple, sums: np.ndarray,
               weight: np.ndarray) -> None:
    """Block ``source``'s Gaussian-weighted sums of one fold (float16, as nnU-Net accumulates) and weights over
    ``box``, a part of block ``target``'s border. Scratch: removed once block ``target`` is finished."""
    d = run_dir(out) / "pieces" / str(target)
    name = f"{source}_{k}_{fold}"
    save_npy(d / f"{name}.sums.npy", sums)
    save_npy(d / f"{name}.weight.npy", weight)
    write_json(d / f"{name}.box", box)  # last: a piece without its box file is unfinished


def pieces_for(out: Path, target: int, fold: int, region: tuple):
    """(box, sums, weights) of every piece of ``fold`` handed to block ``target`` that meets ``region``, in
    (source block, piece) order so that every run adds them up alike; the arrays are memory-mapped."""
    d = run_dir(out) / "pieces" / str(target)
    found = []
    for f in (d.glob("[!.]*.box") if d.is_dir() else []):  # not a hidden unfinished write
        source, k, f_fold = (int(v) for v in f.stem.split("_"))
        if f_fold != fold:
            continue
        box = tuple(map(tuple, json.loads(f.read_text())))
        if all(lo < rhi and rlo < hi for (lo, hi), (rlo, rhi) in zip(box, region)):
            found.append(((source, k), box, f.with_suffix("")))
    for _, box, stem in sorted(found):
        yield box, np.load(f"{stem}.sums.npy", mmap_mode="r"), np.load(f"{stem}.weight.npy", mmap_mode="r")


def drop_pieces(out: Path, target: int | None = None) -> None:
    """The border pieces handed to block ``target`` (all of them without one): scratch, once read."""
    folder = run_dir(out) / "pieces"
    shutil.rmtree(folder if target is None else folder / str(target), ignore_errors=True)


def settings_of(out: Path) -> dict:
    """The settings of the run that wrote ``out`` (``RunSettings.from_json`` reads them): its run state's, or,
    once the run state is gone, the store's own attributes."""
    fix = "the run's state is damaged: predict again with --overwrite"
    state = run_dir(out) / SETTINGS
    if state.is_file():
        data, where = checks.read_json(state, "a predict-volume run's settings", fix), str(state)
    else:
        attrs = checks.json_shape(checks.read_json(out / ".zattrs", "a predict-volume output's attributes", fix),
                                  str(out / ".zattrs"), {OUTPUT_ATTR: dict}, fix)
        data, where = attrs[OUTPUT_ATTR], f"{out / '.zattrs'}:{OUTPUT_ATTR}"
    return checks.json_shape(data, where, {"input": str, "shape": list, "spacing_nm": list}, fix)


def read_objects(out: str | os.PathLike):
    """The table of objects of a predict-volume ``--instances`` output, and its class names."""
    from nnunetv2_reisoseg.blockwise.components import Objects

    group = Path(out) / OBJECTS
    if not (group / ".zgroup").is_file():
        raise OutputError(f"{out} holds no table of objects; predict-volume writes one with --instances")
    return Objects.read_zarr(str(group))


def objects_command(output: str) -> None:
    """``reisoseg objects``: the table of objects of ``output`` as CSV on stdout."""
    objects, names = read_objects(output)
    objects.write_csv(sys.stdout, names)

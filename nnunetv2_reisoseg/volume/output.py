"""The output of ``reisoseg predict-volume``: a chunked OME-Zarr label image that napari and neuroglancer open,
with what made it, and one done marker per block so that a killed run resumes where it stopped.

Layout (zarr format 2, OME-NGFF 0.4)::

    OUT.zarr/.zattrs        multiscales (axes z/y/x in nanometres, scale = voxel size), image-label (colours and
                            names from dataset.json), reisoseg (model, folds, checkpoint, step size, TTA, statistics)
    OUT.zarr/0              the labels (uint8 or uint16), chunks aligned with the blocks
    OUT.zarr/probabilities  optional: per-class probabilities (float16, c/z/y/x), its own multiscales
    OUT.zarr/.reisoseg/     settings.json (refuses a --c run with other settings), done/<block> markers

The root attribute ``reisoseg_complete`` is written last: a store without it is unfinished, and evaluate
refuses it. A run that replaces an output (``--overwrite``) writes into the sibling ``.OUT.zarr.reisoseg-new``
and swaps it into place when complete (``io.folders``' rule for every output); ``--c`` continues either.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.io.folders import OutputError, check_output, files_under, swap_into_place
from nnunetv2_reisoseg.io.volumes import COMPLETE_ATTR, OUTPUT_ATTR
from nnunetv2_reisoseg.volume.settings import RunSettings

CONTROL = ".reisoseg"
SETTINGS = "settings.json"
# what predict-volume writes into a store: zarr metadata, chunk keys, its run state and the objects table
_OWN_FILE = re.compile(r"(\.zattrs|\.zgroup|\.zarray|zarr\.json|objects\.csv|\d+(\.\d+)*)")


def _label_colour(i: int) -> list[int]:
    """A stable, distinct colour per label (background transparent)."""
    if i == 0:
        return [0, 0, 0, 0]
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["tab10"]((i - 1) % 10)
    return [int(255 * r), int(255 * g), int(255 * b), 255]


def multiscales(name: str, axes: Sequence[dict], scale: Sequence[float]) -> list[dict]:
    return [{"version": "0.4", "name": name, "axes": list(axes),
             "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]}]


def store_owner(path: Path) -> str | None:
    """None when ``path`` is a predict-volume output holding nothing else, otherwise why it is not one."""
    try:
        attrs = json.loads((path / ".zattrs").read_text())
    except (OSError, ValueError):
        attrs = {}
    if not path.is_dir() or OUTPUT_ATTR not in attrs or not (path / CONTROL / SETTINGS).is_file():
        return "it is not a reisoseg predict-volume output"
    foreign = [f for f in files_under(path) if not f.startswith(CONTROL + "/")
               and not _OWN_FILE.fullmatch(f.rsplit("/", 1)[-1])]
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
                if not os.access(path, os.W_OK | os.X_OK) or not os.access(path / CONTROL, os.W_OK | os.X_OK):
                    raise OutputError(f"{path} is not writable, so the run cannot continue there")
                return Destination(out, path, settings_of(path), False)
    replaces = check_output(out, overwrite, store_owner, protected, also="pass --c to continue the run that wrote it, ")
    if replaces and not any(out.iterdir()):  # an empty folder made for the output: write there directly
        replaces = False
    if new.exists() or new.is_symlink():  # an unfinished replacement that this run starts again
        check_output(new, True, store_owner, protected)
        shutil.rmtree(new)
    return Destination(out, new if replaces else out, None, True)


def prepare(out: Path, settings: RunSettings, labels: dict[str, int], n_classes: int,
            previous: dict | None) -> set[int]:
    """Create the store ``out`` (a ``Destination``'s ``work``), or check that ``previous`` (the run being
    continued) had the same settings; returns the blocks already done."""
    if previous is not None:
        diff = settings.differences(previous)
        if diff:
            new = settings.to_json()
            changes = ", ".join(f"{k}: {previous.get(k)} -> {new.get(k)}" for k in diff)
            raise OutputError(f"{out} was started with other settings ({changes}); rerun with the same settings "
                              "to continue, or pass --overwrite to start again")
        return done_blocks(out)
    import zarr

    if out.exists():  # only an empty folder made for the output (previous_run refuses anything else)
        out.rmdir()
    out.mkdir(parents=True)
    root = zarr.open_group(str(out), mode="a", zarr_format=2)
    dtype = np.uint8 if max(labels.values(), default=0) < 255 else np.uint16
    shape, chunks = tuple(settings.shape), tuple(settings.chunks)
    root.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    spacing = list(settings.spacing_nm)
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    names = {v: k for k, v in labels.items()}
    root.attrs.update({
        "multiscales": multiscales(Path(settings.input).name, axes, spacing),
        "image-label": {"version": "0.4",
                        "colors": [{"label-value": v, "rgba": _label_colour(v)} for v in sorted(names)],
                        "properties": [{"label-value": v, "name": names[v]} for v in sorted(names)],
                        "source": {"image": settings.input}},
        "reisoseg": settings.to_json(),
    })
    if settings.save_probabilities:
        prob = root.create_group("probabilities")
        prob.create_array("0", shape=(n_classes, *shape), chunks=(n_classes, *chunks), dtype=np.float16, fill_value=0)
        prob.attrs["multiscales"] = multiscales("probabilities", [{"name": "c", "type": "channel"}, *axes],
                                                 [1.0, *spacing])
    (out / CONTROL / "done").mkdir(parents=True)
    (out / CONTROL / SETTINGS).write_text(json.dumps(settings.to_json(), indent=1))
    return set()


def finish(dest: Destination, summary: dict) -> None:
    """Mark the store complete (the attribute evaluate looks for), then swap a replacement into place; the old
    output is removed only now."""
    import zarr

    zarr.open_group(str(dest.work), mode="r+").attrs[COMPLETE_ATTR] = summary
    if dest.replaces:
        swap_into_place(dest.work, dest.out)


def written_any(out: Path) -> bool:
    """Whether a block of the run in ``out`` has written its chunks (after which an error keeps the store)."""
    return bool(done_blocks(out, "summed") or done_blocks(out))


def done_blocks(out: Path, stage: str = "done") -> set[int]:
    """Blocks with the marker of ``stage``: "summed" (pass 1) or "done" (finished)."""
    d = out / CONTROL / stage
    return {int(p.name) for p in d.iterdir()} if d.is_dir() else set()


def mark_done(out: Path, index: int, info: dict) -> None:
    """Written after every chunk of the block: a block without its marker is redone by --c."""
    (out / CONTROL / "done" / str(index)).write_text(json.dumps(info))


def mark_summed(out: Path, index: int, info: dict) -> None:
    """Written after pass 1 wrote the block's interior and every piece of its sums."""
    d = out / CONTROL / "summed"
    d.mkdir(exist_ok=True)
    (d / str(index)).write_text(json.dumps(info))


def save_piece(out: Path, target: int, source: int, k: int, fold: int, box: tuple, sums: np.ndarray,
               weight: np.ndarray) -> None:
    """Block ``source``'s Gaussian-weighted sums of one fold (float16, as nnU-Net accumulates) and weights over
    ``box``, a part of block ``target``'s border. Scratch: removed when the run is complete."""
    d = out / CONTROL / "pieces" / str(target)
    d.mkdir(parents=True, exist_ok=True)
    name = f"{source}_{k}_{fold}"
    np.save(d / f"{name}.sums.tmp.npy", sums)
    np.save(d / f"{name}.weight.tmp.npy", weight)
    (d / f"{name}.box.tmp").write_text(json.dumps(box))
    for part in ("sums", "weight"):  # the box file appears last: a piece without it is unfinished
        (d / f"{name}.{part}.tmp.npy").replace(d / f"{name}.{part}.npy")
    (d / f"{name}.box.tmp").replace(d / f"{name}.box")


def pieces_for(out: Path, target: int, fold: int, region: tuple):
    """(box, sums, weights) of every piece of ``fold`` handed to block ``target`` that meets ``region``, in
    (source block, piece) order so that every run adds them up alike; the arrays are memory-mapped."""
    d = out / CONTROL / "pieces" / str(target)
    found = []
    for f in (d.glob("*.box") if d.is_dir() else []):
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
    folder = out / CONTROL / "pieces"
    shutil.rmtree(folder if target is None else folder / str(target), ignore_errors=True)


def settings_of(out: Path) -> dict:
    """The settings.json of the run that wrote ``out`` (``RunSettings.from_json`` reads it)."""
    return json.loads((out / CONTROL / SETTINGS).read_text())

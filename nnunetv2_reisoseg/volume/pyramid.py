"""Multiscale pyramids of predict-volume's image and label images, so that a viewer shows any zoom without
reading full resolution. Built block by block after every block of the run is done, resumable like the rest:
each level is a pass of tasks (job folder, block index) with a marker per block in the run state.

The rule: each level halves the lateral axes (y, x) while the section thickness is more than sqrt(2) times the
pixel (each such halving brings the voxel closer to isotropic), and all three axes after that; a 1-voxel axis
stays. Levels are added until a section fits one chunk laterally. The image is averaged over each window; labels
take the window's first voxel (nearest neighbour), which never mixes ids and keeps every id a real one.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.state import Markers
from nnunetv2_reisoseg.blockwise.tasks import BlockTask

MEAN, NEAREST = "mean", "nearest"


@dataclass(frozen=True)
class Level:
    """One pyramid level: its shape, voxel size (nm) and factor from the level above (1s for level 0)."""

    shape: tuple[int, int, int]
    spacing_nm: tuple[float, float, float]
    factor: tuple[int, int, int]


def levels(shape: Sequence[int], spacing_nm: Sequence[float], chunks: Sequence[int]) -> list[Level]:
    """Level 0 and every downsampled level by the rule of this module."""
    out = [Level(tuple(int(s) for s in shape), tuple(float(v) for v in spacing_nm), (1, 1, 1))]
    while out[-1].shape[1] > chunks[1] or out[-1].shape[2] > chunks[2]:
        sh, sp = out[-1].shape, out[-1].spacing_nm
        lateral_only = sp[0] > math.sqrt(2) * max(sp[1], sp[2])
        factor = tuple(1 if n == 1 or (a == 0 and lateral_only) else 2 for a, n in enumerate(sh))
        out.append(Level(tuple(math.ceil(n / f) for n, f in zip(sh, factor)),
                         tuple(v * f for v, f in zip(sp, factor)), factor))
    return out


def downsample(data: np.ndarray, factor: Sequence[int], kind: str) -> np.ndarray:
    """One level down: ``kind`` MEAN averages each window (the windows at the far edges are partial), NEAREST takes
    its first voxel. ``data`` must start on a window boundary."""
    if kind == NEAREST:
        return np.ascontiguousarray(data[tuple(slice(None, None, f) for f in factor)])
    pad = [(0, (-n) % f) for n, f in zip(data.shape, factor)]
    x = np.pad(data.astype(np.float64), pad, constant_values=np.nan)
    n = [s // f for s, f in zip(x.shape, factor)]
    mean = np.nanmean(x.reshape(n[0], factor[0], n[1], factor[1], n[2], factor[2]), axis=(1, 3, 5))
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        mean = np.clip(np.rint(mean), info.min, info.max)
    return mean.astype(data.dtype)


# ------------------------------------------------------------------------------------------------ passes
def job_folder(state: Path, array: str, level: int) -> Path:
    """The run-state folder of one level of one array: its job.json and the markers of its blocks (done/)."""
    return state / "pyramid" / (array.replace("/", "-") or "image") / str(level)


def plan_job(state: Path, store: Path, array: str, level: int, kind: str, chunks: Sequence[int],
             lv: Level) -> BlockTask:
    """The pass that writes ``level`` of ``array`` (a group of ``store``: "" for the image at the root). Its job
    file names everything a block needs, so that it runs on any worker."""
    folder = job_folder(state, array, level)
    folder.mkdir(parents=True, exist_ok=True)
    block = tuple(min(c, n) for c, n in zip(chunks, lv.shape))
    job = {"source": str(store / array / str(level - 1)), "dest": str(store / array / str(level)),
           "factor": list(lv.factor), "kind": kind, "shape": list(lv.shape), "block": list(block)}
    (folder / "job.json").write_text(json.dumps(job))
    return BlockTask(f"pyramid: {array or 'image'} level {level}", pyramid_block, str(folder),
                     len(roi.partition(lv.shape, block)), _markers(folder))


def _markers(job_dir: str | Path) -> Markers:
    return Markers(Path(job_dir) / "done")


def pyramid_block(job_dir: str, index: int) -> int:
    """One block of one level: read its windows of the level above, downsample, write; then its marker."""
    import zarr

    markers = _markers(job_dir)
    if markers.is_done(index):
        return index
    job = json.loads((Path(job_dir) / "job.json").read_text())
    box = roi.partition(job["shape"], job["block"])[index]
    src = zarr.open_array(job["source"], mode="r")
    read = tuple((lo * f, min(hi * f, n)) for (lo, hi), f, n in zip(box, job["factor"], src.shape))
    zarr.open_array(job["dest"], mode="r+")[roi.slices(box)] = downsample(np.asarray(src[roi.slices(read)]),
                                                                          job["factor"], job["kind"])
    markers.mark(index)
    return index

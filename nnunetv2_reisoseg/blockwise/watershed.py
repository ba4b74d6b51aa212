"""A seeded watershed over a volume of any size, block by block: what separates touching objects that a model
trained on boundary targets (background / interior / boundary) sees apart.

The decoding of pytorch_connectomics' "BC" targets, blockwise:

1. **seeds**: voxels where the interior probability is high and the boundary probability low (a mask, one pass
   over the blocks), labelled across blocks by the components passes (``components.py``), seeds under a size in
   nm^3 dropped;
2. **grow**: each block floods the global seeds with skimage's watershed on -foreground (foreground: 1 - the
   background probability) inside the foreground, reading a halo around its box and writing its own box only.
   Where the halo holds every object that reaches into the block and its seeds, the block's ids equal those of one
   watershed over the whole volume; a thinner halo can leave a voxel to another seed than the whole volume would.

The objects are then numbered and tabled by the components passes on the grown ids (``given_ids``). Every pass is
a ``BlockTask`` of (work folder, block index), resumable by its markers, on any dask scheduler.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.blockwise import components as cc
from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.state import Markers
from nnunetv2_reisoseg.blockwise.tasks import BlockTask, TaskRunner

_SETTINGS = "watershed.json"
SCRATCH = "watershed.zarr"  # the seed mask, the seeds' ids and the grown ids, beside the markers
SEEDMASK, SEEDS, GROWN = "seedmask", "seeds", "grown"


@dataclass(frozen=True, kw_only=True)
class WatershedSettings:
    """One blockwise seeded watershed of the probabilities ``probabilities`` (a zarr array, classes first)."""

    probabilities: str
    background: int  # the channel of each class: background, the object's interior (one or more), boundary
    interior: tuple[int, ...]
    boundary: int
    shape: tuple[int, int, int]
    block_shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    spacing_nm: tuple[float, float, float]
    seed_threshold: float = 0.7  # interior probability above which a voxel may seed ...
    boundary_threshold: float = 0.3  # ... where the boundary probability is below this
    foreground_threshold: float = 0.5  # 1 - background probability above which a voxel is grown into
    halo_nm: float = 250.0  # context read around each block, on every side
    min_seed_nm3: float = 50_000.0  # smaller seeds are dropped

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, d: dict) -> WatershedSettings:
        tup = ("interior", "shape", "block_shape", "chunks", "spacing_nm")
        return cls(**{**d, **{k: tuple(d[k]) for k in tup}})

    @property
    def halo(self) -> tuple[int, ...]:
        """The halo in voxels along each axis."""
        return tuple(math.ceil(self.halo_nm / s) for s in self.spacing_nm)

    @property
    def blocks(self) -> list[roi.Block]:
        return roi.blocks(self.shape, self.block_shape, self.halo)


def _settings(work: str | Path) -> WatershedSettings:
    return WatershedSettings.from_json(json.loads((Path(work) / _SETTINGS).read_text()))


def _scratch(work: str | Path, name: str, mode: str = "r+"):
    import zarr

    return zarr.open_array(str(Path(work) / SCRATCH / name), mode=mode)


def _probabilities(s: WatershedSettings, box: roi.Box, channels: slice | int = slice(None)) -> np.ndarray:
    """The probabilities of ``channels`` over ``box`` (float32)."""
    import zarr

    return np.asarray(zarr.open_array(s.probabilities, mode="r")[(channels, *roi.slices(box))], np.float32)


def seed_block(work: str, index: int) -> int:
    """Pass 1: the block's seed mask (interior high, boundary low); returns its seed voxels."""
    markers = Markers(Path(work) / SEEDMASK)
    if markers.is_done(index):
        return int(markers.info(index)["voxels"])
    s = _settings(work)
    box = s.blocks[index].write
    p = _probabilities(s, box)
    seeds = (p[list(s.interior)].sum(0) > s.seed_threshold) & (p[s.boundary] < s.boundary_threshold)
    _scratch(work, SEEDMASK)[roi.slices(box)] = seeds.astype(np.uint8)
    markers.mark(index, {"voxels": int(seeds.sum())})
    return int(seeds.sum())


def grow_block(work: str, index: int) -> int:
    """Pass 3: the global seeds grown by a watershed on -foreground inside the foreground, over the block and its
    halo (cropped to the foreground there); the block's own box is written. Returns its grown voxels."""
    from skimage.segmentation import watershed

    markers = Markers(Path(work) / GROWN)
    if markers.is_done(index):
        return int(markers.info(index)["voxels"])
    s = _settings(work)
    block = s.blocks[index]
    foreground = 1.0 - _probabilities(s, block.read, s.background)  # one channel: memory of block + halo
    mask = foreground > s.foreground_threshold
    out = np.zeros(roi.size(block.write), np.uint32)
    if mask.any():
        crop = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(mask))  # memory: the foreground's box
        seeds = np.asarray(_scratch(work, SEEDS, "r")[roi.slices(block.read)])[crop]
        grown = np.zeros(mask.shape, np.uint32)
        grown[crop] = watershed(-foreground[crop], markers=np.where(mask[crop], seeds, 0), mask=mask[crop])
        out = grown[block.in_read]
    _scratch(work, GROWN)[roi.slices(block.write)] = out
    markers.mark(index, {"voxels": int(np.count_nonzero(out))})
    return int(np.count_nonzero(out))


def prepare(work: Path, s: WatershedSettings) -> None:
    """The work folder: settings and the scratch arrays (kept when a run with the same settings continues)."""
    import zarr

    if (work / _SETTINGS).is_file() and json.loads((work / _SETTINGS).read_text()) == s.to_json():
        return
    import shutil

    shutil.rmtree(work, ignore_errors=True)  # our own scratch of a watershed with other settings
    work.mkdir(parents=True)
    root = zarr.open_group(str(work / SCRATCH), mode="w", zarr_format=2)
    root.create_array(SEEDMASK, shape=s.shape, chunks=s.chunks, dtype=np.uint8, fill_value=0)
    for name in (SEEDS, GROWN):
        root.create_array(name, shape=s.shape, chunks=s.chunks, dtype=np.uint32, fill_value=0)
    (work / _SETTINGS).write_text(json.dumps(s.to_json(), indent=1))


def grow(work: Path, s: WatershedSettings, runner: TaskRunner) -> str:
    """Every pass but the last numbering: returns the grown ids (a zarr array spec) for the components passes."""
    prepare(work, s)
    n = len(s.blocks)
    runner.run(BlockTask("watershed: seeds", seed_block, str(work), n, Markers(work / SEEDMASK)))
    seeds = cc.InstanceSettings(source=f"{work / SCRATCH}:{SEEDMASK}", shape=s.shape, block_shape=s.block_shape,
                                chunks=s.chunks, spacing_nm=s.spacing_nm, connectivity=26,
                                min_size_nm3=s.min_seed_nm3, dest=str(work / SCRATCH / SEEDS))
    cc.label_volume(work / "seed_ids", seeds, runner, cont=True)
    runner.run(BlockTask("watershed: grow", grow_block, str(work), n, Markers(work / GROWN)))
    return f"{work / SCRATCH}:{GROWN}"

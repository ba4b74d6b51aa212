"""Objects across a whole volume, block by block: the 3D connected components of each foreground class of a
label volume, with ids that hold across blocks and memory bounded by a block. predict-volume's ``--instances``
and evaluate's blockwise pass both run it.

nnU-Net's answer to instance segmentation is semantic segmentation followed by connected components, and EM
benchmarks (MitoEM's AP-75) score those instances. A volume larger than memory is labelled in passes over
its blocks, each a task of (work folder, block index) that resumes after a kill (``state.Markers``) and runs on
any dask scheduler (``tasks.TaskRunner``):

1. **label**: connected components of the block (cc3d, every class in one pass, so an object is one class),
   stored as block-local ids, and per id its class, voxels, bounding box, coordinate sums and first voxel;
2. **faces**: the ids that touch across the block's lower faces. Each face compares the block's first plane
   with the plane below it, widened by one voxel on each side, so that diagonal neighbours across edges and
   corners join under 18- and 26-connectivity. Pass 1 keeps every block's first and last plane along each
   axis (``planes/``), so this pass reads those small files and never a chunk of the ids;
3. **merge** (in the driver, arrays of one entry per block-local object): the touching ids joined (scipy's
   connected components of that graph), objects numbered in the raster order of their first voxel, which is
   how cc3d numbers the whole volume in one piece, statistics summed, objects under a minimum size dropped;
4. **relabel**: the final ids written block by block (or read through ``final_ids`` by another pass).

Why not dask-image's ``ndmeasure.label``: it labels one binary mask per call with scipy (one pass per class),
has no 18/26 choice beyond a structuring element, keeps no statistics, and cannot resume; these passes run on
the blockwise engine every other pass runs on.
"""
from __future__ import annotations

import csv
import itertools
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.state import Markers, save_npy, save_npz
from nnunetv2_reisoseg.blockwise.tasks import BlockTask, TaskRunner
from nnunetv2_reisoseg.errors import ReisosegError
from nnunetv2_reisoseg.io.labels import integer_labels

CONNECTIVITIES = (6, 18, 26)
_SETTINGS = "settings.json"
LABEL, FACES, RELABEL = "label", "faces", "relabel"  # the passes' folders in the work folder: markers and results
# in-plane neighbour offsets across a face: 6 shares the face, 18 adds the edges, 26 the corners
_FACE_OFFSETS = {6: [(0, 0)], 18: [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)],
                 26: [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]}


class InstanceError(ReisosegError, ValueError):
    """Instances cannot be made as asked; the message names the problem and the fix."""


@dataclass(frozen=True, kw_only=True)
class InstanceSettings:
    """One blockwise labelling. ``source`` is a label volume ``reisoseg convert`` reads (PATH[:KEY]); voxels
    where the volume ``mask`` holds ``ignore_label`` count as background. ``dest`` (a zarr array path) gets
    the final ids, or None when another pass reads them through ``final_ids``."""

    source: str
    shape: tuple[int, int, int]
    block_shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    spacing_nm: tuple[float, float, float]
    connectivity: int = 26
    min_size_nm3: float = 0.0
    mask: str | None = None
    ignore_label: int | None = None
    dest: str | None = None
    background: tuple[int, ...] = (0,)  # label values that mean 'no object' (evaluate --background)
    binary: bool = False  # every other value is one class (evaluate --binary)
    # the source's values are object ids (instance truth, a watershed's objects): each id is one object of class
    # 1, wherever its voxels lie, instead of the connected components of each class
    given_ids: bool = False

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, d: dict) -> InstanceSettings:
        tup = {k: tuple(d[k]) for k in ("shape", "block_shape", "chunks", "spacing_nm", "background") if k in d}
        return cls(**{**d, **tup})

    @property
    def blocks(self) -> list[roi.Box]:
        return roi.partition(self.shape, self.block_shape)

    @property
    def block_grid(self) -> tuple[int, ...]:
        return roi.block_grid(self.shape, self.block_shape)


@dataclass(frozen=True)
class Objects:
    """The objects of a labelling, one row per final id 1..n (row k is id k + 1)."""

    classes: np.ndarray  # int64
    voxels: np.ndarray  # int64
    bbox_lo: np.ndarray  # (n, 3) voxel index, inclusive
    bbox_hi: np.ndarray  # (n, 3) voxel index, exclusive
    centroid_nm: np.ndarray  # (n, 3) z, y, x of the voxel centres' mean, voxel index x voxel size

    def __len__(self) -> int:
        return int(self.classes.size)

    def write_csv(self, file: Path | TextIO, class_names: dict[int, str] | None = None) -> None:
        """The table as CSV (a path, or an open text stream such as stdout): one row per object."""
        if not hasattr(file, "write"):
            with open(file, "w", newline="") as f:
                self.write_csv(f, class_names)
            return
        names = class_names or {}
        w = csv.writer(file)
        w.writerow(["id", "class", "class_name", "voxels", "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1",
                    "bbox_x1", "centroid_z_nm", "centroid_y_nm", "centroid_x_nm"])
        for k in range(len(self)):
            c = int(self.classes[k])
            w.writerow([k + 1, c, names.get(c, ""), int(self.voxels[k]), *map(int, self.bbox_lo[k]),
                        *map(int, self.bbox_hi[k]), *(f"{v:.1f}" for v in self.centroid_nm[k])])

    def write_zarr(self, group: str, class_names: dict[int, str]) -> None:
        """The table as zarr arrays, one per column (row k is object id k + 1), in the group ``group``."""
        import zarr

        root = zarr.open_group(group, mode="w", zarr_format=2)
        for name, values in asdict(self).items():
            values = np.asarray(values)
            root.create_array(name, shape=values.shape, dtype=values.dtype,
                              chunks=(max(1, min(len(values), 2**20)), *values.shape[1:]))[...] = values
        root.attrs.update({"rows": "object id k + 1 in row k; bbox_lo/bbox_hi voxel index z, y, x (hi exclusive); "
                                   "centroid_nm z, y, x",
                           "class_names": {str(k): v for k, v in class_names.items()}})

    @classmethod
    def read_zarr(cls, group: str) -> tuple[Objects, dict[int, str]]:
        """The table ``write_zarr`` wrote, and its class names."""
        import zarr

        root = zarr.open_group(group, mode="r")
        objects = cls(**{f: np.asarray(root[f][...]) for f in cls.__dataclass_fields__})
        return objects, {int(k): v for k, v in root.attrs.get("class_names", {}).items()}


# ------------------------------------------------------------------------------------------------ tasks
def _settings(work: str | Path) -> InstanceSettings:
    return InstanceSettings.from_json(json.loads((Path(work) / _SETTINGS).read_text()))


def _open(spec: str):
    from nnunetv2_reisoseg.io.volumes import read_volume

    return read_volume(spec)


def _ids_array(work: str | Path, mode: str = "r+"):
    import zarr

    return zarr.open_array(str(Path(work) / "ids"), mode=mode)


def label_block(work: str, index: int) -> int:
    """Pass 1: block-local objects (connected components, or the given ids) and their statistics; returns the
    block's object count."""
    markers = Markers(Path(work) / LABEL)
    if markers.is_done(index):
        return int(markers.info(index)["objects"])
    s = _settings(work)
    box = s.blocks[index]
    sem = _read_block(s, box)
    ids, n, given, sem = _block_objects(s, sem)
    _ids_array(work)[roi.slices(box)] = ids
    _save_planes(Path(work), index, ids)
    save_npz(_result(work, LABEL, index, ".npz"), **_statistics(ids, n, sem, box, s.shape), given=given)
    markers.mark(index, {"objects": int(n)})  # after the ids, the planes and the statistics
    return int(n)


def _read_block(s: InstanceSettings, box: roi.Box) -> np.ndarray:
    """The block's labels as classes (or ids), with the ignored voxels of ``mask`` as background."""
    vol = _open(s.source)
    try:
        sem = integer_labels(vol.array[roi.slices(box)], vol.source, s.background)
        if s.binary:
            sem = (sem != 0).astype(np.uint8)
    finally:
        vol.close()
    if s.mask is not None:
        m = _open(s.mask)
        try:
            sem = np.where(np.asarray(m.array[roi.slices(box)]) == s.ignore_label, 0, sem)
        finally:
            m.close()
    return sem


def _block_objects(s: InstanceSettings, sem: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Block-local ids 1..n (uint32), n, the given id of each (given ids only) and the classes per voxel."""
    import cc3d
    import fastremap

    given = np.zeros(0, np.uint64)
    if s.given_ids:  # block-local ids 1..n for the given ones; the merge joins the pieces of each given id
        ids, remap = fastremap.renumber(sem, preserve_zero=True, in_place=False)
        n = len(remap) - (0 in remap)
        given = np.zeros(n, np.uint64)
        for old_id, new_id in remap.items():
            if new_id:
                given[new_id - 1] = old_id
        sem = (sem != 0).astype(np.uint8)  # one class
    else:
        ids, n = cc3d.connected_components(sem, connectivity=s.connectivity, return_N=True)
    return ids.astype(np.uint32, copy=False), int(n), given, sem


def _statistics(ids: np.ndarray, n: int, sem: np.ndarray, box: roi.Box, shape: tuple[int, ...]) -> dict:
    """Per block-local id: class, voxels, bounding box, coordinate sums and first voxel (global raster index)."""
    import cc3d
    import fastremap

    lo = np.array([b[0] for b in box])
    if not n:
        empty = np.zeros(0, np.int64)
        return {"classes": empty, "voxels": empty, "bbox_lo": np.zeros((0, 3), np.int64),
                "bbox_hi": np.zeros((0, 3), np.int64), "sums": np.zeros((0, 3)), "first": empty}
    stats = cc3d.statistics(ids)
    voxels = stats["voxel_counts"][1:].astype(np.int64)
    bb = stats["bounding_boxes"][1:]
    _, first = fastremap.unique(ids, return_index=True)
    first = first[1:] if ids.ravel()[first[0]] == 0 else first  # drop the background's entry
    coords = np.stack(np.unravel_index(first, ids.shape), axis=1) + lo
    return {"classes": sem.ravel()[first].astype(np.int64), "voxels": voxels,
            "bbox_lo": np.array([[sl.start for sl in b] for b in bb], np.int64) + lo,
            "bbox_hi": np.array([[sl.stop for sl in b] for b in bb], np.int64) + lo,
            "sums": (stats["centroids"][1:] + lo) * voxels[:, None],
            "first": np.ravel_multi_index(tuple(coords.T), shape).astype(np.int64)}


def _save_planes(work: Path, index: int, ids: np.ndarray) -> None:
    """The block's first and last plane along each axis (local ids): all the faces pass reads of it."""
    planes = {f"{end}{a}": np.take(ids, 0 if end == "lo" else -1, axis=a) for a in range(3) for end in ("lo", "hi")}
    save_npz(work / "planes" / f"{index}.npz", **planes)


def _result(work: str | Path, stage: str, index: int, suffix: str) -> Path:
    """A block's result file of one pass, beside the pass's markers."""
    return Path(work) / stage / f"{index}{suffix}"


def _plane(work: str | Path, index: int, key: str) -> np.ndarray:
    with np.load(Path(work) / "planes" / f"{index}.npz") as z:
        return z[key]


def _face_plane(work: str | Path, s: InstanceSettings, offsets: np.ndarray, axis: int, region: roi.Box) -> np.ndarray:
    """Provisional ids (1..N over all blocks, 0 background) of a plane ``region`` (one voxel thick along ``axis``,
    on a block's first or last plane there) that may span several blocks, from their stored planes."""
    out = np.zeros(tuple(hi - lo for i, (lo, hi) in enumerate(region) if i != axis), np.int64)
    ranges = [range(lo // b, (hi - 1) // b + 1) for (lo, hi), b in zip(region, s.block_shape)]
    for k in itertools.product(*ranges):
        j = int(np.ravel_multi_index(k, s.block_grid))
        box = s.blocks[j]
        end = "lo" if region[axis][0] == box[axis][0] else "hi"
        plane = _plane(work, j, f"{end}{axis}")
        other = [i for i in range(3) if i != axis]
        inter = [(max(region[i][0], box[i][0]), min(region[i][1], box[i][1])) for i in other]
        src = tuple(slice(lo - box[i][0], hi - box[i][0]) for i, (lo, hi) in zip(other, inter))
        dst = tuple(slice(lo - region[i][0], hi - region[i][0]) for i, (lo, hi) in zip(other, inter))
        local = plane[src].astype(np.int64)
        out[dst] = np.where(local > 0, offsets[j] + local, 0)
    return out


def face_block(work: str, index: int) -> int:
    """Pass 2: the pairs of provisional ids that touch across the block's lower faces; returns their count."""
    markers = Markers(Path(work) / FACES)
    if markers.is_done(index):
        return int(markers.info(index)["pairs"])
    s = _settings(work)
    offsets = np.load(Path(work) / "offsets.npy")
    classes = np.load(Path(work) / "classes.npy")
    n_ids = np.int64(len(classes))  # provisional ids are 0..n_ids - 1
    if n_ids > 3 * 10**9:  # n_ids**2 must fit in an int64
        raise InstanceError(f"{n_ids - 1} objects before the merge: more than the faces pass can pair (3e9)")
    box = s.blocks[index]
    found = []
    for a in range(3):
        lo = box[a][0]
        if lo == 0:
            continue
        here_box = tuple((lo, lo + 1) if i == a else box[i] for i in range(3))
        wide = tuple((lo - 1, lo) if i == a else (max(0, box[i][0] - 1), min(s.shape[i], box[i][1] + 1))
                     for i in range(3))
        here = _face_plane(work, s, offsets, a, here_box)
        below = _face_plane(work, s, offsets, a, wide)
        pad = [box[i][0] - wide[i][0] for i in range(3) if i != a]  # where the block starts inside ``wide``
        for d in _FACE_OFFSETS[s.connectivity]:
            # here[p] touches below[p + d]; both sliced to the positions where p and p + d exist
            h_sl, b_sl = [], []
            for k in range(2):
                n_here, n_below = here.shape[k], below.shape[k]
                start = max(0, -(pad[k] + d[k]))
                stop = min(n_here, n_below - pad[k] - d[k])
                h_sl.append(slice(start, stop))
                b_sl.append(slice(start + pad[k] + d[k], stop + pad[k] + d[k]))
            x, y = here[tuple(h_sl)], below[tuple(b_sl)]
            hit = (x > 0) & (y > 0)
            x, y = x[hit], y[hit]
            same = classes[x] == classes[y]
            found.append(np.unique(x[same] * n_ids + y[same]))
    # a pair as one int64 key (ids < n_ids): unique on keys is ~30x faster than np.unique(axis=0) on rows,
    # which dominated this pass on large volumes
    keys = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    pairs = np.stack([keys // n_ids, keys % n_ids], axis=1)
    save_npy(_result(work, FACES, index, ".npy"), pairs.astype(np.int64))
    markers.mark(index, {"pairs": int(pairs.shape[0])})
    return int(pairs.shape[0])


def final_ids(work: str | Path, index: int) -> np.ndarray:
    """The final object ids of one block (after the merge)."""
    s = _settings(work)
    offsets = np.load(Path(work) / "offsets.npy")
    remap = np.load(Path(work) / "remap.npy")
    local = np.asarray(_ids_array(work, "r")[roi.slices(s.blocks[index])]).astype(np.int64)
    return np.where(local > 0, remap[offsets[index] + local], 0).astype(remap.dtype)


def relabel_block(work: str, index: int) -> int:
    """Pass 4: write the block's final ids into ``dest``."""
    import zarr

    markers = Markers(Path(work) / RELABEL)
    if markers.is_done(index):
        return index
    s = _settings(work)
    zarr.open_array(s.dest, mode="r+")[roi.slices(s.blocks[index])] = final_ids(work, index)
    markers.mark(index)
    return index


# ------------------------------------------------------------------------------------------------ driver
def prepare_work(work: Path, settings: InstanceSettings, cont: bool) -> None:
    """Create the work folder, or check that a folder being continued has the same settings."""
    import zarr

    if (work / _SETTINGS).is_file():
        # read back with today's defaults, so that a run of before a new field continues
        old = InstanceSettings.from_json(json.loads((work / _SETTINGS).read_text())).to_json()
        if old != settings.to_json():
            if not cont:
                shutil.rmtree(work)  # our own scratch of an earlier, different labelling
            else:
                diff = ", ".join(f"{k}: {old.get(k)} -> {v}" for k, v in settings.to_json().items() if old.get(k) != v)
                raise InstanceError(f"{work} holds instances made with other settings ({diff}); rerun with the same "
                                    f"settings to continue, or delete {work} to start them again")
        elif cont:
            return
        else:
            shutil.rmtree(work)
    work.mkdir(parents=True)
    zarr.open_group(str(work), mode="w", zarr_format=2).create_array(
        "ids", shape=settings.shape, chunks=settings.chunks, dtype=np.uint32, fill_value=0)
    (work / _SETTINGS).write_text(json.dumps(settings.to_json(), indent=1))


def _load_blocks(work: Path, n_blocks: int) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {}
    for i in range(n_blocks):
        with np.load(_result(work, LABEL, i, ".npz")) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _same_given(given: np.ndarray) -> np.ndarray:
    """Pairs of provisional ids (1..n) that are pieces of the same given id, in different blocks."""
    order = np.argsort(given, kind="stable")
    same = given[order][1:] == given[order][:-1]
    return np.stack([order[:-1][same] + 1, order[1:][same] + 1], axis=1).astype(np.int64)


def merge(work: Path, s: InstanceSettings, runner: TaskRunner) -> Objects:
    """Passes 2 and 3: join the provisional ids that touch, number the objects, drop the small ones; writes
    ``remap.npy`` (provisional id -> final id) and returns the objects."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_blocks = len(s.blocks)
    counts = [int(Markers(work / LABEL).info(i)["objects"]) for i in range(n_blocks)]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    np.save(work / "offsets.npy", offsets)
    b = _load_blocks(work, n_blocks)
    n = int(sum(counts))
    np.save(work / "classes.npy", np.concatenate([[0], b["classes"]]).astype(np.int64))
    if s.given_ids:
        pairs = _same_given(b["given"])
    else:
        runner.run(BlockTask("instances: faces", face_block, str(work), n_blocks, Markers(work / FACES)))
        pairs = np.concatenate([np.load(_result(work, FACES, i, ".npy")) for i in range(n_blocks)]
                               or [np.zeros((0, 2), np.int64)])
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n + 1, n + 1))
    _, comp = connected_components(graph, directed=False)
    comp = comp[1:]  # provisional ids 1..n; 0 is background
    n_comp = int(comp.max()) + 1 if n else 0
    first = np.full(n_comp, np.iinfo(np.int64).max)
    np.minimum.at(first, comp, b["first"])
    voxels = np.bincount(comp, weights=b["voxels"], minlength=n_comp).astype(np.int64)
    used = np.flatnonzero(voxels > 0)  # every component but the background's holds voxels
    keep = used[voxels[used] * float(np.prod(s.spacing_nm)) >= s.min_size_nm3]
    keep = keep[np.argsort(first[keep], kind="stable")]  # raster order of the first voxel, as cc3d numbers
    final = np.zeros(n_comp, np.int64)
    final[keep] = np.arange(1, keep.size + 1)
    dtype = np.uint32 if keep.size < 2**32 else np.uint64
    np.save(work / "remap.npy", np.concatenate([[0], final[comp]]).astype(dtype))
    classes = np.zeros(n_comp, np.int64)
    classes[comp] = b["classes"]
    lo = np.full((n_comp, 3), np.iinfo(np.int64).max)
    hi = np.zeros((n_comp, 3), np.int64)
    for a in range(3):
        np.minimum.at(lo[:, a], comp, b["bbox_lo"][:, a])
        np.maximum.at(hi[:, a], comp, b["bbox_hi"][:, a])
    sums = np.stack([np.bincount(comp, weights=b["sums"][:, a], minlength=n_comp) for a in range(3)], axis=1)
    centroid = sums[keep] / np.maximum(voxels[keep], 1)[:, None] * np.asarray(s.spacing_nm)
    return Objects(classes[keep], voxels[keep], lo[keep], hi[keep], centroid)


def label_volume(work: Path, settings: InstanceSettings, runner: TaskRunner, cont: bool = False) -> Objects:
    """Every pass over ``settings.source``; relabels into ``settings.dest`` when it is set."""
    if settings.connectivity not in CONNECTIVITIES:
        raise InstanceError(f"connectivity must be one of {CONNECTIVITIES}, got {settings.connectivity}")
    prepare_work(work, settings, cont)
    n_blocks = len(settings.blocks)
    runner.run(BlockTask("instances: label", label_block, str(work), n_blocks, Markers(work / LABEL)))
    objects = merge(work, settings, runner)
    if settings.dest is not None:
        _fit_dest(work, settings.dest, len(objects))
        runner.run(BlockTask("instances: write", relabel_block, str(work), n_blocks, Markers(work / RELABEL)))
        # the final ids are in dest: the full-size provisional ids and the planes are scratch now
        shutil.rmtree(work / "ids", ignore_errors=True)
        shutil.rmtree(work / "planes", ignore_errors=True)
    return objects


def _fit_dest(work: Path, dest: str, n_objects: int) -> None:
    """Widen ``dest`` to 64-bit ids (and write it again) in the rare volume with 2^32 objects or more."""
    import zarr

    arr = zarr.open_array(dest, mode="r+")
    if n_objects <= np.iinfo(arr.dtype).max:
        return
    zarr.create_array(store=dest, shape=arr.shape, chunks=arr.chunks, dtype=np.uint64, fill_value=0,
                      zarr_format=2, overwrite=True)
    shutil.rmtree(work / RELABEL, ignore_errors=True)

"""The whole-volume cost of predict-volume's watershed instances against its components instances, on one volume
with the same blocks, serial, side by side in one run (issue 38).

    python perf/instances_cost.py --shape 64 1024 1024 --block 32 256 256 --dir /work

The volume is a tile of touching pairs and lone objects (16x128x128 voxels of 40x10x10 nm) repeated over the
shape, with the probabilities a boundary model might give (smoothed one-hot boundary targets with noise, float16).
Components: the passes of ``--instances`` over the argmax labels (label, faces, merge, relabel). Watershed: the
seed mask, the seeds labelled across blocks, the grow pass with its halo, then the same numbering of the grown ids.
Prints both times and their ratio. Run it with nothing beside it: it is a timing.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPACING = (40.0, 10.0, 10.0)


def tile() -> tuple[np.ndarray, np.ndarray]:
    """One 16x128x128 tile of ids (pairs touching along x, lone ellipsoids) and its probabilities (3, ...)."""
    from scipy import ndimage as ndi

    from nnunetv2_reisoseg.data.instances import boundary_targets

    ids = np.zeros((16, 128, 128), np.uint32)
    zz, yy, xx = np.ogrid[:16, :128, :128]
    k = 1
    for y0 in range(4, 128, 40):
        for x0 in range(4, 100, 60):
            ids[3:12, y0:y0 + 30, x0:x0 + 14], ids[3:12, y0:y0 + 30, x0 + 14:x0 + 28] = k, k + 1
            ids[((zz - 8) / 4) ** 2 + ((yy - y0 - 15) / 12) ** 2 + ((xx - x0 - 45) / 9) ** 2 <= 1] = k + 2
            k += 3
    t = boundary_targets(ids, SPACING, 10.0)
    p = np.stack([ndi.gaussian_filter((t == c).astype(np.float32), (0.5, 1.5, 1.5)) for c in range(3)])
    p += np.random.default_rng(0).uniform(0, 0.05, p.shape).astype(np.float32)
    return ids, (p / p.sum(0)).astype(np.float16)


def make_volume(folder: Path, shape: tuple[int, ...], block: tuple[int, ...]) -> tuple[str, str]:
    """The probabilities and the argmax labels of the tiled volume, as zarr arrays; their specs."""
    import zarr

    _, p = tile()
    reps = [-(-n // t) for n, t in zip(shape, p.shape[1:])]
    root = zarr.open_group(str(folder / "volume.zarr"), mode="w", zarr_format=2)
    prob = root.create_array("probabilities", shape=(3, *shape), chunks=(3, *block), dtype=np.float16)
    labels = root.create_array("labels", shape=shape, chunks=block, dtype=np.uint8)
    for z in range(0, shape[0], block[0]):  # slab by slab: the whole volume never in memory
        zs = slice(z, min(z + block[0], shape[0]))
        slab = np.tile(p, [1, *reps])[:, zs, : shape[1], : shape[2]]
        prob[:, zs] = slab
        labels[zs] = (slab.argmax(0) != 0).astype(np.uint8)
    return str(folder / "volume.zarr" / "probabilities"), f"{folder / 'volume.zarr'}:labels"


def run(shape: tuple[int, ...], block: tuple[int, ...], folder: Path) -> dict:
    from nnunetv2_reisoseg.blockwise import components as cc
    from nnunetv2_reisoseg.blockwise import watershed as ws
    from nnunetv2_reisoseg.blockwise.tasks import TaskRunner

    prob, labels = make_volume(folder, shape, block)
    common = {"shape": shape, "block_shape": block, "chunks": block, "spacing_nm": SPACING}
    out = {}
    with TaskRunner(progress=False) as runner:
        t0 = time.perf_counter()
        objects = cc.label_volume(folder / "components", cc.InstanceSettings(source=labels, **common), runner)
        out["components_s"], out["components_objects"] = time.perf_counter() - t0, len(objects)
        t0 = time.perf_counter()
        s = ws.WatershedSettings(probabilities=prob, background=0, interior=(1,), boundary=2, **common,
                                 min_seed_nm3=0.0)
        grown = ws.grow(folder / "watershed", s, runner)
        objects = cc.label_volume(folder / "numbered", cc.InstanceSettings(source=grown, given_ids=True, **common),
                                  runner)
        out["watershed_s"], out["watershed_objects"] = time.perf_counter() - t0, len(objects)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 1024, 1024))
    ap.add_argument("--block", type=int, nargs=3, default=(32, 256, 256))
    ap.add_argument("--dir", default=None, help="where the volume and the scratch go (removed at the end)")
    a = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="reisoseg-instances-cost-", dir=a.dir))
    try:
        r = run(tuple(a.shape), tuple(a.block), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"machine: {platform.processor() or platform.machine()}, serial, {'x'.join(map(str, a.shape))} voxels in "
          f"blocks of {'x'.join(map(str, a.block))}")
    print(f"components: {r['components_s']:.1f} s, {r['components_objects']} objects")
    print(f"watershed:  {r['watershed_s']:.1f} s, {r['watershed_objects']} objects")
    print(f"watershed / components: {r['watershed_s'] / r['components_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

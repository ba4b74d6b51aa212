"""Peak scratch of ``reisoseg predict-volume``: the border sums ("pieces") that wait on disk between a block's
first pass and its borders' second pass, sampled every 0.1 s during a run, against what they would take if
every block's pieces were kept until the end (the order before issue 29), computed from the blocks' plans.

A fast stand-in replaces the network (``nnUNetPredictor._internal_maybe_mirror_and_predict`` returns logits
from the input at once), so that a volume large enough to have many blocks runs on a CPU in minutes; the
sliding window, Gaussian sums, pieces, passes and writing are predict-volume's own. The volume is generated
into a zarr store block by block (it never sits in memory whole).

    python perf/predict_scratch.py                              # 96x1024x1024 on the tiny test plan
    python perf/predict_scratch.py --shape 200 2048 2048 --block 64 256 256
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "perf"))
from predict_volume import make_model  # noqa: E402 (the same model folder as the throughput script)


def make_volume(path: Path, shape: list[int], spacing: list[float], block: int = 64) -> None:
    """Noise with structure, written slab by slab into a zarr array with the voxel size as CREMI states it."""
    import zarr

    z = zarr.open_group(str(path), mode="w", zarr_format=2)
    arr = z.create_array("raw", shape=tuple(shape), chunks=(min(block, shape[0]), 256, 256), dtype=np.uint8)
    arr.attrs["resolution"] = list(spacing)
    rng = np.random.default_rng(0)
    for lo in range(0, shape[0], block):
        hi = min(lo + block, shape[0])
        arr[lo:hi] = rng.integers(1, 255, (hi - lo, *shape[1:]), dtype=np.uint8)


def stand_in(self, x):
    """Logits at once: two classes from the input's sign (no network)."""
    import torch

    fg = x[:, :1]
    return torch.cat([-fg, fg], dim=1)


def total_pieces_bytes(out: Path, n_classes: int) -> int:
    """What every block's pieces take together (float16 sums per class, float16 weights; one fold)."""
    import json

    from nnunetv2_reisoseg.blockwise import roi
    from nnunetv2_reisoseg.volume import grid as g
    from nnunetv2_reisoseg.volume import output as store
    from nnunetv2_reisoseg.volume.settings import RunSettings

    s = RunSettings.from_json(store.settings_of(out))
    plans = json.loads((Path(s.model) / "plans.json").read_text())
    patch = tuple(plans["configurations"][s.configuration]["patch_size"])
    grid = g.TileGrid(g.to_network(s.volume_stats.bbox, s.transpose_forward), patch, s.step_size)
    layout = g.Layout(grid, tuple(s.shape), tuple(s.block_shape), tuple(s.transpose_forward))
    voxels = sum(math.prod(roi.size(box)) for i in range(len(layout.boxes)) for _, box in layout.plan(i).pieces)
    return voxels * (n_classes + 1) * 2 * len(s.folds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=[96, 1024, 1024])
    ap.add_argument("--block", type=int, nargs=3, default=[32, 192, 192])
    ap.add_argument("--plans", default=str(ROOT / "tests" / "fixtures" / "plans" / "tiny_40x10x10.json"))
    ap.add_argument("--dir", default=None, help="where the volume, model and output go (a temporary folder)")
    a = ap.parse_args()
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunetv2_reisoseg.volume import output as store
    from nnunetv2_reisoseg.volume.predict import predict_volume
    from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions

    # the stand-in is patched into this process, so the blocks run here (no dask workers)
    nnUNetPredictor._internal_maybe_mirror_and_predict = stand_in
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        tmp = Path(tmp)
        spacing, patch = make_model(tmp / "model", Path(a.plans))
        t0 = time.perf_counter()
        make_volume(tmp / "vol.zarr", a.shape, spacing)
        print(f"volume {'x'.join(map(str, a.shape))} ({math.prod(a.shape) / 1e6:.0f} M voxels) in "
              f"{time.perf_counter() - t0:.0f} s; patch {'x'.join(map(str, patch))}, blocks "
              f"{'x'.join(map(str, a.block))}", flush=True)
        out = tmp / "seg.zarr"
        pieces = store.run_dir(out) / "pieces"
        peak, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    size = sum(f.stat().st_size for f in pieces.rglob("*") if f.is_file()) if pieces.is_dir() else 0
                except OSError:  # a block's pieces removed while they were listed: sample again
                    continue
                peak[0] = max(peak[0], size)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        summary = predict_volume(f"{tmp / 'vol.zarr'}:raw", out, tmp / "model",
                                 PredictOptions(folds=(0,), tta=False, device="cpu", block_size=tuple(a.block)),
                                 RunOptions(progress=False))
        seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
        total = total_pieces_bytes(out, 1)
        print(f"{summary.blocks} blocks in {seconds:.0f} s; peak scratch {peak[0] / 2**20:.1f} MiB, against "
              f"{total / 2**20:.1f} MiB for every block's pieces kept until the end ({peak[0] / max(total, 1):.1%}); "
              f"run state left after the run: {'none' if not store.run_dir(out).exists() else store.run_dir(out)}")


if __name__ == "__main__":
    main()

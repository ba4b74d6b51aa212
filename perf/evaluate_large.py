"""``reisoseg evaluate --blockwise`` on a generated pair larger than this machine's memory: time per pass and
peak RSS. The pair is written block by block into zarr (uint8), so generating it needs no more memory than
evaluating it.

The labels are smooth blobs of two classes from sums of separable sinusoids of the global coordinates (so
objects run across blocks); the prediction shifts them, thresholds them a little differently and adds
specks. The evaluation runs in a child process; the script prints the peak RSS of its largest process
(``getrusage``) and the peak of all its processes together (dask's workers included), sampled every 0.2 s.
``--workers N`` also generates the pair in N processes.

    python perf/evaluate_large.py --shape 1000 4096 4096      # 2 x 16.8 GB of labels
    python perf/evaluate_large.py --shape 1000 4096 4096 --workers 2 --dir /work   # the same on 2 workers
    python perf/evaluate_large.py --shape 40 512 512           # a quick check
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SPACING = (30.0, 8.0, 8.0)


def _field(rng_seed: int, box: tuple, terms: int = 6):
    """Sum of separable sinusoids over a box of global coordinates (float32)."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    out = None
    for _ in range(terms):
        parts = []
        for lo, hi in box:
            freq, phase = rng.uniform(0.02, 0.08), rng.uniform(0, 2 * np.pi)
            parts.append(np.sin(np.arange(lo, hi, dtype=np.float32) * freq + phase).astype(np.float32))
        term = parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
        out = term if out is None else out + term
    return out


def _labels(field, t1: float, t2: float):
    import numpy as np

    out = np.zeros(field.shape, np.uint8)
    out[field > t1] = 1
    out[field < -t2] = 2
    return out


def _write_block(args: tuple) -> None:
    """One block of both volumes (block == chunk, so processes never write the same chunk)."""
    import numpy as np
    import zarr

    from nnunetv2_reisoseg.blockwise import roi

    folder, i, box = args
    base = _field(0, box)
    ref = zarr.open_array(f"{folder}/reference.zarr/0", mode="r+")
    pred_store = zarr.open_array(f"{folder}/prediction.zarr/0", mode="r+")
    ref[roi.slices(box)] = _labels(base, 0.6, 0.7)
    noisy = base + 0.25 * _field(1, box)
    pred = _labels(noisy, 0.65, 0.75)
    pred[np.random.default_rng(1000 + i).random(pred.shape, np.float32) < 1e-4] = 1  # false specks
    pred_store[roi.slices(box)] = pred


def generate(folder: Path, shape: list[int], block: list[int], processes: int = 1) -> None:
    import multiprocessing

    import numpy as np
    import zarr

    from nnunetv2_reisoseg.blockwise import roi

    for name in ("reference", "prediction"):
        root = zarr.open_group(str(folder / f"{name}.zarr"), mode="w", zarr_format=2)
        root.create_array("0", shape=tuple(shape), chunks=tuple(block), dtype=np.uint8)
        root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "nanometer"}
                                                                 for a in "zyx"],
                                      "datasets": [{"path": "0", "coordinateTransformations":
                                                    [{"type": "scale", "scale": list(SPACING)}]}]}]
    jobs = [(str(folder), i, box) for i, box in enumerate(roi.partition(shape, block))]
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(max(1, processes)) as pool:
        for k, _ in enumerate(pool.imap_unordered(_write_block, jobs), 1):
            print(f"\rgenerate: block {k}/{len(jobs)} ({time.perf_counter() - t0:.0f} s)", end="", flush=True)
    print(flush=True)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (dask's workers and their nannies)."""
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):  # processes come and go between the listing and the reading
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def child(folder: str, block: list[int], workers: int) -> dict:
    from nnunetv2_reisoseg.evaluation.blockwise import BlockwiseRun, evaluate_blockwise

    t0 = time.perf_counter()
    result = evaluate_blockwise(f"{folder}/prediction.zarr", f"{folder}/reference.zarr",
                                run=BlockwiseRun(block_shape=tuple(block), workers=workers, work_dir=folder))
    seconds = time.perf_counter() - t0
    # the largest of this process and the workers it reaped (the generating processes are not among them)
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"seconds": seconds, "result": result, "peak_rss_gib": peak * 1024 / 2**30}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=(1000, 4096, 4096))
    ap.add_argument("--block", type=int, nargs=3, default=(64, 1024, 1024))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--dir", default=None, help="where the pair and the scratch go (default: a temporary folder)")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        print(json.dumps(child(*json.loads(a._child))))
        return
    import numpy as np

    folder = Path(tempfile.mkdtemp(prefix="reisoseg-perf-", dir=a.dir))
    try:
        t0 = time.perf_counter()
        generate(folder, list(a.shape), list(a.block), max(1, a.workers))
        gen_s = time.perf_counter() - t0
        proc = subprocess.Popen([sys.executable, __file__, "--_child", json.dumps([str(folder), list(a.block),
                                                                                 a.workers])],
                                stdout=subprocess.PIPE, text=True)
        peak_tree = 0  # sampled: with --workers the evaluation is several processes
        reader = threading.Thread(target=lambda: outs.append(proc.stdout.read()), daemon=True)
        outs: list[str] = []
        reader.start()
        while proc.poll() is None:
            peak_tree = max(peak_tree, _tree_rss(proc.pid))
            time.sleep(0.2)
        reader.join()
        out = outs[0] if outs else ""
        if proc.returncode:
            raise SystemExit(f"the evaluation failed (exit {proc.returncode})")
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    voxels = int(np.prod(a.shape))
    peak = r["peak_rss_gib"]
    print(f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB memory")
    print(f"pair of {'x'.join(map(str, a.shape))} uint8 label volumes ({2 * voxels / 1e9:.1f} GB), blocks of "
          f"{'x'.join(map(str, a.block))}, {a.workers or 'no'} dask workers")
    print(f"generated in {gen_s:.0f} s; evaluated in {r['seconds']:.0f} s "
          f"({voxels / r['seconds'] / 1e6:.1f} Mvoxel/s); peak RSS of the largest process {peak:.2f} GiB, of the "
          f"evaluation's processes together {peak_tree / 2**30:.2f} GiB (sampled every 0.2 s)")
    for c, row in r["result"].items():
        print(f"class {c}: dice {row['dice']:.4f}, {row['ref_objects']} reference / {row['pred_objects']} predicted "
              f"objects, ap75 {row['ap75']:.3f}, voi split {row['voi_split']:.3f} / merge {row['voi_merge']:.3f}, "
              f"arand {row['arand']:.3f}")


if __name__ == "__main__":
    main()

"""``reisoseg evaluate`` on a large pair in memory, against scikit-image's VOI and adapted Rand error on the
same arrays. Each measurement runs in its own process (its peak RSS is its own), side by side in one run.

- ours: ``evaluate_labels`` on the two semantic volumes, everything included (connected components,
  contingency table, every object measure, HD95 / ASSD);
- scikit-image: ``variation_of_information`` and ``adapted_rand_error`` on the object labelings (the 3D
  connected components of both volumes, computed before the clock starts); the values must equal ours.

The pair is generated: ellipsoidal objects (mitochondria-like, several sections long), and a prediction
that shifts them, splits some at a section, merges some neighbours, misses some and adds specks.

    python perf/evaluate.py                           # 100x1024x1024, about 2,000 objects per volume
    python perf/evaluate.py --shape 20 256 256 --objects 100
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACING = (40.0, 5.0, 5.0)


def make_pair(shape: tuple[int, int, int], n_objects: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for _ in range(n_objects):
        rz, ry, rx = rng.uniform(1.5, 4.0), rng.uniform(6, 16), rng.uniform(6, 16)
        c = [rng.uniform(r, n - r - 1) for r, n in zip((rz, ry, rx), shape)]
        lo = [max(0, int(ci - r) - 1) for ci, r in zip(c, (rz, ry, rx))]
        hi = [min(n, int(ci + r) + 2) for ci, r, n in zip(c, (rz, ry, rx), shape)]
        z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        inside = ((z - c[0]) / rz) ** 2 + ((y - c[1]) / ry) ** 2 + ((x - c[2]) / rx) ** 2 <= 1
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        ref[box] |= inside
        kind = rng.random()
        if kind < 0.05:
            continue  # missed
        shifted = np.roll(inside, int(rng.integers(-2, 3)), axis=2)
        if kind < 0.15 and inside.shape[0] > 2:
            shifted[inside.shape[0] // 2] = False  # split at one section
        pred[box] |= shifted
    for _ in range(n_objects // 10):  # false specks
        z, y, x = (int(rng.integers(0, n - 3)) for n in shape)
        pred[z:z + 2, y:y + 3, x:x + 3] = 1
    return pred, ref


def part_ours(folder: Path) -> dict:
    import numpy as np

    from nnunetv2_reisoseg.evaluation import evaluate_labels

    pred, ref = np.load(folder / "pred.npy"), np.load(folder / "ref.npy")
    t0 = time.perf_counter()
    m = evaluate_labels(pred, ref, SPACING, [1])["1"]
    return {"seconds": time.perf_counter() - t0, "metrics": m}


def part_skimage(folder: Path) -> dict:
    import cc3d
    import numpy as np
    from skimage.metrics import adapted_rand_error, variation_of_information

    pred, ref = np.load(folder / "pred.npy"), np.load(folder / "ref.npy")
    ref_obj = cc3d.connected_components(ref == 1, connectivity=26)
    pred_obj = cc3d.connected_components(pred == 1, connectivity=26)
    del pred, ref
    t0 = time.perf_counter()
    split, merge = variation_of_information(ref_obj, pred_obj)
    arand = adapted_rand_error(ref_obj, pred_obj)[0]
    return {"seconds": time.perf_counter() - t0, "metrics": {"voi_split": float(split), "voi_merge": float(merge),
                                                             "arand": float(arand)}}


def run_part(name: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--part", name, "--folder", str(folder)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=(100, 1024, 1024))
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--part", choices=("ours", "skimage"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        res = (part_ours if args.part == "ours" else part_skimage)(Path(args.folder))
        res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(res, default=float))
        return 0

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        pred, ref = make_pair(tuple(args.shape), args.objects)
        np.save(folder / "pred.npy", pred)
        np.save(folder / "ref.npy", ref)
        print(f"generated {'x'.join(map(str, args.shape))} pair in {time.perf_counter() - t0:.0f} s", flush=True)
        del pred, ref
        ours = run_part("ours", folder)
        sk = run_part("skimage", folder)
    diffs = {k: abs(ours["metrics"][k] - sk["metrics"][k]) for k in sk["metrics"]}
    from nnunetv2_reisoseg.benchmark.report import machine

    print(f"machine: {machine()}")
    print(f"objects: {ours['metrics']['ref_objects']} reference, {ours['metrics']['pred_objects']} predicted")
    print(f"reisoseg evaluate (every measure): {ours['seconds']:.1f} s, peak RSS {ours['peak_rss_gib']:.2f} GiB")
    print(f"scikit-image VOI + adapted Rand only: {sk['seconds']:.1f} s, peak RSS {sk['peak_rss_gib']:.2f} GiB")
    print(f"time ratio ours / scikit-image: {ours['seconds'] / sk['seconds']:.2f}x")
    print("largest difference from scikit-image: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(json.dumps({"ours": ours, "skimage": sk, "max_abs_difference": diffs}, default=float))
    return 0 if max(diffs.values()) <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())

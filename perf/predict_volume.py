"""Whole-volume prediction: throughput against nnU-Net's own predictor, memory against volume size, tile
predictions per nnU-Net tile, and the time of ``--instances``. Every measurement runs in its own process
(peak RSS is its own), side by side in one run on this machine; ``--before REV`` adds the same rows for
predict-volume as of a git revision (checked out in a temporary worktree).

- nnU-Net: ``nnUNetPredictor.predict_single_npy_array`` on the volume held in memory (preprocessing, sliding
  window, export; reading the file excluded);
- ours: ``reisoseg predict-volume`` from an HDF5 file to an OME-Zarr (loading the model, statistics pass, blocks,
  writing included; the modules both import before their timers, as nnU-Net's row does);
- two volumes 8x apart in voxels, ours with the same block size: peak RSS follows the block, not the volume.

The model is a model folder with random weights made from ``--plans`` (what a trained one costs is the same).

    python perf/predict_volume.py                                  # CPU, the tiny test plan
    python perf/predict_volume.py --before 3a2685f                 # and the version that recomputed halos
    python perf/predict_volume.py --device cuda --plans tests/fixtures/plans/em_40x5x5_patch20x128x128.json \\
        --shape 80 768 768
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASET_JSON = {"channel_names": {"0": "EM"}, "labels": {"background": 0, "mitochondria": 1}, "numTraining": 5,
                "file_ending": ".nii.gz"}


def make_model(folder: Path, plans_file: Path) -> tuple[list[float], list[int]]:
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = json.loads(plans_file.read_text())
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = nnUNetTrainer.build_network_architecture(pm, cm, 1, 2, False)
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer", "init_args": {
        "plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": DATASET_JSON, "device": "cpu"},
        "inference_allowed_mirroring_axes": (0, 1, 2)}, folder / "fold_0" / "checkpoint_final.pth")
    return list(cm.spacing), list(cm.patch_size)


def make_volume(path: Path, shape: list[int], spacing: list[float]) -> None:
    import h5py
    import numpy as np
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    vol = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2) * 400 + 128
    with h5py.File(path, "w") as f:
        d = f.create_dataset("raw", data=np.clip(vol, 1, 255).astype(np.uint8), chunks=(8, 64, 64))
        d.attrs["resolution"] = spacing


def child(kind: str, model: str, volume: str, device: str, block: list[int] | None, out: str,
          instances: bool = False) -> dict:
    """One measurement in this (child) process."""
    import numpy as np

    if kind == "nnunet":
        import h5py
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        with h5py.File(volume, "r") as f:
            data, spacing = f["raw"][:], list(f["raw"].attrs["resolution"])
        p = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, device=torch.device(device),
                            perform_everything_on_device=device == "cuda", verbose=False,
                            verbose_preprocessing=False, allow_tqdm=False)
        p.initialize_from_trained_model_folder(model, use_folds=(0,))
        t0 = time.perf_counter()
        seg = p.predict_single_npy_array(data[None].astype(np.float32), {"spacing": spacing})
        seconds = time.perf_counter() - t0
        np.save(out, seg)
        return {"seconds": seconds, "voxels": int(seg.size)}
    # what nnU-Net's row imports before its timer starts (process start-up, not throughput); ours imports them
    # lazily inside predict_volume. Loading the model stays inside our time, outside nnU-Net's.
    import importlib

    for name in ("h5py", "torch", "zarr", "nnunetv2.inference.predict_from_raw_data",
                 "nnunetv2.training.nnUNetTrainer.nnUNetTrainer"):
        importlib.import_module(name)
    import nnunetv2_reisoseg
    from nnunetv2_reisoseg.volume.predict import predict_volume

    extra = {}
    if instances:
        from nnunetv2_reisoseg.volume.predict import InstanceOptions

        extra["instances"] = InstanceOptions()
    try:  # the options as one object since issue 20; --before REV may run a version from before that
        from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions
    except ImportError:
        PredictOptions = None  # noqa: N806 (a class, or its absence)
    t0 = time.perf_counter()
    if PredictOptions is not None:
        s = predict_volume(f"{volume}:raw", out, model, PredictOptions(folds=(0,), tta=False, device=device,
                                                                       block_size=block),
                           RunOptions(progress=False), **extra)
    else:
        s = predict_volume(f"{volume}:raw", out, model, folds=(0,), block_size=block, tta=False, device=device,
                           progress=False, **extra)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "voxels": s.voxels, "blocks": s.blocks, "overhead": s.overlap_overhead,
            "predict_seconds": seconds - getattr(s, "instance_seconds", 0.0),
            "instance_seconds": getattr(s, "instance_seconds", 0.0), "source": nnunetv2_reisoseg.__file__}


def measure(args: list, source: Path | None = None) -> dict:
    """Run one measurement in a child process (importing the package from ``source`` if given); its result
    plus the child's peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    proc = subprocess.Popen([sys.executable, __file__, "--_child", json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if status != 0:
        raise SystemExit(f"measurement {args[0]} failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_gib": usage.ru_maxrss * 1024 / 2**30}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plans", default=str(ROOT / "tests" / "fixtures" / "plans" / "tiny_40x10x10.json"))
    ap.add_argument("--shape", type=int, nargs=3, default=(32, 192, 192), help="the volume both predictors hold")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also measure predict-volume as of this git revision, side by side")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        print(json.dumps(child(*json.loads(a._child))))
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        versions = {"now": None}
        if a.before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "before"), a.before],
                           check=True, capture_output=True)
            versions = {a.before: tmp / "before", "now": None}
        try:
            rows, same, patch = run_all(tmp, a, versions)
        finally:
            if a.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "before")],
                               check=False, capture_output=True)
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"{os.cpu_count()} CPU cores ({platform.machine()})"
    print(f"Machine: {dev}, torch {torch.__version__}; plan {Path(a.plans).name} (patch {'x'.join(map(str, patch))}), "
          f"step 0.5, no mirroring, one fold, random weights\n")
    print("| version | run | volume | block | blocks | tile predictions per nnU-Net tile | seconds | Mvoxel/s | "
          "vs nnU-Net | peak RSS (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ref = rows[("", "nnunet")]["voxels"] / rows[("", "nnunet")]["seconds"]
    for (version, _), r in rows.items():
        rate = r["voxels"] / r["predict_seconds" if "predict_seconds" in r else "seconds"]
        print(f"| {version or '-'} | {r['label']} | {'x'.join(map(str, r['shape']))} | "
              f"{'x'.join(map(str, r['block'])) if r['block'] else 'whole'} | {r.get('blocks', 1)} | "
              f"{r.get('overhead', 1.0):.2f}x | {r['predict_seconds' if 'predict_seconds' in r else 'seconds']:.1f} | "
              f"{rate / 1e6:.3f} | {rate / ref:.2f}x | {r['peak_rss_gib']:.2f} |")
    for version, frac in same.items():
        print(f"\nLabels of predict-volume ({version}, default block, whole-volume statistics) equal to nnU-Net's "
              f"on {100 * frac:.3f}% of voxels.")
    inst = rows[("now", "instances")]
    print(f"\n--instances on the 4-block run: {inst['instance_seconds']:.1f} s after a prediction of "
          f"{inst['predict_seconds']:.1f} s ({inst['instance_seconds'] / inst['predict_seconds']:.2f}x).")
    print_real_sizes()


def run_all(tmp: Path, a: argparse.Namespace, versions: dict) -> tuple:
    import numpy as np
    import zarr

    spacing, patch = make_model(tmp / "model", Path(a.plans))
    small, large = list(a.shape), [2 * s for s in a.shape]  # 8x the voxels
    make_volume(tmp / "small.h5", small, spacing)
    make_volume(tmp / "large.h5", large, spacing)
    model = str(tmp / "model")
    block = [6 * p for p in patch]  # the default block: the small volume in one block
    mid = [3 * p for p in patch]  # 4 blocks of the small volume
    rows = {("", "nnunet"): {**measure(["nnunet", model, str(tmp / "small.h5"), a.device, None, str(tmp / "ref.npy")]),
                             "label": "nnU-Net predictor (in memory)", "shape": small, "block": None}}
    same = {}
    for version, source in versions.items():
        for name, vol, shape, blk in (("default", "small", small, block), ("4 blocks", "small", small, mid),
                                      ("8x volume", "large", large, mid)):
            out = tmp / f"{version}_{name.replace(' ', '_')}.zarr"
            r = measure(["ours", model, str(tmp / f"{vol}.h5"), a.device, blk, str(out)], source)
            rows[(version, name)] = {**r, "label": "predict-volume", "shape": shape, "block": blk}
            if name == "default":
                labels = out / "labels" / "semantic" / "0"  # at the root before issue 29
                seg = zarr.open_array(str(labels if labels.exists() else out / "0"), mode="r")[:]
                same[version] = float((seg == np.load(tmp / "ref.npy")).mean())
    out = tmp / "instances.zarr"
    r = measure(["ours", model, str(tmp / "small.h5"), a.device, mid, str(out), True])
    rows[("now", "instances")] = {**r, "label": "predict-volume --instances", "shape": small, "block": mid}
    return rows, same, patch


def print_real_sizes() -> None:
    """Tile predictions per nnU-Net tile at real sizes: blocks that recompute the tiles crossing their
    borders (before) against tiles owned by one block (now), from the arithmetic of ``grid``."""
    from nnunetv2_reisoseg.volume import grid as g

    cases = (("CREMI 125x1250x1250, patch 24x256x256", (125, 1250, 1250), (24, 256, 256)),
             ("MitoEM 1000x4096x4096, patch 48x224x192", (1000, 4096, 4096), (48, 224, 192)))
    print("\nTile predictions per nnU-Net tile at real sizes (step 0.5), recomputed halos / owned tiles:\n")
    print("| block, patches per axis | " + " | ".join(c[0] for c in cases) + " |\n|---|---|---|")
    for k in (2, 4, 6, 8):
        cells = []
        for _, shape, patch in cases:
            grid = g.TileGrid(tuple((0, s) for s in shape), patch, 0.5)
            chunks = g.default_chunks(shape)
            block = g.block_shape(shape, patch, chunks, patches_per_block=k)
            layout = g.Layout(grid, shape, block, (0, 1, 2))
            owned = sum(len(layout.plan(i).tiles) for i in range(len(layout.boxes))) / len(grid.tiles())
            cells.append(f"{g.recomputed_overhead(grid, shape, block, (0, 1, 2)):.2f}x / {owned:.2f}x "
                         f"({len(layout.boxes)} blocks)")
        print(f"| {k}{' (default)' if k == 6 else ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Whole-volume prediction: throughput against nnU-Net's own predictor, memory against volume size, and the
compute overhead of the block overlap. Every measurement runs in its own process (peak RSS is its own), side
by side in one run on this machine.

- nnU-Net: ``nnUNetPredictor.predict_single_npy_array`` on the volume held in memory (preprocessing, sliding
  window, export; reading the file excluded);
- ours: ``reisoseg predict-volume`` from an HDF5 file to an OME-Zarr (statistics pass, blocks, writing included);
- two volumes 8x apart in voxels, ours with the same block size: peak RSS follows the block, not the volume.

The model is a model folder with random weights made from ``--plans`` (what a trained one costs is the same).

    python perf/predict_volume.py                                  # CPU, the tiny test plan
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


def child(kind: str, model: str, volume: str, device: str, block: list[int] | None, out: str) -> dict:
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
    from nnunetv2_reisoseg.volume.predict import predict_volume

    t0 = time.perf_counter()
    s = predict_volume(f"{volume}:raw", out, model, folds=(0,), block_size=block, tta=False, device=device,
                       progress=False)
    return {"seconds": time.perf_counter() - t0, "voxels": s.voxels, "blocks": s.blocks,
            "overhead": s.overlap_overhead}


def measure(args: list[str]) -> dict:
    """Run one measurement in a child process; its result plus the child's peak RSS."""
    proc = subprocess.Popen([sys.executable, __file__, "--_child", json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
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
    ap.add_argument("--patches-per-block", type=int, nargs="+", default=[2, 3, 4],
                    help="smaller block sizes to measure the overlap overhead of (patches per axis)")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        kind, model, volume, device, block, out = json.loads(a._child)
        print(json.dumps(child(kind, model, volume, device, block, out)))
        return
    import numpy as np
    import torch
    import zarr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spacing, patch = make_model(tmp / "model", Path(a.plans))
        small, large = list(a.shape), [2 * s for s in a.shape]  # 8x the voxels
        make_volume(tmp / "small.h5", small, spacing)
        make_volume(tmp / "large.h5", large, spacing)
        model = str(tmp / "model")
        block = [6 * p for p in patch]  # the default block: the small volume in one block
        rows = {"nnunet": measure(["nnunet", model, str(tmp / "small.h5"), a.device, None, str(tmp / "ref.npy")]),
                "ours": measure(["ours", model, str(tmp / "small.h5"), a.device, block, str(tmp / "a.zarr")])}
        same = float((zarr.open_array(str(tmp / "a.zarr" / "0"), mode="r")[:] == np.load(tmp / "ref.npy")).mean())
        mid = [3 * p for p in patch]
        rows["ours_small_blocks"] = measure(["ours", model, str(tmp / "small.h5"), a.device, mid, str(tmp / "b.zarr")])
        rows["ours_large_volume"] = measure(["ours", model, str(tmp / "large.h5"), a.device, mid, str(tmp / "c.zarr")])
        overheads = {}
        from nnunetv2_reisoseg.volume import grid as g

        for k in a.patches_per_block:
            for name, shape in (("small", small), ("large", large)):
                tg = g.TileGrid(tuple((0, s) for s in shape), tuple(patch), 0.5)
                overheads[(k, name)] = g.overlap_overhead(tg, shape, [k * p for p in patch], (0, 1, 2))
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"{os.cpu_count()} CPU cores ({platform.machine()})"
    print(f"Machine: {dev}, torch {torch.__version__}; plan {Path(a.plans).name} (patch {'x'.join(map(str, patch))}), "
          f"step 0.5, no mirroring, one fold, random weights\n")
    print("| run | volume | block | blocks | seconds | Mvoxel/s | vs nnU-Net | peak RSS (GiB) |")
    print("|---|---|---|---|---|---|---|---|")
    ref = rows["nnunet"]["voxels"] / rows["nnunet"]["seconds"]
    for name, r, vol, blk in (("nnU-Net predictor (in memory)", rows["nnunet"], small, None),
                              ("predict-volume", rows["ours"], small, block),
                              ("predict-volume", rows["ours_small_blocks"], small, mid),
                              ("predict-volume", rows["ours_large_volume"], large, mid)):
        rate = r["voxels"] / r["seconds"]
        print(f"| {name} | {'x'.join(map(str, vol))} | {'x'.join(map(str, blk)) if blk else 'whole'} | "
              f"{r.get('blocks', 1)} | {r['seconds']:.1f} | {rate / 1e6:.3f} | {rate / ref:.2f}x | "
              f"{r['peak_rss_gib']:.2f} |")
    print(f"\nLabels of predict-volume (whole-volume statistics) equal to nnU-Net's on {100 * same:.3f}% of voxels.")
    print("\nTile predictions per tile of nnU-Net's whole-volume sliding window (the block overlap's compute "
          "overhead):\n")
    print("| block (patches per axis) | " + " | ".join(f"{'x'.join(map(str, v))} volume" for v in (small, large))
          + " |\n|---|---|---|")
    for k in a.patches_per_block:
        print(f"| {k} ({'x'.join(str(k * p) for p in patch)}) | {overheads[(k, 'small')]:.2f}x | "
              f"{overheads[(k, 'large')]:.2f}x |")


if __name__ == "__main__":
    main()

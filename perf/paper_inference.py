"""Inference cost of the paper's network: the anisotropic branch alone (what nnUNetTrainerReIsoSegNet
runs at inference) against both branches (what the reference implementation runs at inference and
then discards the isotropic output of). Same network, same weights, same input, measured side by side.

    python perf/paper_inference.py                      # CPU, ratio 8, one 16x128x128 patch
    python perf/paper_inference.py --device cuda --shape 32 256 256
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from nnunetv2_reisoseg.paper.network import ReIsoSegPaperNet, paper_topology


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--shape", type=int, nargs=3, default=(16, 128, 128))
    ap.add_argument("--spacing", type=float, nargs=3, default=(40.0, 5.0, 5.0))
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    net = ReIsoSegPaperNet(1, 2, paper_topology(a.spacing), deep_supervision=False).to(a.device)
    x = torch.randn(1, 1, *a.shape, device=a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)

    def timed(training: bool) -> float:
        net.train(training)  # instance norm without running stats: the same maths in both modes
        times = []
        with torch.no_grad():
            for i in range(a.iters + 1):
                sync()
                t0 = time.perf_counter()
                net(x)
                sync()
                if i:  # the first call is a warm-up
                    times.append(time.perf_counter() - t0)
        return statistics.median(times)

    both, ani = timed(True), timed(False)
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"{os.cpu_count()} CPU cores ({platform.machine()})"
    print(f"{dev}, torch {torch.__version__}; patch {tuple(a.shape)}, spacing {tuple(a.spacing)}, batch 1, "
          f"median of {a.iters}")
    print("| forward (no grad) | seconds | ratio |\n| --- | --- | --- |")
    print(f"| anisotropic branch only (ours at inference) | {ani:.3f} | 1.00x |")
    print(f"| both branches (the reference at inference) | {both:.3f} | {both / ani:.2f}x |")


if __name__ == "__main__":
    main()

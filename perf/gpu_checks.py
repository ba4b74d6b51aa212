"""Checks of the CUDA-only training paths: autocast with a grad scaler and torch.compile, as nnU-Net
trains on a GPU. Run it whenever a GPU is available and record the printed result in docs/PERFORMANCE.md.

For each trainer (``nnUNetTrainerReIso``, ``nnUNetTrainerReIsoSegNet``) it builds the network, loss,
optimizer and grad scaler the way nnU-Net's ``initialize`` does (compiled when nnU-Net would compile),
then runs ``--steps`` training steps through nnU-Net's own ``train_step`` on random data with
random labels, and reports:
  - non-finite losses, non-finite parameters, and the grad scaler's final scale (fp16 overflow shows
    as a collapsing scale);
  - torch.compile graphs after the warm-up (one step per axial/lateral variant) and at the end, and
    the number of recompiles: after the warm-up neither may grow.

    python perf/gpu_checks.py                    # CUDA, 300 steps, nnU-Net's 40x5x5 nm plan
    python perf/gpu_checks.py --device cpu --steps 3 --plans tests/fixtures/plans/tiny_40x10x10.json
The exit status is 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLANS = ROOT / "tests" / "fixtures" / "plans" / "em_40x5x5_patch20x128x128.json"
DATASET_JSON = {"channel_names": {"0": "EM"}, "labels": {"background": 0, "mito": 1}, "numTraining": 20,
                "file_ending": ".nii.gz"}


def check(trainer_name: str, plans: dict, device: str, steps: int, warmup: int) -> dict:
    import torch
    from torch._dynamo.utils import counters

    from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
    from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso

    cls = {"reiso": nnUNetTrainerReIso, "paper": nnUNetTrainerReIsoSegNet}[trainer_name]
    torch._dynamo.reset()
    counters.clear()
    t = cls({**json.loads(json.dumps(plans)), "continue_training": False}, "3d_fullres", 0, DATASET_JSON,
            torch.device(device))
    # what nnUNetTrainer.initialize does, without a dataset on disk
    t.network = t.build_network_architecture(t.plans_manager, t.configuration_manager, 1,
                                             t.label_manager.num_segmentation_heads, True).to(t.device)
    compiled = t._do_i_compile()
    if compiled:
        t.network = torch.compile(t.network)
    t.optimizer, t.lr_scheduler = t.configure_optimizers()
    t.loss = t._build_loss()
    t.was_initialized = True
    t.network.train()
    patch, batch = list(t.configuration_manager.patch_size), t.configuration_manager.batch_size
    scales = t._get_deep_supervision_scales()
    gen = torch.Generator().manual_seed(0)
    losses, graphs_after_warmup, t0 = [], None, time.perf_counter()
    for step in range(steps):
        x = torch.randn(batch, 1, *patch, generator=gen)
        seg = (torch.rand(batch, 1, *patch, generator=gen) > 0.7).float()
        target = [torch.nn.functional.interpolate(seg, size=[max(1, round(p * s)) for p, s in zip(patch, sc)],
                                                  mode="nearest") for sc in scales]
        out = t.train_step({"data": x, "target": target})
        losses.append(float(out["loss"]))
        if step + 1 == warmup:
            graphs_after_warmup = counters["stats"]["unique_graphs"]
    params_finite = all(bool(torch.isfinite(p).all()) for p in t.network.parameters())
    scale = float(t.grad_scaler.get_scale()) if t.grad_scaler is not None else None
    result = {
        "trainer": cls.__name__, "device": device, "compiled": compiled, "amp": t.grad_scaler is not None,
        "steps": steps, "seconds": round(time.perf_counter() - t0, 1),
        "non_finite_losses": sum(not math.isfinite(v) for v in losses), "params_finite": params_finite,
        "first_loss": losses[0], "last_loss": losses[-1], "grad_scaler_scale": scale,
        "graphs_after_warmup": graphs_after_warmup, "graphs_at_end": counters["stats"]["unique_graphs"],
        "recompiles": sum(counters["recompiles"].values()),
    }
    result["ok"] = bool(
        result["non_finite_losses"] <= (steps // 20 if result["amp"] else 0)  # the scaler skips a few early
        and params_finite and (scale is None or scale >= 1.0)
        and (not compiled or (graphs_after_warmup is not None and result["graphs_at_end"] == graphs_after_warmup)))
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=None, help="steps before graphs are counted (default 24)")
    p.add_argument("--plans", default=str(DEFAULT_PLANS))
    p.add_argument("--trainers", nargs="+", default=["reiso", "paper"], choices=("reiso", "paper"))
    args = p.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing checked (pass --device cpu for the CPU paths)")
        return 1
    plans = json.loads(Path(args.plans).read_text())
    warmup = min(args.warmup or 24, args.steps)
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu"
    print(f"# gpu_checks on {gpu}, torch {torch.__version__}, plans {Path(args.plans).name}, {args.steps} steps")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["nnUNet_results"] = tmp  # the trainers create their output folders there
        for name in args.trainers:
            r = check(name, plans, args.device, args.steps, warmup)
            ok &= r["ok"]
            print(json.dumps(r))
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

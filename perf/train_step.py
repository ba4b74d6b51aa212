"""Training step time, peak memory and inference time: nnUNetTrainerReIso against stock nnUNetTrainer.

Same plan, same batch, same loss construction (each trainer's own ``_build_loss``), measured side by
side in one run; each measurement runs in a fresh subprocess so that peak memory is its own.
Prints a markdown table with the machine named.

    python perf/train_step.py                        # CPU, nnU-Net's 40x5x5 nm plan (20x128x128)
    python perf/train_step.py --device cuda          # GPU, autocast + grad scaler as nnU-Net trains
    python perf/train_step.py --plans PATH.json --iters 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLANS = ROOT / "tests" / "fixtures" / "plans" / "em_40x5x5_patch20x128x128.json"
DATASET_JSON = {"channel_names": {"0": "EM"}, "labels": {"background": 0, "mito": 1}, "numTraining": 20,
                "file_ending": ".nii.gz"}


def _trainer(name: str, plans: dict, device):
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso

    cls = {"stock": nnUNetTrainer, "reiso": nnUNetTrainerReIso}[name]
    t = cls({**plans, "continue_training": False}, "3d_fullres", 0, DATASET_JSON, torch.device(device))
    t.network = t.build_network_architecture(t.plans_manager, t.configuration_manager, 1,
                                             t.label_manager.num_segmentation_heads, True).to(t.device)
    if t._do_i_compile():
        t.network = torch.compile(t.network)
    t.loss = t._build_loss()
    return t


def measure(name: str, plans_path: str, device: str, iters: int, mode: str) -> dict:
    """One measurement in this process: median step (or inference) time and peak memory."""
    import torch

    torch.manual_seed(0)
    plans = json.loads(Path(plans_path).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["nnUNet_results"] = tmp
        t = _trainer(name, plans, device)
        cm = t.configuration_manager
        b = cm.batch_size
        x = torch.randn(b, 1, *cm.patch_size, device=device)
        scales = t._get_deep_supervision_scales()  # nnU-Net's, one per deep-supervision output
        targets = [torch.randint(0, 2, (b, 1, *[round(p * s) for p, s in zip(cm.patch_size, sc)]), device=device)
                   .float() for sc in scales]
        opt = torch.optim.SGD(t.network.parameters(), 1e-2, momentum=0.99, nesterov=True)
        scaler = torch.amp.GradScaler("cuda") if device == "cuda" else None
        amp = torch.autocast("cuda", enabled=True) if device == "cuda" else nullcontext()
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def step():
            opt.zero_grad(set_to_none=True)
            with amp:
                loss = t.loss(t.network(x), targets)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(t.network.parameters(), 12)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(t.network.parameters(), 12)
                opt.step()

        def infer():
            with torch.no_grad(), amp:
                t.network(x[:1])

        if mode == "train":
            t.network.train()
            fn = step
        else:
            t.network.eval()
            (getattr(t.network, "_orig_mod", t.network)).decoder.deep_supervision = False  # as at inference
            fn = infer
        for _ in range(2 if device == "cuda" else 1):  # warm-up (and compile)
            fn()
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        peak = (torch.cuda.max_memory_allocated() if device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"median_s": statistics.median(times), "peak_bytes": peak, "patch": cm.patch_size, "batch": b}


def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    desc = f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}"
    if device == "cuda":
        desc = f"{torch.cuda.get_device_name()}, " + desc + ", autocast fp16 + GradScaler"
    if device == "cuda" and os.environ.get("nnUNet_compile", "").lower() in ("1", "t", "true"):
        desc += ", torch.compile"  # nnU-Net compiles on CUDA only
    return desc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plans", default=str(DEFAULT_PLANS))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the measurements as JSON")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for both measured processes, e.g. GLIBC_TUNABLES=... (repeatable)")
    ap.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._one:
        print(json.dumps(measure(a._one[0], a.plans, a.device, a.iters, a._one[1])))
        return
    env = {**os.environ, **dict(kv.split("=", 1) for kv in a.env)}
    res = {}
    for mode in ("train", "infer"):
        for name in ("stock", "reiso"):
            print(f"measuring {name} {mode} ...", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--plans", a.plans, "--device", a.device, "--iters",
                                  str(a.iters), "--_one", name, mode], capture_output=True, text=True, check=False,
                                 env=env)
            if out.returncode != 0:
                raise SystemExit(f"{name} {mode} failed:\n{out.stderr[-3000:]}")
            res[name, mode] = json.loads(out.stdout.strip().splitlines()[-1])
    s, r = res["stock", "train"], res["reiso", "train"]
    si, ri = res["stock", "infer"], res["reiso", "infer"]
    print(f"\nMachine: {machine(a.device)}" + (f"; environment {' '.join(a.env)}" if a.env else ""))
    print(f"Plan: {Path(a.plans).name}, patch {s['patch']}, batch {s['batch']}; median of {a.iters} timed iterations\n")
    print("| measure | nnUNetTrainer | nnUNetTrainerReIso | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| training step (fwd+bwd+SGD) | {s['median_s']:.3f} s | {r['median_s']:.3f} s | "
          f"{r['median_s'] / s['median_s']:.2f}x |")
    mem = "peak GPU memory allocated" if a.device == "cuda" else "peak RSS of the process"
    print(f"| training {mem} | {s['peak_bytes'] / 2**30:.2f} GiB | {r['peak_bytes'] / 2**30:.2f} GiB | "
          f"{r['peak_bytes'] / s['peak_bytes']:.2f}x |")
    print(f"| inference forward (1 patch, eval) | {si['median_s']:.3f} s | {ri['median_s']:.3f} s | "
          f"{ri['median_s'] / si['median_s']:.2f}x |")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "machine": machine(a.device), "plans": Path(a.plans).name, "iters": a.iters, "environment": a.env,
            "measurements": {f"{name}_{mode}": r for (name, mode), r in res.items()},
            "ratios": {"train_step": r["median_s"] / s["median_s"],
                       "train_peak_memory": r["peak_bytes"] / s["peak_bytes"],
                       "inference": ri["median_s"] / si["median_s"]}}, indent=1))


if __name__ == "__main__":
    main()

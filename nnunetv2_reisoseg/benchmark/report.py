"""``report.md`` and the plots of a benchmark run."""
from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.benchmark.metrics import HIGHER_IS_BETTER, METRIC_TITLES
from nnunetv2_reisoseg.benchmark.presets import METHOD_TITLES
from nnunetv2_reisoseg.benchmark.stats import MIN_PAIRS, _fmt, _stats, comparisons


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} CPU cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def _costs(results: dict, methods: Sequence[str]) -> dict:
    out = {}
    for meth in methods:
        runs = [r for r in results["runs"] if r["method"] == meth]
        steps = [np.median(r["timing"]["step_times_s"][2:] or r["timing"]["step_times_s"]) for r in runs]
        inf = [s for r in runs if r.get("inference") for s in r["inference"]["seconds_per_case"].values()]
        gpu = [r["timing"]["peak_gpu_allocated_bytes"] for r in runs if r["timing"]["peak_gpu_allocated_bytes"]]
        out[meth] = {"median_step_s": _stats(steps), "training_wall_s": _stats([r["timing"]["training_wall_s"]
                                                                                  for r in runs]),
                     "peak_cpu_rss_gib": _stats([r["timing"]["peak_cpu_rss_bytes"] / 2**30 for r in runs]),
                     "peak_gpu_gib": _stats([g / 2**30 for g in gpu]) if gpu else None,
                     "inference_s_per_case": _stats(inf) if inf else None}
    return out


def write_report(results: dict, out: Path) -> Path:
    methods = results["methods"]
    lines = [f"# reisoseg benchmark: {results['dataset']}, preset `{results['preset']}`", "",
             f"- Command: `{results['command']}`",
             f"- Machine: {results['machine']}; training device `{results['device']}`; nnU-Net workers "
             + ", ".join(f"{k}={v}" for k, v in results["nnunet_workers"].items()),
             f"- Budget per training: {results['budget']['epochs']} epochs x {results['budget']['iterations']} "
             f"iterations, batch {results['batch_size']}, patch {'x'.join(map(str, results['patch_size']))}, "
             f"spacing {'x'.join(f'{v:g}' for v in results['spacing'])} ({results['budget']['note']})",
             f"- Folds {results['folds']}, seeds {results['seeds']}; the same plans, folds, seeds and budget for "
             "every method. Spread is the standard deviation over cases x folds x seeds; a paired difference "
             f"smaller than its spread is reported as no difference, and fewer than {MIN_PAIRS} pairs as cannot "
             "tell.", ""]
    classes = results["classes"]
    pairs = comparisons(methods)
    for split, title in (("validation", "Validation cases (cross-validation folds)"), ("test", "Test cases")):
        if split not in results["summary"]:
            continue
        head = ["class", "metric", *(METHOD_TITLES[m] for m in methods)]
        for a, b in pairs:
            head += [f"{METHOD_TITLES[a]} - {METHOD_TITLES[b]} (paired)", "verdict"]
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c, per_metric in results["summary"][split].items():
            for m, entry in per_metric.items():
                cells = [classes.get(c, c), METRIC_TITLES[m], *(_fmt(entry[x]) for x in methods)]
                for a, b in pairs:
                    d = entry.get("paired", {}).get(f"{a} - {b}")
                    cells += [_fmt(d), d["verdict"] if d else ""]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    costs = results["costs"]
    others = [m for m in methods if m != "stock"] if "stock" in methods else []
    head = ["", *(METHOD_TITLES[m] for m in methods), *(f"{METHOD_TITLES[o]} / stock" for o in others)]
    lines += ["## Cost (measured in this run)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, title in (("median_step_s", "training step (s, median per training)"),
                       ("training_wall_s", "training wall time (s)"), ("peak_cpu_rss_gib", "peak CPU RSS (GiB)"),
                       ("peak_gpu_gib", "peak GPU memory allocated (GiB)"),
                       ("inference_s_per_case", "inference (s per test case)")):
        vals = [costs[m].get(key) for m in methods]
        if all(v is None for v in vals):
            continue
        cells = [title, *(_fmt(v) for v in vals)]
        for o in others:
            a, b = costs["stock"].get(key), costs[o].get(key)
            cells.append(f"{b['mean'] / a['mean']:.2f}x" if a and b and a["mean"] and b["mean"] is not None
                         else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "The training step excludes data loading; inference is nnU-Net's predictor on each test "
              "case in one process (preprocessing, sliding window, resampling; file I/O excluded).", "",
              "## Plots", "", "![per-case metrics](plots/per_case.png)", "",
              "![learning curves](plots/learning_curves.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    rows, methods = results["cases"], results["methods"]
    metrics = [m for m in ("dice", "hd95_nm", "iso_dice") if any(m in r["metrics"] for r in rows)]
    with plt.style.context("default"):
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4.2), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            stock = {(r["split"], r["seed"], r["fold"], r["case"], r["class"]): r["metrics"].get(m)
                     for r in rows if r["method"] == "stock"}
            for other in (x for x in methods if x != "stock" and stock):
                for split, marker in (("validation", "o"), ("test", "s")):
                    pts = [(stock[k], r["metrics"].get(m)) for r in rows if r["method"] == other
                           and r["split"] == split for k in [(split, r["seed"], r["fold"], r["case"], r["class"])]
                           if k in stock]
                    pts = [(a, b) for a, b in pts if a is not None and b is not None and np.isfinite([a, b]).all()]
                    if pts:
                        ax.scatter(*zip(*pts), marker=marker, alpha=0.7, color=f"C{methods.index(other)}",
                                   label=f"{METHOD_TITLES[other]}, {split}")
            if stock:
                lim = ax.get_xlim() + ax.get_ylim()
                lo, hi = min(lim), max(lim)
                ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
                ax.set_xlabel(f"stock nnU-Net {METRIC_TITLES[m]}")
                ax.set_ylabel(f"other method's {METRIC_TITLES[m]}")
                ax.legend(fontsize=7)
            ax.set_title(f"{METRIC_TITLES[m]} per case" + (" (higher is better)" if HIGHER_IS_BETTER.get(m)
                                                           else " (lower is better)"), fontsize=9)
        fig.tight_layout()
        fig.savefig(plots / "per_case.png", dpi=100)
        plt.close(fig)

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for i, run in enumerate(results["runs"]):
            ckpt = torch.load(Path(run["folder"]) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
            lg = ckpt["logging"]
            color = f"C{methods.index(run['method'])}"
            lab = METHOD_TITLES[run["method"]] if i == next(j for j, r in enumerate(results["runs"])
                                                            if r["method"] == run["method"]) else None
            axes[0].plot(lg["train_losses"], color=color, label=lab and f"{lab} train")
            axes[0].plot(lg["val_losses"], color=color, ls="--", label=lab and f"{lab} val")
            for key, ls in (("train_loss_ani", ":"), ("train_loss_iso", "-.")):
                if lg.get(key):
                    axes[0].plot(lg[key], color=color, ls=ls, label=lab and key)
            axes[1].plot(lg["mean_fg_dice"], color=color, label=lab)
        axes[0].set_title("losses (ReIsoSeg: train = 0.5 ani + 0.5 iso)", fontsize=9)
        axes[1].set_title("pseudo Dice on validation patches", fontsize=9)
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / "learning_curves.png", dpi=100)
        plt.close(fig)

"""The picture a reader looks at before the tables: one test block cut across the sections (an XZ plane), the
image, the truth and each method's labels side by side, at the plane where the methods break an object at a
section most often. ReIsoSeg is about objects that stay whole across sections; this is where to see it.

A break at section z is a voxel whose truth holds the class on sections z - 1, z and z + 1 while the prediction
holds it on z - 1 and z + 1 but not on z. Predictions are read from the benchmark's ``predictions/`` folder;
a method whose model and predictions were not kept on this machine (records reused from another run) is
drawn as a labelled empty panel.
"""
from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.benchmark.methods import METHOD_TITLES

FIGURE = "xz_cut.png"
WINDOW = 256  # lateral voxels shown at most: a wide block is cropped to the window with the most breaks


def breaks(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per (section, y, x) of sections 1..n-2: the prediction broken where the truth runs through (boolean masks,
    section axis first)."""
    t, p = truth, prediction
    return t[:-2] & t[1:-1] & t[2:] & p[:-2] & p[2:] & ~p[1:-1]


def choose_cut(truth: np.ndarray, predictions: Sequence[np.ndarray]) -> tuple[int, int]:
    """(y, number of breaks there): the XZ plane with the most breaks over all predictions, else the one with
    the most truth."""
    counts = np.zeros(truth.shape[1], np.int64)
    for p in predictions:
        counts += breaks(truth, p).sum(axis=(0, 2))
    if counts.max(initial=0) == 0:
        return int(np.argmax(truth.sum(axis=(0, 2)))), 0
    y = int(np.argmax(counts))
    return y, int(counts[y])


def _window(truth_plane: np.ndarray, break_planes: Sequence[np.ndarray], width: int) -> slice:
    """The ``width`` columns of an XZ plane holding the most breaks (else the most truth)."""
    n = truth_plane.shape[1]
    if n <= width:
        return slice(0, n)
    score = np.sum([b.sum(axis=0) for b in break_planes], axis=0) if break_planes else np.zeros(n)
    if not np.any(score):
        score = truth_plane.sum(axis=0)
    sums = np.convolve(score.astype(float), np.ones(width), mode="valid")
    start = int(np.argmax(sums))
    return slice(start, start + width)


def _read(path: Path) -> np.ndarray:
    from nnunetv2_reisoseg.io.volumes import read_image

    return read_image(path)[0]


def _cases(results: dict) -> list[str]:
    return sorted({c["case"] for t in results["trainings"] for c in t["cases"] if c["split"] == "test"})


def _prediction_files(results: dict, out: Path, ending: str, case: str) -> tuple[tuple[int, int], dict]:
    """The (seed, fold) pair with the most methods' predictions of ``case`` on disk, and those files."""
    best: tuple[tuple[int, int], dict] = ((0, 0), {})
    for seed, fold in results.get("pairs") or [[s, f] for s in results["seeds"] for f in results["folds"]]:
        found = {m: out / "predictions" / f"seed{seed}" / m / f"fold_{fold}" / f"{case}{ending}"
                 for m in results["methods"]}
        found = {m: p for m, p in found.items() if p.is_file()}
        if len(found) > len(best[1]):
            best = ((int(seed), int(fold)), found)
    return best


def write_xz_figure(results: dict, out: Path, dataset_dir: Path | None) -> dict | None:
    """``plots/xz_cut.png`` and what it shows (case, pair, plane, breaks per method), or None without test cases
    or dataset."""
    if dataset_dir is None or not (dataset_dir / "dataset.json").is_file():
        return None
    ending = json.loads((dataset_dir / "dataset.json").read_text())["file_ending"]
    cls = int(results["primary_classes"][0]) if results.get("primary_classes") else \
        min(int(c) for c in results["classes"] if int(c) > 0)
    chosen = None
    for case in _cases(results):
        label, image = dataset_dir / "labelsTs" / f"{case}{ending}", dataset_dir / "imagesTs" / f"{case}_0000{ending}"
        if not (label.is_file() and image.is_file()):
            continue
        pair, files = _prediction_files(results, out, ending, case)
        truth = _read(label) == cls
        preds = {m: _read(p) == cls for m, p in files.items()}
        y, n = choose_cut(truth, list(preds.values()))
        if chosen is None or n > chosen["breaks_total"]:
            chosen = {"case": case, "pair": pair, "y": y, "breaks_total": n, "image": image, "truth": truth,
                      "preds": preds}
    if chosen is None or not chosen["preds"]:  # no method's predictions on this machine: nothing to show
        return None
    _draw(results, chosen, cls, out / "plots" / FIGURE)
    return {"case": chosen["case"], "pair": list(chosen["pair"]), "y": chosen["y"], "class": cls,
            "breaks": {m: int(breaks(chosen["truth"], p)[:, chosen["y"]].sum()) for m, p in chosen["preds"].items()},
            "missing": [m for m in results["methods"] if m not in chosen["preds"]]}


def _draw(results: dict, chosen: dict, cls: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, truth, preds = chosen["y"], chosen["truth"], chosen["preds"]
    image = _read(chosen["image"]).astype(np.float32)[:, y]
    planes = {m: p[:, y] for m, p in preds.items()}
    cols = _window(truth[:, y], [breaks(truth, p)[:, y] for p in preds.values()], WINDOW)
    spacing = results["spacing"]
    aspect = float(spacing[0]) / float(spacing[2])  # sections drawn as thick as they are
    panels = [("image", None), ("truth", truth[:, y]), *((m, planes.get(m)) for m in results["methods"])]
    ratio = truth.shape[0] * aspect / (cols.stop - cols.start)  # height / width of a panel as drawn
    stacked = ratio < 0.6  # wide planes one above the other, narrow ones side by side
    n = len(panels)
    if stacked:
        fig, axes = plt.subplots(n, 1, figsize=(10, n * (10 * ratio + 0.45)), squeeze=False)
    else:
        fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.6 * ratio + 1.0), squeeze=False)
    lo, hi = np.percentile(image, [1, 99])
    name = results["classes"].get(str(cls), str(cls))
    for ax, (title, mask) in zip(axes.flat, panels):
        ax.imshow(image[:, cols], cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        if title == "image":
            label = f"image, test case {chosen['case']}, XZ plane y = {y} (sections top to bottom)"
        elif mask is None:
            label = f"{METHOD_TITLES.get(title, title)}: prediction not kept on this machine"
        else:
            overlay = np.zeros((*mask[:, cols].shape, 4))
            overlay[mask[:, cols]] = (1.0, 0.2, 0.2, 0.45) if title == "truth" else (0.1, 0.8, 1.0, 0.45)
            ax.imshow(overlay, aspect=aspect, interpolation="nearest")
            if title == "truth":
                label = f"truth: {name}"
            else:
                b = breaks(truth, preds[title])[:, y, cols]
                zs, xs = np.nonzero(b)
                ax.scatter(xs, zs + 1, marker="x", color="yellow", s=12, linewidths=0.8)
                label = f"{METHOD_TITLES.get(title, title)}: {len(zs)} break(s) in this plane (yellow x)"
        ax.set_title(label if stacked else textwrap.fill(label, 34), fontsize=7, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Across the sections: (seed, fold) {tuple(chosen['pair'])}, columns {cols.start}-{cols.stop - 1}",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Statistics of the comparison, with the training as the unit.

What varies between methods is the training (its seed and fold), not the case: the cases of one
training share its weights. Each training is summarised by its mean over cases; methods are paired by
(seed, fold); a verdict needs at least ``MIN_PAIRS`` training pairs and comes from a paired t-test on
the training means (``scipy.stats.ttest_rel``), reported as the mean paired difference (effect in the
metric's units), its 95% confidence interval, the standardised effect ``d_z`` (mean / sd of the paired
differences) and the p-value. With fewer pairs the verdict is "cannot tell". The spread over cases is
kept as a description only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnunetv2_reisoseg.benchmark.metrics import HIGHER_IS_BETTER, METRIC_TITLES
from nnunetv2_reisoseg.benchmark.presets import METHOD_TITLES

MIN_PAIRS = 3  # fewer independent trainings per method say nothing about the variation between trainings
CONFIDENCE = 0.95


def _stats(values: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation and count of the finite values (``n_undefined`` the others)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return {"mean": float(v.mean()) if v.size else None, "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "n": int(v.size), "n_undefined": len(values) - int(v.size)}


def comparisons(methods: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) reported as a - b: every method against stock at the same budget, and ReIsoSeg
    against stock trained for ReIsoSeg's wall time when that was run."""
    pairs = [(m, "stock") for m in methods if m not in ("stock", "stock_time") and "stock" in methods]
    if "stock_time" in methods and "reiso" in methods:
        pairs.append(("reiso", "stock_time"))
    return pairs


def training_means(rows: list[dict]) -> dict[tuple, dict]:
    """Per (split, class, metric, method, seed, fold): the mean over the training's cases and how many
    cases had a defined value."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        for m, v in r["metrics"].items():
            key = (r["split"], str(r["class"]), m, r["method"], r["seed"], r["fold"])
            groups.setdefault(key, []).append(v)
    out = {}
    for key, values in groups.items():
        s = _stats(values)
        out[key] = {"mean": s["mean"], "n_cases": s["n"], "n_undefined": s["n_undefined"]}
    return out


def paired_comparison(a: Sequence[float], b: Sequence[float], higher_is_better: bool | None,
                      names: tuple[str, str] = ("a", "b")) -> dict:
    """Paired comparison of per-training values ``a`` and ``b`` (same order of (seed, fold)): mean
    difference a - b, its confidence interval and p-value from ``scipy.stats.ttest_rel``, ``d_z``, and
    a verdict (``higher_is_better`` None: no verdict, e.g. for ratios without a better direction)."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    n = int(d.size)
    out: dict = {"n_pairs": n, "mean_difference": float(d.mean()) if n else None,
                 "sd_difference": float(d.std(ddof=1)) if n > 1 else None, "ci_low": None, "ci_high": None,
                 "confidence": CONFIDENCE, "p_value": None, "d_z": None,
                 "test": "paired t-test (scipy.stats.ttest_rel)"}
    if n < MIN_PAIRS:
        out["verdict"] = f"cannot tell ({n} training pair{'s' if n != 1 else ''}, fewer than {MIN_PAIRS})"
        return out
    sd = out["sd_difference"]
    if sd == 0:  # identical differences: the interval collapses onto them
        out["ci_low"] = out["ci_high"] = out["mean_difference"]
        out["p_value"] = 1.0 if out["mean_difference"] == 0 else 0.0
    else:
        res = stats.ttest_rel(np.asarray(a, float), np.asarray(b, float))
        ci = res.confidence_interval(CONFIDENCE)
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), p_value=float(res.pvalue),
                   d_z=float(d.mean() / sd))
    if higher_is_better is None:
        out["verdict"] = ""
    elif out["ci_low"] > 0 or out["ci_high"] < 0:
        a_better = (out["mean_difference"] > 0) == higher_is_better
        out["verdict"] = f"{names[0] if a_better else names[1]} better"
    else:
        out["verdict"] = f"no difference shown ({int(CONFIDENCE * 100)}% CI includes 0)"
    return out


def summarize(rows: list[dict], methods: Sequence[str]) -> dict:
    """Per split, class and metric: each method's mean over trainings (``trainings``), its spread over
    cases (``cases``, description only) and, under ``paired``, every comparison of ``comparisons``
    over the trainings both methods share (same seed and fold)."""
    means = training_means(rows)
    summary: dict = {}
    metrics = [m for m in METRIC_TITLES if any(m in r["metrics"] for r in rows)]
    for split in sorted({r["split"] for r in rows}):
        for c in sorted({str(r["class"]) for r in rows if r["split"] == split}):
            sel = [r for r in rows if r["split"] == split and str(r["class"]) == c]
            for m in metrics:
                per_training = {meth: {(k[4], k[5]): v["mean"] for k, v in means.items()
                                       if k[:4] == (split, c, m, meth)} for meth in methods}
                entry: dict = {
                    "trainings": {meth: _stats(list(per_training[meth].values())) for meth in methods},
                    "cases": {meth: _stats([r["metrics"].get(m) for r in sel if r["method"] == meth])
                              for meth in methods},
                    "paired": {},
                }
                for a, b in comparisons(methods):
                    keys = sorted(k for k in per_training[a] if k in per_training[b]
                                  and all(v is not None and math.isfinite(v)
                                          for v in (per_training[a][k], per_training[b][k])))
                    res = paired_comparison([per_training[a][k] for k in keys], [per_training[b][k] for k in keys],
                                            HIGHER_IS_BETTER.get(m), (METHOD_TITLES[a], METHOD_TITLES[b]))
                    res["pairs"] = [{"seed": k[0], "fold": k[1], "a": per_training[a][k], "b": per_training[b][k]}
                                    for k in keys]
                    entry["paired"][f"{a} - {b}"] = res
                summary.setdefault(split, {}).setdefault(c, {})[m] = entry
    return summary


def _fmt(s: dict | None, digits: int = 3) -> str:
    """``mean ± sd (n=..)`` of a ``_stats`` dict."""
    if not s or s.get("mean") is None:
        return "n/a"
    txt = f"{s['mean']:.{digits}g}" + (f" ± {s['std']:.2g}" if s.get("std") is not None else "")
    return txt + f" (n={s['n']}" + (f", {s['n_undefined']} undefined" if s.get("n_undefined") else "") + ")"


def fmt_paired(p: dict | None, digits: int = 3) -> str:
    """``Δ [CI low, high], d_z, p (n pairs)`` of a ``paired_comparison`` dict."""
    if not p or p.get("mean_difference") is None:
        return "n/a"
    txt = f"{p['mean_difference']:+.{digits}g}"
    if p.get("ci_low") is not None:
        txt += f" [{p['ci_low']:+.{digits}g}, {p['ci_high']:+.{digits}g}]"
        if p.get("d_z") is not None:
            txt += f", d_z {p['d_z']:+.2g}"
        txt += f", p={p['p_value']:.2g}"
    return txt + f" (n={p['n_pairs']})"

"""Statistics of the comparison: per-method summaries and paired differences."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunetv2_reisoseg.benchmark.metrics import HIGHER_IS_BETTER, METRIC_TITLES
from nnunetv2_reisoseg.benchmark.presets import METHOD_TITLES

MIN_PAIRS = 3  # the spread of fewer paired differences says nothing


def _stats(values: Sequence[float]) -> dict:
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


def summarize(rows: list[dict], methods: Sequence[str]) -> dict:
    """Per split, class and metric: each method's mean and spread, and under ``paired`` the paired
    difference of each pair of ``comparisons`` over the same (seed, fold, case); a difference within
    its spread is no difference."""
    summary: dict = {}
    metrics = [m for m in METRIC_TITLES if any(m in r["metrics"] for r in rows)]
    for split in sorted({r["split"] for r in rows}):
        for c in sorted({r["class"] for r in rows if r["split"] == split}):
            sel = [r for r in rows if r["split"] == split and r["class"] == c]
            for m in metrics:
                entry = {meth: _stats([r["metrics"].get(m) for r in sel if r["method"] == meth]) for meth in methods}
                values = {(r["method"], r["seed"], r["fold"], r["case"]): r["metrics"].get(m) for r in sel}
                for a, b in comparisons(methods):
                    diffs = []
                    for (meth, *key), va in values.items():
                        vb = values.get((b, *key))
                        if meth == a and va is not None and vb is not None and np.isfinite([va, vb]).all():
                            diffs.append(va - vb)
                    d = _stats(diffs)
                    if m not in HIGHER_IS_BETTER or d["mean"] is None:
                        verdict = ""
                    elif d["n"] < MIN_PAIRS:
                        verdict = f"cannot tell (fewer than {MIN_PAIRS} pairs)"
                    elif abs(d["mean"]) <= d["std"]:
                        verdict = "no difference (within the spread)"
                    else:
                        better = a if (d["mean"] > 0) == HIGHER_IS_BETTER[m] else b
                        verdict = f"{METHOD_TITLES[better]} better"
                    entry.setdefault("paired", {})[f"{a} - {b}"] = {**d, "verdict": verdict}
                summary.setdefault(split, {}).setdefault(str(c), {})[m] = entry
    return summary


def _fmt(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    txt = f"{s['mean']:.{digits}g}" + (f" ± {s['std']:.2g}" if s.get("std") is not None else "")
    return txt + f" (n={s['n']}" + (f", {s['n_undefined']} undefined" if s.get("n_undefined") else "") + ")"

"""Statistics of the comparison, with the training as the unit, and intervals that also cover new cases.

What varies between methods is the training (its seed and fold), not the case: the cases of one
training share its weights. Methods are paired by (seed, fold) and a verdict needs at least
``MIN_PAIRS`` training pairs. Two intervals are shown side by side:

- the paired t-interval over the training means (``scipy.stats.ttest_rel``): it covers retraining on
  the same cases, not new cases;
- a two-level paired bootstrap (resample the training pairs, then the cases within each, the same cases
  for both methods; ``N_RESAMPLES`` seeded resamples): it covers both.

"better" needs both intervals to exclude 0 on the same side. The bootstrap alone is not enough: with
3 to 5 pairs, resampling the pairs sees only a handful of distinct combinations and its interval is
narrower than the t-interval (measured on the tiny preset: bootstrap [-0.012, -0.005] against t
[-0.017, +0.002] from 3 pairs of one case each). Requiring both is an intersection-union test, valid at
the level of each: its p-value is the larger of the two. The primary measures are named in the preset
before anything trains; Holm's correction is applied to that p-value among the primaries of every comparison
the report makes, and separately among the secondaries. Identical paired differences carry no information about
the variation between trainings: "cannot tell".
"""
from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

from nnunetv2_reisoseg.benchmark.methods import METHOD_TITLES
from nnunetv2_reisoseg.benchmark.metrics import higher_is_better, metric_titles
from nnunetv2_reisoseg.benchmark.records import CaseRow, TrainingRecord

MIN_PAIRS = 3  # fewer independent trainings per method say nothing about the variation between trainings
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
NO_VARIATION = "cannot tell (no variation between trainings)"


def describe(values: Sequence[float | None]) -> dict:
    """Mean, sample standard deviation and count of the finite values (``n_undefined`` the others)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return {"mean": float(v.mean()) if v.size else None, "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "n": int(v.size), "n_undefined": len(values) - int(v.size)}


def comparisons(methods: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) reported as a - b: every method against stock at the same budget; the two controls of why
    ReIsoSeg trails (docs/study_why): ReIsoSeg with stock's loss on the deployed branch against ReIsoSeg (what
    the paper's weighting costs) and ReIsoSeg against stock with its loss x a (what the isotropic branch adds
    beyond that gradient scale); and ReIsoSeg against stock trained for ReIsoSeg's wall time when that was run."""
    pairs = [(m, "stock") for m in methods if m not in ("stock", "stock_time") and "stock" in methods]
    for a, b in (("aux", "reiso"), ("reiso", "stock_half"), ("reiso", "stock_time")):
        if a in methods and b in methods:
            pairs.append((a, b))
    return pairs


def two_level_bootstrap(diffs: Sequence[np.ndarray], n_resamples: int = N_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> dict:
    """Percentile interval and two-sided p of the mean paired difference, resampling the training pairs and
    then, independently for every drawn pair, its cases. ``diffs[k]`` holds pair k's per-case differences
    (method a minus method b on the same cases)."""
    rng = np.random.default_rng(seed)
    k = len(diffs)
    drawn = rng.integers(0, k, (n_resamples, k))
    reps = np.empty((n_resamples, k))
    for slot in range(k):
        for pair in range(k):
            rows = np.flatnonzero(drawn[:, slot] == pair)
            d = diffs[pair]
            reps[rows, slot] = d[rng.integers(0, d.size, (rows.size, d.size))].mean(axis=1)
    stat = reps.mean(axis=1)
    lo, hi = np.quantile(stat, [ALPHA / 2, 1 - ALPHA / 2])
    tail = min(np.count_nonzero(stat <= 0), np.count_nonzero(stat >= 0))
    return {"low": float(lo), "high": float(hi), "p_value": min(1.0, 2 * (tail + 1) / (n_resamples + 1)),
            "n_resamples": n_resamples, "seed": seed}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out.tolist()


def paired_comparison(a: Sequence[float], b: Sequence[float], case_diffs: Sequence[np.ndarray] | None = None,
                      n_resamples: int = N_RESAMPLES) -> dict:
    """Paired comparison of per-training values ``a`` and ``b`` (same order of (seed, fold)): mean
    difference a - b, the t-interval and p over the training means, ``d_z``, and with ``case_diffs`` (per
    pair, the per-case differences on the cases both methods have) the two-level bootstrap. The verdict
    comes from ``decide`` once the family's p-values are adjusted."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    n = int(d.size)
    out: dict = {"n_pairs": n, "mean_difference": float(d.mean()) if n else None,
                 "sd_difference": float(d.std(ddof=1)) if n > 1 else None, "ci_low": None, "ci_high": None,
                 "confidence": CONFIDENCE, "p_value": None, "d_z": None,
                 "test": "paired t-test over training means (scipy.stats.ttest_rel)", "bootstrap": None}
    if n >= 2 and np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        out["sd_difference"] = 0.0  # identical up to rounding (0.9 - 0.8 vs 0.8 - 0.7): no variation to measure
    if n < MIN_PAIRS or not out["sd_difference"]:
        return out
    res = stats.ttest_rel(np.asarray(a, float), np.asarray(b, float))
    ci = res.confidence_interval(CONFIDENCE)
    out.update(ci_low=float(ci.low), ci_high=float(ci.high), p_value=float(res.pvalue),
               d_z=float(d.mean() / out["sd_difference"]))
    if case_diffs is not None and all(x.size for x in case_diffs):
        out["bootstrap"] = two_level_bootstrap([np.asarray(x, float) for x in case_diffs], n_resamples)
        out["p_both"] = max(out["p_value"], out["bootstrap"]["p_value"])  # the intersection-union test's p
    return out


def decide(p: dict, higher_is_better: bool | None, names: tuple[str, str]) -> str:
    """The verdict of a ``paired_comparison`` that carries its Holm-adjusted p (``p_holm``)."""
    n = p["n_pairs"]
    if n < MIN_PAIRS:
        return f"cannot tell ({n} training pair{'s' if n != 1 else ''}, fewer than {MIN_PAIRS})"
    if not p["sd_difference"]:
        return NO_VARIATION
    if higher_is_better is None:
        return ""
    boot = p.get("bootstrap")
    if boot is None:
        return "cannot tell (no cases shared by both methods)"
    if not (boot["low"] > 0 or boot["high"] < 0):
        return f"no difference shown ({int(CONFIDENCE * 100)}% bootstrap CI includes 0)"
    if not ((p["ci_low"] > 0 and boot["low"] > 0) or (p["ci_high"] < 0 and boot["high"] < 0)):
        return f"no difference shown ({int(CONFIDENCE * 100)}% t-interval over trainings includes 0)"
    if p["p_holm"] >= ALPHA:
        return f"no difference shown after Holm (adjusted p {p['p_holm']:.2g})"
    a_better = (p["mean_difference"] > 0) == higher_is_better
    return f"{names[0] if a_better else names[1]} better"


def flatten_cases(trainings: Sequence[TrainingRecord]) -> list[CaseRow]:
    """One row per (training, case, class) with the training's method, seed and fold."""
    return [{**c, "method": t["method"], "seed": t["seed"], "fold": t["fold"]} for t in trainings for c in t["cases"]]


def costs(trainings: Sequence[TrainingRecord], methods: Sequence[str]) -> dict:
    """Per method, over its trainings: median step time, wall time, peak memory, inference per test case."""
    out = {}
    for meth in methods:
        runs = [r for r in trainings if r["method"] == meth]
        steps = [float(np.median(r["timing"]["step_times_s"][2:] or r["timing"]["step_times_s"])) for r in runs]
        inf = [s for r in runs if r.get("inference") for s in r["inference"]["seconds_per_case"].values()]
        gpu = [r["timing"]["peak_gpu_allocated_bytes"] for r in runs if r["timing"]["peak_gpu_allocated_bytes"]]
        out[meth] = {"median_step_s": describe(steps),
                     "training_wall_s": describe([r["training_wall_s"] for r in runs]),
                     "peak_cpu_rss_gib": describe([r["timing"]["peak_cpu_rss_bytes"] / 2**30 for r in runs]),
                     "peak_gpu_gib": describe([g / 2**30 for g in gpu]) if gpu else None,
                     "inference_s_per_case": describe(inf) if inf else None}
    return out


def _case_values(rows: Sequence[CaseRow]) -> dict[tuple, dict[str, dict[str, float]]]:
    """(split, class, method, seed, fold) -> metric -> case -> value."""
    out: dict[tuple, dict[str, dict[str, float]]] = {}
    for r in rows:
        per_metric = out.setdefault((r["split"], str(r["class"]), r["method"], r["seed"], r["fold"]), {})
        for m, v in r["metrics"].items():
            per_metric.setdefault(m, {})[r["case"]] = v
    return out


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def summarize(rows: Sequence[CaseRow], methods: Sequence[str], primary: Sequence[tuple[str, str]] = (),
              n_resamples: int = N_RESAMPLES, primary_classes: Collection[str] = (),
              titles: dict[str, str] | None = None) -> dict:
    """Per split, class and metric: each method's mean over trainings (``trainings``), its spread over
    cases (``cases``, description only) and, under ``paired``, every comparison of ``comparisons`` over the
    trainings both methods share (same seed and fold), with verdicts after Holm. ``primary`` lists the
    (split, metric) pairs named before training, primary for the classes in ``primary_classes`` (label
    values as strings), or for every class when it is empty. ``titles`` name methods the benchmark's registry
    does not know (a study's own arms) in the verdicts."""
    values = _case_values(rows)
    summary: dict = {}
    metrics = [m for m in metric_titles() if any(m in r["metrics"] for r in rows)]
    for split in sorted({r["split"] for r in rows}):
        for c in sorted({str(r["class"]) for r in rows if r["split"] == split}):
            sel = [r for r in rows if r["split"] == split and str(r["class"]) == c]
            for m in metrics:
                per_training = {meth: {(k[3], k[4]): v[m] for k, v in values.items() if k[:3] == (split, c, meth)
                                       and m in v} for meth in methods}
                means = {meth: {key: describe(list(cases.values()))["mean"] for key, cases in per.items()}
                         for meth, per in per_training.items()}
                entry: dict = {
                    "primary": (split, m) in set(map(tuple, primary))
                    and (not primary_classes or c in set(map(str, primary_classes))),
                    "trainings": {meth: describe(list(means[meth].values())) for meth in methods},
                    "cases": {meth: describe([r["metrics"].get(m) for r in sel if r["method"] == meth])
                              for meth in methods},
                    "paired": {},
                }
                for a, b in comparisons(methods):
                    keys = sorted(k for k in means[a]
                                  if k in means[b] and _finite(means[a][k]) and _finite(means[b][k]))
                    diffs = []
                    for k in keys:
                        ca, cb = per_training[a][k], per_training[b][k]
                        shared = sorted(x for x in ca if x in cb and _finite(ca[x]) and _finite(cb[x]))
                        diffs.append(np.array([ca[x] - cb[x] for x in shared], float))
                    res = paired_comparison([means[a][k] for k in keys], [means[b][k] for k in keys],
                                            diffs if higher_is_better(m) is not None else None, n_resamples)
                    res["pairs"] = [{"seed": k[0], "fold": k[1], "a": means[a][k], "b": means[b][k]} for k in keys]
                    entry["paired"][f"{a} - {b}"] = res
                summary.setdefault(split, {}).setdefault(c, {})[m] = entry
    _apply_holm(summary, methods, {**METHOD_TITLES, **(titles or {})})
    return summary


def _apply_holm(summary: dict, methods: Sequence[str], titles: dict[str, str]) -> None:
    """Holm among the primaries of every comparison together and, separately, among the secondaries; then
    verdicts. Correcting over the comparisons too keeps the chance of any false "better" at ALPHA however many
    methods are compared."""
    pairs = comparisons(methods)
    families: dict[bool, list[dict]] = {True: [], False: []}
    for per_class in summary.values():
        for per_metric in per_class.values():
            for m, entry in per_metric.items():
                for a, b in pairs:
                    p = entry["paired"][f"{a} - {b}"]
                    if p.get("p_both") is not None and higher_is_better(m) is not None:
                        families[entry["primary"]].append(p)
    names = ", ".join(f"{a} - {b}" for a, b in pairs)
    for is_primary, members in families.items():
        for p, adjusted in zip(members, holm([x["p_both"] for x in members])):
            p.update(p_holm=adjusted, holm_family=f"{'primary' if is_primary else 'secondary'} measures of "
                                                  f"{names} ({len(members)})")
    for per_class in summary.values():
        for per_metric in per_class.values():
            for m, entry in per_metric.items():
                for a, b in pairs:
                    p = entry["paired"][f"{a} - {b}"]
                    p["verdict"] = decide(p, higher_is_better(m), (titles.get(a, a), titles.get(b, b)))


PLATEAU_CURVE = "mean_fg_dice"  # nnU-Net's raw per-epoch pseudo Dice, not its moving average (ema_fg_dice)


def plateau(values: Sequence[float], fraction: float = 0.2, tolerance: float = 0.01) -> dict:
    """Whether a learning curve has levelled off: the mean over its last ``fraction`` of epochs against the
    mean over the ``fraction`` before, within ``tolerance``; ``state`` says "levelled off", "still rising" or
    "falling". Judged on the raw per-epoch pseudo Dice (``PLATEAU_CURVE``): nnU-Net's moving average (0.9 old,
    0.1 new) still carries the first epochs long after, and made a late start look like a steep rise."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    w = max(1, round(fraction * len(v)))
    out: dict = {"reached": None, "state": "too short", "last": None, "before": None, "window_epochs": w,
                 "tolerance": tolerance, "curve": PLATEAU_CURVE}
    if len(v) < 2 * w or len(v) < 2:
        return out
    last, before = float(np.mean(v[-w:])), float(np.mean(v[-2 * w:-w]))
    state = "levelled off" if abs(last - before) <= tolerance else "still rising" if last > before else "falling"
    out.update(reached=state == "levelled off", state=state, last=last, before=before)
    return out


def fmt_stats(s: dict | None, digits: int = 3) -> str:
    """``mean ± sd (n=..)`` of a ``describe`` dict."""
    if not s or s.get("mean") is None:
        return "n/a"
    txt = f"{s['mean']:.{digits}g}" + (f" ± {s['std']:.2g}" if s.get("std") is not None else "")
    return txt + f" (n={s['n']}" + (f", {s['n_undefined']} undefined" if s.get("n_undefined") else "") + ")"


def fmt_paired(p: dict | None, digits: int = 3) -> str:
    """``Δ [t CI], d_z, p; bootstrap [CI], Holm p (n pairs)`` of a ``paired_comparison`` dict."""
    if not p or p.get("mean_difference") is None:
        return "n/a"
    txt = f"{p['mean_difference']:+.{digits}g}"
    if p.get("ci_low") is not None:
        txt += f" t [{p['ci_low']:+.{digits}g}, {p['ci_high']:+.{digits}g}]"
        if p.get("d_z") is not None:
            txt += f", d_z {p['d_z']:+.2g}"
        txt += f", p={p['p_value']:.2g}"
    boot = p.get("bootstrap")
    if boot:
        txt += f"; bootstrap [{boot['low']:+.{digits}g}, {boot['high']:+.{digits}g}]"
    if p.get("p_holm") is not None:
        txt += f"; Holm p={p['p_holm']:.2g}"
    return txt + f" (n={p['n_pairs']})"

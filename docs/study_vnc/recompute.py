"""The VNC study's primary verdict from results.json alone, with numpy and scipy (not the project's code).

    python docs/study_vnc/recompute.py [docs/study_vnc/results.json]

Mitochondria (class 1) on the test cases: per training pair (seed, fold), the mean paired difference ReIsoSeg
minus stock nnU-Net over the cases; the paired t-interval over pairs, a two-level bootstrap (pairs, then cases
within each drawn pair), the larger of the two p-values, Holm over the two primary measures, and "better" only
where both intervals exclude 0 and the Holm p is below 0.05. The bootstrap draws its own random numbers, so its
bounds differ from the report's in the third decimal.
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

r = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/study_vnc/results.json").read_text())
rows = {}  # (method, seed, fold) -> {case: metrics of class 1 on the test cases}
for t in r["trainings"]:
    rows[(t["method"], t["seed"], t["fold"])] = {c["case"]: c["metrics"] for c in t["cases"]
                                                 if c["split"] == "test" and str(c["class"]) == "1"}
pairs = sorted({(s, f) for _, s, f in rows})
p_values, out = [], {}
for measure in ("dice", "ap75"):
    diffs = [np.array([rows[("reiso", s, f)][c][measure] - rows[("stock", s, f)][c][measure]
                       for c in sorted(rows[("stock", s, f)])]) for s, f in pairs]
    means = np.array([d.mean() for d in diffs])
    t = stats.ttest_1samp(means, 0.0)
    ci = t.confidence_interval(0.95)
    rng = np.random.default_rng(0)
    boot = np.array([np.mean([diffs[k][rng.integers(0, diffs[k].size, diffs[k].size)].mean()
                              for k in rng.integers(0, len(diffs), len(diffs))]) for _ in range(10_000)])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p_boot = min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0)))
    p_values.append(max(t.pvalue, p_boot))
    out[measure] = (means.mean(), ci.low, ci.high, lo, hi, [len(d) for d in diffs])
order = np.argsort(p_values)
holm = np.minimum(1, np.maximum.accumulate(np.sort(p_values) * (len(p_values) - np.arange(len(p_values)))))
holm = dict(zip(np.array(list(out))[order], holm))
print(f"{len(pairs)} training pairs {pairs}")
for m, (d, tl, th, bl, bh, n_cases) in out.items():
    better = (th < 0 and bh < 0) or (tl > 0 and bl > 0)
    verdict = ("stock nnU-Net" if d < 0 else "ReIsoSeg") + " better" if better and holm[m] < 0.05 else \
        "no difference shown"
    print(f"{m}: ReIsoSeg - stock {d:+.4f} over {n_cases} test case(s) per pair, t [{tl:+.4f}, {th:+.4f}], "
          f"bootstrap [{bl:+.4f}, {bh:+.4f}], Holm p {holm[m]:.3f}: {verdict}")

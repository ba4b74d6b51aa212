"""A study's primary verdicts from its results.json alone, with numpy and scipy (not the project's code).

    python docs/recompute.py docs/study_vnc/results.json
    python docs/recompute.py docs/study_why/vnc/results.json --comparisons reiso-stock aux-stock stock_half-stock \
        aux-reiso reiso-stock_half
    python docs/recompute.py docs/study_instances/results.json --comparisons watershed-stock --measures ap75 ap50

Class 1 on the test cases (mitochondria in every study here): per training pair (seed, fold) and comparison
A - B, the mean paired difference over the cases; the paired t-interval over pairs, a two-level bootstrap (pairs,
then cases within each drawn pair), the larger of the two p-values, Holm over every (comparison, primary measure)
together, and "better" only where both intervals exclude 0 and the Holm p is below 0.05. The bootstrap draws its
own random numbers, so its bounds differ from the report's in the third decimal.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

TITLES = {"stock": "stock nnU-Net", "reiso": "ReIsoSeg", "aux": "ReIsoSeg aux", "stock_half": "stock x a",
          "paper": "paper network", "stock_time": "stock at ReIsoSeg's time"}
TITLES.update({"watershed": "boundary targets + watershed"})  # docs/study_instances (its stock: components)
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("results")
ap.add_argument("--comparisons", nargs="+", default=["reiso-stock"], metavar="A-B")
ap.add_argument("--measures", nargs="+", default=["dice", "ap75"])
args = ap.parse_args()
r = json.loads(Path(args.results).read_text())
rows = {}  # (method, seed, fold) -> {case: metrics of class 1 on the test cases}
for t in r["trainings"]:
    rows[(t["method"], t["seed"], t["fold"])] = {c["case"]: c["metrics"] for c in t["cases"]
                                                 if c["split"] == "test" and str(c["class"]) == "1"}
tests = []  # (comparison, measure, mean difference, t-interval, bootstrap interval, p of both, cases per pair)
for comparison in args.comparisons:
    a, b = comparison.split("-", 1)
    pairs = sorted({(s, f) for m, s, f in rows if m == a} & {(s, f) for m, s, f in rows if m == b})
    for measure in args.measures:
        diffs = [np.array([rows[(a, s, f)][c][measure] - rows[(b, s, f)][c][measure]
                           for c in sorted(rows[(b, s, f)])]) for s, f in pairs]
        means = np.array([d.mean() for d in diffs])
        t = stats.ttest_1samp(means, 0.0)
        ci = t.confidence_interval(0.95)
        rng = np.random.default_rng(0)
        boot = np.array([np.mean([diffs[k][rng.integers(0, diffs[k].size, diffs[k].size)].mean()
                                  for k in rng.integers(0, len(diffs), len(diffs))]) for _ in range(10_000)])
        lo, hi = np.percentile(boot, [2.5, 97.5])
        p_boot = min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0)))
        tests.append((a, b, measure, means.mean(), (ci.low, ci.high), (lo, hi), max(t.pvalue, p_boot),
                      [len(d) for d in diffs], pairs))
p_values = np.array([x[6] for x in tests])
order = np.argsort(p_values, kind="stable")
adjusted = np.empty_like(p_values)
adjusted[order] = np.minimum(1, np.maximum.accumulate(p_values[order] * (len(p_values) - np.arange(len(p_values)))))
print(f"{len(tests)} tests; Holm over all of them")
for (a, b, m, d, (tl, th), (bl, bh), _, n_cases, pairs), holm in zip(tests, adjusted):
    better = (th < 0 and bh < 0) or (tl > 0 and bl > 0)
    verdict = f"{TITLES[b] if d < 0 else TITLES[a]} better" if better and holm < 0.05 else "no difference shown"
    print(f"{m}: {TITLES[a]} - {TITLES[b]} {d:+.4f} over {len(pairs)} pairs ({sum(n_cases)} test cases), "
          f"t [{tl:+.4f}, {th:+.4f}], bootstrap [{bl:+.4f}, {bh:+.4f}], Holm p {holm:.3f}: {verdict}")

"""Verdicts come from independent trainings, never from the cases of one training."""
import numpy as np
import pytest
from scipy import stats

from nnunetv2_reisoseg.benchmark.report import plateau
from nnunetv2_reisoseg.benchmark.stats import MIN_PAIRS, paired_comparison, summarize


def _rows(method, seed, fold, dices, split="test"):
    return [{"method": method, "seed": seed, "fold": fold, "split": split, "case": f"c{i}", "class": 1,
             "metrics": {"dice": d, "hd95_nm": 10.0 - d, "components_ratio": 1.0}} for i, d in enumerate(dices)]


def test_many_cases_of_one_training_are_one_pair():
    rng = np.random.default_rng(0)
    rows = _rows("stock", 0, 0, rng.uniform(0.5, 0.6, 50)) + _rows("reiso", 0, 0, rng.uniform(0.8, 0.9, 50))
    entry = summarize(rows, ["stock", "reiso"])["test"]["1"]["dice"]
    p = entry["paired"]["reiso - stock"]
    assert p["n_pairs"] == 1 and p["verdict"].startswith("cannot tell") and p["ci_low"] is None
    assert entry["cases"]["reiso"]["n"] == 50 and entry["trainings"]["reiso"]["n"] == 1  # cases: description only


def test_paired_t_interval_over_training_means():
    rng = np.random.default_rng(1)
    rows, stock_means, reiso_means = [], [], []
    for fold in range(4):
        s, r = rng.uniform(0.5, 0.7, 6), rng.uniform(0.55, 0.75, 6)
        rows += _rows("stock", 0, fold, s) + _rows("reiso", 0, fold, r)
        stock_means.append(s.mean())
        reiso_means.append(r.mean())
    p = summarize(rows, ["stock", "reiso"])["test"]["1"]["dice"]["paired"]["reiso - stock"]
    d = np.asarray(reiso_means) - np.asarray(stock_means)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))  # the textbook interval
    assert p["n_pairs"] == 4 and p["mean_difference"] == pytest.approx(d.mean())
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert p["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert [(x["fold"], x["a"], x["b"]) for x in p["pairs"]] == pytest.approx(
        list(zip(range(4), reiso_means, stock_means)))


def test_verdicts_follow_the_interval_and_the_metric_direction():
    better = paired_comparison([0.8, 0.82, 0.79], [0.7, 0.71, 0.72], True, ("ReIsoSeg", "stock"))
    assert better["ci_low"] > 0 and better["verdict"] == "ReIsoSeg better"
    lower_is_better = paired_comparison([12.0, 11.0, 12.5], [8.0, 8.2, 7.9], False, ("ReIsoSeg", "stock"))
    assert lower_is_better["verdict"] == "stock better"
    unclear = paired_comparison([0.8, 0.7, 0.75], [0.7, 0.8, 0.76], True, ("ReIsoSeg", "stock"))
    assert unclear["ci_low"] < 0 < unclear["ci_high"] and unclear["verdict"].startswith("no difference shown")
    two = paired_comparison([0.8, 0.9], [0.1, 0.2], True)
    assert two["n_pairs"] == 2 < MIN_PAIRS and two["verdict"].startswith("cannot tell")
    assert paired_comparison([1.0, 1.5, 2.0], [1.0, 1.0, 1.0], None)["verdict"] == ""


def test_pairs_are_matched_by_seed_and_fold():
    rows = []
    for seed, (s, r) in enumerate([(0.5, 0.6), (0.7, 0.75), (0.4, 0.48)]):
        rows += _rows("stock", seed, 0, [s, s]) + _rows("reiso", seed, 0, [r, r])
    rows += _rows("reiso", 9, 0, [0.0, 0.0])  # no stock training with seed 9: not a pair
    p = summarize(rows, ["stock", "reiso"])["test"]["1"]["dice"]["paired"]["reiso - stock"]
    assert p["n_pairs"] == 3 and p["mean_difference"] == pytest.approx(np.mean([0.1, 0.05, 0.08]))


def test_plateau_criterion():
    assert plateau([0.1, 0.3, 0.5, 0.6, 0.65, 0.7, 0.80, 0.81, 0.80, 0.81])["reached"]  # 0.805 vs 0.805
    rising = plateau(list(np.linspace(0.1, 0.8, 20)))
    assert rising["reached"] is False and rising["last"] > rising["before"] + 0.01
    assert plateau([0.5])["reached"] is None

"""Verdicts come from independent trainings, never from the cases of one training."""
import numpy as np
import pytest
from scipy import stats

from nnunetv2_reisoseg.benchmark.stats import (
    MIN_PAIRS,
    N_RESAMPLES,
    NO_VARIATION,
    decide,
    holm,
    plateau,
    summarize,
    two_level_bootstrap,
)


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
    assert [x["fold"] for x in p["pairs"]] == list(range(4))
    assert [x["a"] for x in p["pairs"]] == pytest.approx(reiso_means)
    assert [x["b"] for x in p["pairs"]] == pytest.approx(stock_means)


def _verdict(a_cases, b_cases, metric="dice"):
    """The verdict of method a against b, each a list of per-training case values (one training per fold)."""
    rows = []
    for fold, (a, b) in enumerate(zip(a_cases, b_cases)):
        rows += [{"method": m, "seed": 0, "fold": fold, "split": "test", "case": f"c{i}", "class": 1,
                  "metrics": {metric: v}} for m, vals in (("reiso", a), ("stock", b)) for i, v in enumerate(vals)]
    entry = summarize(rows, ["stock", "reiso"], [("test", metric)], n_resamples=2000)["test"]["1"][metric]
    return entry["paired"]["reiso - stock"]


def test_verdicts_follow_the_bootstrap_interval_and_the_metric_direction():
    better = _verdict([[0.80, 0.81], [0.82, 0.83], [0.79, 0.80]], [[0.70, 0.70], [0.71, 0.72], [0.72, 0.71]])
    assert better["bootstrap"]["low"] > 0 and better["verdict"] == "ReIsoSeg better"
    worse_hd = _verdict([[12.0, 12.5], [11.0, 11.2], [12.5, 12.1]], [[8.0, 8.1], [8.2, 8.0], [7.9, 8.3]], "hd95_nm")
    assert worse_hd["verdict"] == "stock nnU-Net better"
    unclear = _verdict([[0.8, 0.8], [0.7, 0.7], [0.75, 0.75]], [[0.7, 0.7], [0.8, 0.8], [0.76, 0.76]])
    assert unclear["bootstrap"]["low"] < 0 < unclear["bootstrap"]["high"]
    assert unclear["verdict"].startswith("no difference shown")
    two = _verdict([[0.8], [0.9]], [[0.1], [0.2]])
    assert two["n_pairs"] == 2 < MIN_PAIRS and two["verdict"].startswith("cannot tell (2 training pairs")
    assert _verdict([[3], [4], [5]], [[1], [1], [1]], "ref_objects")["verdict"] == ""  # no better direction


def test_identical_paired_differences_tell_nothing():
    p = _verdict([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7]], [[0.8, 0.8], [0.7, 0.7], [0.6, 0.6]])
    assert p["verdict"] == NO_VARIATION and p["p_value"] is None and p["bootstrap"] is None


def test_bootstrap_covers_new_cases_where_the_t_interval_does_not():
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.1, 15)  # case difficulty, the same in every training
    effect = rng.normal(0, 0.05, 15)  # per-case difference between the methods, the same in every training
    a = [list(0.7 + shared + effect + rng.normal(0, 0.002, 15)) for _ in range(4)]
    b = [list(0.7 + shared + rng.normal(0, 0.002, 15)) for _ in range(4)]
    p = _verdict(a, b)
    t_width, boot_width = p["ci_high"] - p["ci_low"], p["bootstrap"]["high"] - p["bootstrap"]["low"]
    assert boot_width > 5 * t_width  # retraining varies little; new cases vary a lot
    again = _verdict(a, b)
    assert again["bootstrap"] == p["bootstrap"]  # seeded


def test_bootstrap_resamples_pairs_then_cases():
    diffs = [np.array([0.1, 0.1]), np.array([0.3, 0.3]), np.array([0.2, 0.2])]
    boot = two_level_bootstrap(diffs, 4000)
    # with no spread inside a pair, only the pair draw varies: the bootstrap of the 3 pair means
    assert boot["low"] >= 0.1 - 1e-12 and boot["high"] <= 0.3 + 1e-12 and boot["low"] < 0.2 < boot["high"]
    assert boot["n_resamples"] == 4000 and N_RESAMPLES >= 10_000
    inner = two_level_bootstrap([np.array([0.0, 0.4]), np.array([0.0, 0.4]), np.array([0.0, 0.4])], 4000)
    assert inner["low"] < 0.1 and inner["high"] > 0.3  # cases vary inside every pair: the interval sees it


def test_holm_adjusts_step_down_and_can_take_a_verdict_away():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    p = {"n_pairs": 3, "sd_difference": 0.01, "mean_difference": 0.02, "ci_low": 0.002, "ci_high": 0.03,
         "bootstrap": {"low": 0.001, "high": 0.04, "p_value": 0.03}, "p_holm": 0.09}
    assert decide(p, True, ("ReIsoSeg", "stock")).startswith("no difference shown after Holm")
    p["p_holm"] = 0.03
    assert decide(p, True, ("ReIsoSeg", "stock")) == "ReIsoSeg better"


def test_a_narrow_bootstrap_from_few_pairs_is_not_enough():
    # one case per training: the bootstrap only reshuffles 3 pair values, the t-interval knows better
    p = _verdict([[0.798], [0.79], [0.815]], [[0.80], [0.80], [0.82]])
    assert p["bootstrap"]["high"] < 0 < p["ci_high"]
    assert p["verdict"] == "no difference shown (95% t-interval over trainings includes 0)"


def test_primaries_and_secondaries_are_separate_holm_families():
    rows = []
    for fold in range(3):
        for m, shift in (("reiso", 0.1), ("stock", 0.0)):
            rows += [{"method": m, "seed": 0, "fold": fold, "split": "test", "case": f"c{i}", "class": 1,
                      "metrics": {"dice": 0.5 + shift * (1 + 0.2 * fold) + 0.001 * i,
                                  "iou": 0.4 + shift * (1 - 0.3 * fold) + 0.02 * i,
                                  "ap75": 0.3 + shift * (fold - 1) + 0.01 * i}} for i in range(3)]
    s = summarize(rows, ["stock", "reiso"], [("test", "dice")], n_resamples=2000)["test"]["1"]
    assert s["dice"]["primary"] and not s["iou"]["primary"]
    assert s["dice"]["paired"]["reiso - stock"]["holm_family"] == "primary measures of reiso - stock (1)"
    assert s["iou"]["paired"]["reiso - stock"]["holm_family"].endswith("(2)")  # iou and ap75
    p = s["iou"]["paired"]["reiso - stock"]
    assert p["p_both"] == max(p["p_value"], p["bootstrap"]["p_value"]) and p["p_holm"] >= p["p_both"]


def test_pairs_are_matched_by_seed_and_fold():
    rows = []
    for seed, (s, r) in enumerate([(0.5, 0.6), (0.7, 0.75), (0.4, 0.48)]):
        rows += _rows("stock", seed, 0, [s, s]) + _rows("reiso", seed, 0, [r, r])
    rows += _rows("reiso", 9, 0, [0.0, 0.0])  # no stock training with seed 9: not a pair
    p = summarize(rows, ["stock", "reiso"])["test"]["1"]["dice"]["paired"]["reiso - stock"]
    assert p["n_pairs"] == 3 and p["mean_difference"] == pytest.approx(np.mean([0.1, 0.05, 0.08]))


def test_plateau_on_the_raw_curve_says_still_rising():
    level = plateau([0.1, 0.3, 0.5, 0.6, 0.65, 0.7, 0.80, 0.81, 0.80, 0.81])  # 0.805 vs 0.805
    assert level["reached"] and level["state"] == "levelled off" and level["tolerance"] == 0.01
    rising = plateau(list(np.linspace(0.1, 0.8, 20)))
    assert rising["reached"] is False and rising["state"] == "still rising" and rising["last"] > rising["before"]
    assert plateau(list(np.linspace(0.8, 0.1, 20)))["state"] == "falling"
    assert plateau([0.5])["reached"] is None and plateau([0.5])["curve"] == "mean_fg_dice"


def test_the_moving_average_misleads_where_the_raw_curve_does_not():
    """Issue 27: a method that starts late (raw 0.09 at epoch 0 against 0.68) and is flat afterwards still
    "rises" on nnU-Net's moving average for many epochs; on the raw values it has levelled off."""
    raw = [0.087] + [0.93 + 0.002 * (i % 2) for i in range(24)]
    ema = [raw[0]]
    for v in raw[1:]:
        ema.append(0.9 * ema[-1] + 0.1 * v)
    assert plateau(ema)["state"] == "still rising"
    assert plateau(raw)["state"] == "levelled off"


def test_the_controls_are_compared_where_they_answer_and_holm_spans_every_comparison():
    from nnunetv2_reisoseg.benchmark.stats import comparisons

    methods = ["stock", "reiso", "aux", "stock_half"]
    assert comparisons(methods) == [("reiso", "stock"), ("aux", "stock"), ("stock_half", "stock"),
                                    ("aux", "reiso"), ("reiso", "stock_half")]
    assert comparisons(["stock", "reiso"]) == [("reiso", "stock")]
    rng = np.random.default_rng(5)
    rows = []
    for fold in range(3):
        for m, shift in (("stock", 0.0), ("reiso", -0.05), ("aux", 0.0), ("stock_half", -0.04)):
            rows += _rows(m, 0, fold, 0.7 + shift + rng.normal(0, 0.01, 3))
    s = summarize(rows, methods, [("test", "dice")], n_resamples=2000)["test"]["1"]["dice"]["paired"]
    assert set(s) == {f"{a} - {b}" for a, b in comparisons(methods)}
    assert all(p["holm_family"].startswith("primary measures of reiso - stock, aux - stock") and
               p["holm_family"].endswith("(5)") for p in s.values())
    ps = [p["p_both"] for p in s.values()]
    assert min(p["p_holm"] for p in s.values()) == pytest.approx(min(1.0, 5 * min(ps)))


def test_primary_classes_limit_which_classes_are_primary():
    rng = np.random.default_rng(2)
    rows = []
    for fold in range(3):
        for meth in ("stock", "reiso"):
            for c in (1, 2):
                rows += [dict(r, **{"class": c}) for r in _rows(meth, 0, fold, rng.uniform(0.5, 0.7, 4))]
    every = summarize(rows, ["stock", "reiso"], [("test", "dice")])["test"]
    only = summarize(rows, ["stock", "reiso"], [("test", "dice")], primary_classes=["1"])["test"]
    assert every["1"]["dice"]["primary"] and every["2"]["dice"]["primary"]
    assert only["1"]["dice"]["primary"] and not only["2"]["dice"]["primary"]
    # class 2 then joins the secondaries' Holm family, so the primary family holds one test instead of two
    assert only["1"]["dice"]["paired"]["reiso - stock"]["holm_family"].endswith("(1)")

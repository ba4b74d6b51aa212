"""1x beside 4x: the same (seed, fold) pairs trained at the vnc preset's budget (docs/study_why/vnc) and at 4x it
(docs/study_budget), from the records alone, with numpy, scipy and matplotlib.

    python docs/study_budget/compare_budgets.py            # writes docs/study_budget/budgets.md and plots/

Class 1 (mitochondria) on the test block. For each method and pair: test Dice and AP-75 at both budgets; for
aux - stock at each budget and for its change with the budget ((aux - stock) at 4x minus at 1x, over the pairs
that have all four trainings): the mean over pairs and the paired t-interval over pairs (one test block per
training, so the interval covers retraining, not new tissue). The raw per-epoch pseudo Dice of every training
against iterations, both budgets on one axis, and the wall time of each training.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
MEASURES = (("dice", "Dice"), ("ap75", "AP-75"))
TITLES = {"stock": "stock nnU-Net", "aux": "ReIsoSeg aux", "reiso": "ReIsoSeg"}


def load(folder: Path, methods) -> dict:
    """(method, seed, fold) -> record, for the records of ``methods`` in ``folder``."""
    out = {}
    for f in sorted(folder.glob("*.json")):
        r = json.loads(f.read_text())
        if r["method"] in methods:
            out[(r["method"], r["seed"], r["fold"])] = r
    return out


def test_metric(record: dict, measure: str) -> float:
    """The measure of class 1 on the test block (the mean over test cases, where a dataset has several)."""
    values = [c["metrics"][measure] for c in record["cases"] if c["split"] == "test" and str(c["class"]) == "1"]
    return float(np.mean(values))


def interval(values) -> str:
    values = np.asarray(values, float)
    if values.size < 2:
        return f"{values.mean():+.3f} (1 pair: no interval)" if values.size else "no pair"
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    return f"{values.mean():+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", default=str(HERE.parent / "study_why" / "vnc" / "records"), help="1x records")
    ap.add_argument("--long", default=str(HERE / "records"), help="4x records")
    ap.add_argument("--methods", nargs="+", default=["stock", "aux"])
    ap.add_argument("-o", "--output", default=str(HERE), help="where budgets.md and plots/ go")
    args = ap.parse_args()
    short, long_ = load(Path(args.short), args.methods), load(Path(args.long), args.methods)
    pairs = sorted({(s, f) for _, s, f in long_})
    lines = ["# 1x beside 4x (from the records: `python docs/study_budget/compare_budgets.py`)", "",
             f"Pairs trained at 4x so far: {', '.join(f'{s}:{f}' for s, f in pairs) or 'none'}. Class 1 "
             "(mitochondria) on the test block; 1x = 1,500 iterations (docs/study_why/vnc), 4x = 6,000.", "",
             "| method | pair | Dice 1x | Dice 4x | AP-75 1x | AP-75 4x | wall 1x (min) | wall 4x (min) | raw curve at "
             "4x |", "|---|---|---|---|---|---|---|---|---|"]
    for m in args.methods:
        for s, f in pairs:
            a, b = short.get((m, s, f)), long_.get((m, s, f))
            if b is None:
                continue
            cells = [f"{test_metric(r, k):.3f}" if r else "-" for k, _ in MEASURES for r in (a, b)]
            walls = [f"{r['training_wall_s'] / 60:.1f}" if r else "-" for r in (a, b)]
            lines.append(f"| {TITLES.get(m, m)} | {s}:{f} | {' | '.join(cells)} | {' | '.join(walls)} | "
                         f"{b['plateau']['state']} |")
    lines += ["", "| aux - stock | Dice: mean [t-interval] | AP-75: mean [t-interval] | pairs |", "|---|---|---|---|"]
    both = [p for p in pairs if all(k in d for d in (short, long_) for k in (("aux", *p), ("stock", *p)))]
    for label, data, use in (("at 1x", short, both), ("at 4x", long_, both)):
        cells = [interval([test_metric(data[("aux", *p)], k) - test_metric(data[("stock", *p)], k) for p in use])
                 for k, _ in MEASURES]
        lines.append(f"| {label} | {' | '.join(cells)} | {len(use)} |")
    change = [interval([(test_metric(long_[("aux", *p)], k) - test_metric(long_[("stock", *p)], k))
                        - (test_metric(short[("aux", *p)], k) - test_metric(short[("stock", *p)], k)) for p in both])
              for k, _ in MEASURES]
    lines.append(f"| change, 4x - 1x | {' | '.join(change)} | {len(both)} |")
    out = Path(args.output)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    plot_curves(short, long_, args.methods, pairs, out / "plots" / "curves_1x_4x.png")
    lines += ["", "![raw pseudo Dice, 1x and 4x](plots/curves_1x_4x.png)", ""]
    (out / "budgets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot_curves(short: dict, long_: dict, methods, pairs, path: Path) -> None:
    """nnU-Net's raw per-epoch pseudo Dice against iterations, one panel per method, 1x dashed and 4x solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(methods), figsize=(6 * len(methods), 4), sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes[0], methods):
        for k, (s, f) in enumerate(pairs):
            for data, style, budget in ((short, "--", "1x"), (long_, "-", "4x")):
                r = data.get((m, s, f))
                if r is None or not r["curves"].get("mean_fg_dice"):
                    continue
                y = np.asarray(r["curves"]["mean_fg_dice"])
                x = (np.arange(y.size) + 1) * r["iterations_per_epoch"]
                ax.plot(x, y, style, color=colours[k % len(colours)], lw=1, label=f"{s}:{f} {budget}")
        ax.set_title(f"{TITLES.get(m, m)}: raw pseudo Dice per epoch")
        ax.set_xlabel("training iterations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("pseudo Dice (validation patches, raw)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

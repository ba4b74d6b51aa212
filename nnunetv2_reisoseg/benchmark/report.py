"""``report.md`` and the plots of a benchmark run, from ``results.json`` alone."""
from __future__ import annotations

import os
import platform
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.benchmark.methods import METHOD_TITLES
from nnunetv2_reisoseg.benchmark.metrics import higher_is_better, metric_titles
from nnunetv2_reisoseg.benchmark.stats import (
    ALPHA,
    CONFIDENCE,
    MIN_PAIRS,
    N_RESAMPLES,
    comparisons,
    describe,
    flatten_cases,
    fmt_paired,
    fmt_stats,
)

# secondaries shown in the verdict table next to the primaries (every metric is in the split tables)
HEADLINE_METRICS = ("dice", "ap75", "f1_75", "voi_split", "voi_merge", "split_objects", "merged_objects", "hd95_nm",
                    "iso_dice", "iso_ap75")
PLOT_METRICS = ("dice", "ap75", "voi_split", "voi_merge", "hd95_nm", "iso_dice")


def machine() -> str:
    """CPU model and cores, GPU, Python and torch of this process."""
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


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def primary_measures(named: Sequence[Sequence[str]], splits: Collection[str]) -> list[tuple[str, str]]:
    """The preset's primary (split, metric) pairs; a named split the dataset lacks (no test cases) is replaced
    by the validation cases, as the preset says."""
    return [(split if split in splits else "validation", m) for split, m in named]


def _header(results: dict) -> list[str]:
    """What ran, on what, and how it is judged."""
    methods, classes, summary = results["methods"], results["classes"], results["summary"]
    budget = results["budget"]
    n_trainings = _n_trainings(results)
    primary = primary_measures(results["primary_measures"], summary)
    lines = [f"# reisoseg benchmark: {results['dataset']}, preset `{results['preset']}`", "",
             f"- Command: `{results['command']}`",
             f"- Machine: {results['machine']}; training device `{results['device']}`; nnU-Net workers "
             + ", ".join(f"{k}={v}" for k, v in results["nnunet_workers"].items()),
             f"- Budget per training: {budget['epochs']} epochs x {budget['iterations']} iterations, batch "
             f"{results['batch_size']}, patch {'x'.join(map(str, results['patch_size']))}, spacing "
             f"{'x'.join(f'{v:g}' for v in results['spacing'])}, plans `{results.get('plans', 'nnUNetPlans')}` "
             f"(features per stage {results.get('features_per_stage')}; the same plans for every method) "
             f"({budget['note']})",
             f"- Trainings: {_pairs_text(results)} per method ("
             + ", ".join(f"{METHOD_TITLES[m]}: {n_trainings[m]}" for m in methods) + "); the same plans, folds, "
             "seeds and budget for every method.",
             "- Primary measures, named in the preset before training: "
             + ", ".join(f"{metric_titles()[m]} on the {split} cases" for split, m in primary)
             + (f" ({', '.join(classes[c] for c in results['primary_classes'])} only; every other class is "
                "secondary)." if results.get("primary_classes") else " (every class)."),
             f"- Statistics: the unit is the training. Methods are paired by (seed, fold); a verdict needs at least "
             f"{MIN_PAIRS} training pairs. Two {int(CONFIDENCE * 100)}% intervals of the mean paired difference: "
             "`t [..]`, the paired t-interval over the training means (scipy.stats.ttest_rel, with d_z and p), which "
             "covers retraining on the same cases only; and `bootstrap [..]`, a two-level paired bootstrap "
             f"({N_RESAMPLES:,} seeded resamples of the training pairs, then of the cases within each, the same "
             "cases for both methods), which also covers new cases. \"better\" needs both intervals to exclude 0 "
             "(with few pairs the bootstrap alone is too narrow) and the Holm-adjusted p of that test (the larger "
             f"of the two p-values) below {ALPHA:.2g}; Holm is applied among the primary measures of every "
             "comparison in this report together, and separately among the secondary ones.",
             ""]

    return lines


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def _data(results: dict) -> list[str]:
    """What the labels contain, looked at before training (``datacheck``); absent from older results."""
    if not results.get("data"):
        return []
    rows = []
    for split, per_class in results["data"].items():
        for c, d in per_class.items():
            empty = sum(1 for n in d["sections_without"] if n)
            rows.append([results["classes"].get(c, c), split, str(d["cases"]), str(d["objects"]),
                         "n/a" if d["median_span"] is None else f"{d['median_span']:g}", _pct(d["span_4_or_more"]),
                         _pct(d["single_section"]), f"{sum(d['sections_without'])} in {empty} of {d['cases']} cases",
                         f"{100 * float(np.mean(d['voxel_fraction'])):.2f}%"])
    return ["## What the data contain", "", "Objects are 3D connected components (26-connectivity) of each class in "
            "each case's labels; a span counts sections along the case's coarsest axis. Sections without the "
            "class: sections holding no voxel of it (in a stack where the class is everywhere, a sign of "
            "unlabelled sections).", "",
            *_table(["class", "split", "cases", "objects", "median span (sections)", "spanning 4 or more",
                     "in one section", "sections without the class", "voxels of the class"], rows), "",
            *_touching(results.get("instances"))]


def _touching(instances: dict | None) -> list[str]:
    """The instance ids kept with the dataset: how many objects touch another (which components would merge)."""
    if not instances:
        return []
    rows = [[split, str(d["cases"]), str(d["objects"]), f"{d['touching']} ({_pct(d['touching'] / d['objects'])})"
             if d["objects"] else "0"] for split, d in instances.items()]
    return ["Instance ids (instancesTr/, instancesTs/): each id one object, whatever touches it.", "",
            *_table(["split", "cases", "objects (ids)", "touching another"], rows), ""]


def _info(results: dict) -> list[str]:
    """What the PI module does on this plan."""
    lines: list[str] = []
    if results.get("reisoseg_info"):
        lines += ["## What the PI module does on this plan (`reisoseg info`)", "", "```",
                  results["reisoseg_info"].rstrip(), "```", ""]
    return lines


def _verdicts(results: dict) -> list[str]:
    """The verdict table: primaries first, then the headline secondaries."""
    methods, classes, summary = results["methods"], results["classes"], results["summary"]
    pairs = comparisons(methods)
    lines: list[str] = []
    lines += ["## Verdicts", ""]
    rows = []
    for a, b in pairs:
        for want_primary in (True, False):
            for split in ("test", "validation"):
                for c, per_metric in summary.get(split, {}).items():
                    for m, entry in per_metric.items():
                        if entry["primary"] != want_primary or (not want_primary and m not in HEADLINE_METRICS):
                            continue
                        p = entry["paired"][f"{a} - {b}"]
                        name = f"**{metric_titles()[m]} (primary)**" if want_primary else metric_titles()[m]
                        rows.append([f"{METHOD_TITLES[a]} - {METHOD_TITLES[b]}", split, classes.get(c, c), name,
                                     fmt_paired(p), p["verdict"]])
    ci = f"paired difference [{int(CONFIDENCE * 100)}% CIs]"
    lines += [*_table(["comparison", "cases", "class", "metric", ci, "verdict"], rows), ""]

    return lines


def _figure(results: dict) -> list[str]:
    """One test block across the sections (``figure.write_xz_figure``), with what it shows."""
    fig = results.get("figure")
    if not fig:
        return []
    name = results["classes"].get(str(fig["class"]), fig["class"])
    counts = ", ".join(f"{METHOD_TITLES[m]} {n}" for m, n in fig["breaks"].items())
    lines = ["## One test block across the sections", "",
             f"Test case `{fig['case']}`, the XZ plane y = {fig['y']} of the training pair (seed, fold) "
             f"{tuple(fig['pair'])}: the plane where the predictions break {name} at a section most often (a break: "
             "the truth runs through sections z - 1, z and z + 1, the prediction holds z - 1 and z + 1 but not z). "
             f"Breaks in this plane: {counts or 'no prediction on this machine'}. One plane of one case, to look at: "
             "the tables decide.", ""]
    if fig["missing"]:
        lines += [f"Not drawn: {', '.join(METHOD_TITLES[m] for m in fig['missing'])}, whose models and predictions "
                  "were not kept on the machine that made this report (their records were reused).", ""]
    return [*lines, "![XZ cut](plots/xz_cut.png)", ""]


def _split_tables(results: dict) -> list[str]:
    """Every metric of every class, per split."""
    methods, classes, summary = results["methods"], results["classes"], results["summary"]
    pairs = comparisons(methods)
    lines: list[str] = []
    for split, title in (("validation", "Validation cases (cross-validation folds)"), ("test", "Test cases")):
        if split not in summary:
            continue
        head = ["class", "metric", *(f"{METHOD_TITLES[m]} (trainings)" for m in methods)]
        for a, b in pairs:
            head += [f"{METHOD_TITLES[a]} - {METHOD_TITLES[b]} (paired over trainings)", "verdict"]
        rows = []
        for c, per_metric in summary[split].items():
            for m, entry in per_metric.items():
                cells = [classes.get(c, c), metric_titles()[m], *(fmt_stats(entry["trainings"][x]) for x in methods)]
                for a, b in pairs:
                    p = entry["paired"][f"{a} - {b}"]
                    cells += [fmt_paired(p), p["verdict"]]
                rows.append(cells)
        lines += [f"## {title}", "", "Each method's mean ± sd over its trainings' means.", "", *_table(head, rows)]
        lines.append("")

    return lines


def _trainings(results: dict) -> list[str]:
    """One row per training: budget, wall time, plateau, the first primary measure."""
    first = primary_measures(results["primary_measures"], results["summary"])[0][1]
    lines: list[str] = []
    rows = []
    for t in results["trainings"]:
        val = [c["metrics"].get(first) for c in t["cases"] if c["split"] == "validation"]
        test = [c["metrics"].get(first) for c in t["cases"] if c["split"] == "test"]
        pl = t.get("plateau") or {}
        pl_txt = pl.get("state", "n/a") if pl.get("reached") is None else (
            f"{pl['state']} ({pl['before']:.3f} -> {pl['last']:.3f})")
        rows.append([METHOD_TITLES[t["method"]], str(t["seed"]), str(t["fold"]),
                     f"{t['epochs']} x {t['iterations_per_epoch']}", f"{t['training_wall_s'] / 60:.1f}", pl_txt,
                     fmt_stats(describe(val)), fmt_stats(describe(test))])
    tol = next((t["plateau"]["tolerance"] for t in results["trainings"] if t.get("plateau")), 0.01)
    lines += ["## Trainings", "", "Plateau: nnU-Net's raw per-epoch pseudo Dice (`mean_fg_dice`, on validation "
              f"patches) averaged over the last 20% of epochs, against the 20% before: levelled off when within "
              f"{tol:g}, else still rising or falling. Not nnU-Net's moving average (`ema_fg_dice`, 0.9 old + 0.1 "
              "new), which carries the first epochs long after and makes a slow start look like a steep late rise. "
              "The poly learning-rate schedule flattens every curve at its end, so a level curve is necessary, not "
              "sufficient, for a training that has converged.", ""]
    title = metric_titles()[first]
    lines += [*_table(["method", "seed", "fold", "epochs x iterations", "wall (min)", "raw pseudo Dice",
                       f"validation {title} (cases)", f"test {title} (cases)"], rows), ""]

    return lines


def _spread(results: dict) -> list[str]:
    """Spread over cases, described, never decided on."""
    methods, classes, summary = results["methods"], results["classes"], results["summary"]
    lines: list[str] = []
    lines += ["## Spread over cases (description only)", "", "Mean ± sd over every case of every training of a "
              "method. Cases of one training are not independent of each other: these numbers describe, they "
              "decide nothing.", ""]
    rows = []
    for split in ("validation", "test"):
        for c, per_metric in summary.get(split, {}).items():
            for m in HEADLINE_METRICS:
                if m in per_metric:
                    rows.append([split, classes.get(c, c), metric_titles()[m],
                                 *(fmt_stats(per_metric[m]["cases"][x]) for x in methods)])
    lines += [*_table(["cases", "class", "metric", *(METHOD_TITLES[m] for m in methods)], rows), ""]

    return lines


def _cost(results: dict) -> list[str]:
    """The measured cost of each method, as ratios to stock nnU-Net."""
    methods = results["methods"]
    lines: list[str] = []
    cost = results["costs"]
    others = [m for m in methods if m != "stock"] if "stock" in methods else []
    head = ["", *(METHOD_TITLES[m] for m in methods), *(f"{METHOD_TITLES[o]} / stock" for o in others)]
    rows = []
    for key, title in (("median_step_s", "training step (s, median per training)"),
                       ("training_wall_s", "training wall time (s)"), ("peak_cpu_rss_gib", "peak CPU RSS (GiB)"),
                       ("peak_gpu_gib", "peak GPU memory allocated (GiB)"),
                       ("inference_s_per_case", "inference (s per test case)")):
        vals = [cost[m].get(key) for m in methods]
        if all(v is None for v in vals):
            continue
        cells = [title, *(fmt_stats(v) for v in vals)]
        for o in others:
            a, b = cost["stock"].get(key), cost[o].get(key)
            cells.append(f"{b['mean'] / a['mean']:.2f}x" if a and b and a["mean"] and b["mean"] is not None
                         else "n/a")
        rows.append(cells)
    lines += ["## Cost (measured in this run)", "", *_table(head, rows)]
    lines += ["", "The training step excludes data loading; inference is nnU-Net's predictor on each test "
              "case in one process (preprocessing, sliding window, resampling; file I/O excluded).", ""]
    return lines


def _caveats(results: dict) -> list[str]:
    """What the run does not show."""
    budget = results["budget"]
    n_trainings = _n_trainings(results)
    lines = ["## What this does not show", ""]
    caveats = []
    if results.get("synthetic"):
        caveats.append("The data are synthetic (`reisoseg synth`): simulated serial-section EM of mitochondria. "
                       "Real EM has other textures, artefacts and label noise; nothing here transfers to it "
                       "without a run on real data.")
    if results["device"] == "cpu":
        caveats.append(f"The budget is a CPU budget ({budget['epochs']} x {budget['iterations']} iterations of a "
                       f"{'x'.join(map(str, results['patch_size']))} patch); the paper trains 600 x 250 iterations "
                       "of larger patches on a GPU. A method that pays off late in training, or on larger "
                       "context, can look different here.")
    machines = sorted({t["machine"] for t in results["trainings"] if t.get("machine")})
    if len(machines) > 1:
        caveats.append(f"The trainings' records come from {len(machines)} machines or software versions ("
                       + "; ".join(machines) + "): their wall times, step times and memory are not comparable "
                       "with each other.")
    if min(n_trainings.values(), default=0) < MIN_PAIRS:
        caveats.append(f"Fewer than {MIN_PAIRS} trainings per method: every comparison is \"cannot tell\".")
    caveats.append("Verdicts speak of these methods on this dataset and budget only; \"no difference shown\" is not "
                   "evidence of equality (see the width of the interval).")
    lines += [f"- {c}" for c in caveats]
    return lines


def _pairs_text(results: dict) -> str:
    """The (seed, fold) pairs, as a grid where they form one (results before ``pairs`` always did)."""
    grid = [[s, f] for s in results["seeds"] for f in results["folds"]]
    pairs = results.get("pairs", grid)
    if sorted(pairs) == sorted(grid):
        return f"folds {results['folds']} x seeds {results['seeds']}"
    return f"(seed, fold) pairs {', '.join(f'({s}, {f})' for s, f in pairs)}"


def _n_trainings(results: dict) -> dict[str, int]:
    return {m: sum(t["method"] == m for t in results["trainings"]) for m in results["methods"]}


def write_report(results: dict, out: Path) -> Path:
    """``report.md`` from ``results.json``'s content: one function per section."""
    lines: list[str] = []
    for section in (_header, _data, _info, _verdicts, _figure, _split_tables, _trainings, _spread, _cost, _caveats):
        lines += section(results)
    lines += ["", "## Plots", "", "![per-case metrics](plots/per_case.png)", "",
              "![learning curves](plots/learning_curves.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(results: dict, out: Path) -> None:
    """``plots/per_case.png`` (every case against stock's on the same case and training) and
    ``plots/learning_curves.png`` (mean and band over each method's trainings)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    with plt.style.context("default"):
        _plot_per_case(results, plots / "per_case.png", plt)
        _plot_curves(results, plots / "learning_curves.png", plt)


def _plot_per_case(results: dict, path: Path, plt) -> None:
    methods = results["methods"]
    rows = flatten_cases(results["trainings"])
    metrics = [m for m in PLOT_METRICS if any(m in r["metrics"] for r in rows)]
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, metrics):
        stock = {(r["split"], r["seed"], r["fold"], r["case"], r["class"]): r["metrics"].get(m)
                 for r in rows if r["method"] == "stock"}
        for other in (x for x in methods if x != "stock" and stock):
            for split, marker in (("validation", "o"), ("test", "s")):
                pts = [(stock[k], r["metrics"].get(m)) for r in rows if r["method"] == other
                       and r["split"] == split for k in [(split, r["seed"], r["fold"], r["case"], r["class"])]
                       if k in stock]
                pts = [(a, b) for a, b in pts if a is not None and b is not None and np.isfinite([a, b]).all()]
                if pts:
                    ax.scatter(*zip(*pts), marker=marker, alpha=0.6, s=14, color=f"C{methods.index(other)}",
                               label=f"{METHOD_TITLES[other]}, {split}")
        if stock:
            lim = ax.get_xlim() + ax.get_ylim()
            lo, hi = min(lim), max(lim)
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
            ax.set_xlabel(f"stock nnU-Net {metric_titles()[m]}")
            ax.set_ylabel(f"other method's {metric_titles()[m]}")
            ax.legend(fontsize=7)
        ax.set_title(f"{metric_titles()[m]} per case" + (" (higher is better)" if higher_is_better(m)
                                                       else " (lower is better)"), fontsize=9)
    fig.suptitle("Per case, against stock nnU-Net on the same case and training (description only)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_curves(results: dict, path: Path, plt) -> None:
    methods, trainings = results["methods"], results["trainings"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for meth in methods:
        runs = [t for t in trainings if t["method"] == meth and t.get("curves")]
        if not runs:
            continue
        color = f"C{methods.index(meth)}"
        label = f"{METHOD_TITLES[meth]} (n={len(runs)})"
        for ax, key in ((axes[0], "mean_fg_dice"), (axes[1], "train_losses")):
            n = min(len(t["curves"][key]) for t in runs)
            its = (np.arange(n) + 1) * runs[0]["iterations_per_epoch"]
            v = np.asarray([t["curves"][key][:n] for t in runs], dtype=float)
            mean = np.nanmean(v, 0)
            ax.plot(its, mean, color=color, label=label)
            if len(runs) > 1:
                sd = np.nanstd(v, 0, ddof=1)
                ax.fill_between(its, mean - sd, mean + sd, color=color, alpha=0.2)
        for i, t in enumerate(runs):
            minutes = np.asarray(t["curves"]["epoch_end_s"]) / 60
            axes[2].plot(minutes, t["curves"]["mean_fg_dice"][:len(minutes)], color=color, lw=1, alpha=0.8,
                         label=label if i == 0 else None)
    # two-line titles: one line each ran into its neighbours at this width
    axes[0].set_title("raw per-epoch pseudo Dice: mean ± sd\n(validation patches, not nnU-Net's moving average)",
                      fontsize=9)
    axes[1].set_title("training loss as optimised: mean ± sd\n(ReIsoSeg: (1 - a) L_iso + a L_ani; aux: x 1/a; "
                      "loss x a)", fontsize=9)
    axes[2].set_title("raw pseudo Dice against training wall time\none line per training", fontsize=9)
    for ax, xlabel in zip(axes, ("iterations", "iterations", "minutes of training")):
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

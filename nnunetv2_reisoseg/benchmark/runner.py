"""``reisoseg benchmark``: stock nnU-Net against ReIsoSeg on the same plans, folds, seeds and budget; the driver.

Steps (each reuses what an earlier run finished): the dataset and plans (``planning.py``: generate the embedded
synthetic EM dataset when no dataset is named, plan and preprocess with nnU-Net when the plans are missing); train
every (method, seed, fold) with ``nnUNetv2_train`` and the fixed-budget trainers of ``benchmark/trainers/`` into
``OUT/results/seed<S>`` (``trainings.py``); predict the test cases (when the dataset has ``imagesTs``) in this
process, timing each case (``predict.py``); evaluate validation and test predictions into one record per training;
write ``report.md``, ``results.json`` and ``plots/``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_reisoseg.benchmark.datacheck import check_dataset, check_instances
from nnunetv2_reisoseg.benchmark.environment import BenchmarkError, log, worker_env
from nnunetv2_reisoseg.benchmark.figure import write_xz_figure
from nnunetv2_reisoseg.benchmark.methods import EQUAL_TIME, METHODS, Method
from nnunetv2_reisoseg.benchmark.metrics import evaluate_case
from nnunetv2_reisoseg.benchmark.planning import Dataset, ensure_plans, open_dataset
from nnunetv2_reisoseg.benchmark.predict import predict_test, predictions_folder
from nnunetv2_reisoseg.benchmark.presets import CONFIGURATION, PRESETS, Budget
from nnunetv2_reisoseg.benchmark.records import BenchmarkResults, CaseResult, TrainingRecord
from nnunetv2_reisoseg.benchmark.report import machine, primary_measures, write_plots, write_report
from nnunetv2_reisoseg.benchmark.stats import PLATEAU_CURVE, costs, flatten_cases, plateau, summarize
from nnunetv2_reisoseg.benchmark.trainings import Run, curves, equal_time_env, train
from nnunetv2_reisoseg.io import checks
from nnunetv2_reisoseg.method.describe import describe_pi_plan
from nnunetv2_reisoseg.progress import progress_bar
from nnunetv2_reisoseg.training.budget import TIMING_FILE

_RECORD_FIX = "remove it, and the benchmark trains that training again"
RECORDS = "records"  # one JSON per finished training: what a report needs, without the weights
RECORD_VERSION = 2  # records of another version (other metrics) are computed again from the model
BENCHMARK_ENTRIES = {RECORDS, "results", "predictions", "logs", "plots", "report.md", "results.json", "README.md"}


def training_pairs(seeds: Sequence[int], folds: Sequence[int]) -> list[tuple[int, int]]:
    """Every (seed, fold) of the grid seeds x folds, seed by seed."""
    return [(s, f) for s in seeds for f in folds]


def chosen_pairs(pairs: Sequence[tuple[int, int]] | None, seeds: Sequence[int] | None,
                 folds: Sequence[int] | None) -> list[tuple[int, int]]:
    """``--pairs``, or the grid ``--seeds`` x ``--folds`` (each 0 by default); not both."""
    if pairs is not None and (folds is not None or seeds is not None):
        raise BenchmarkError("--pairs names every (seed, fold) training itself; give it without --folds and --seeds")
    return list(pairs) if pairs is not None else training_pairs(seeds or [0], folds or [0])


@dataclass
class BenchmarkCommand:
    """Everything ``reisoseg benchmark`` was asked, named as its options."""

    dataset: str | None = None
    preset: str = "smoke"
    folds: Sequence[int] | None = None
    seeds: Sequence[int] | None = None
    pairs: Sequence[tuple[int, int]] | None = None
    methods: Sequence[str] = ("stock", "reiso")
    device: str = "auto"
    equal_time: bool = False
    output: str | None = None

    def run(self) -> Path:
        """Run it on the pairs asked (the equal-time stock arm after the methods with ``equal_time``) and print
        the report."""
        methods = [*self.methods, *([EQUAL_TIME.name] if self.equal_time else [])]
        report = run_benchmark(self.dataset, self.preset, chosen_pairs(self.pairs, self.seeds, self.folds),
                               self.output, methods, self.device, command="reisoseg " + " ".join(sys.argv[1:]))
        print(report.read_text())
        return report


def run_benchmark(dataset: str | None = None, preset: str | Budget = "smoke",
                  pairs: Sequence[tuple[int, int]] = ((0, 0),), out: str | os.PathLike | None = None,
                  methods: Sequence[str] = ("stock", "reiso"), device: str = "auto", command: str = "") -> Path:
    """Run (or finish) a benchmark and write ``report.md``, ``results.json`` and ``plots/`` in ``out``.
    ``preset`` is a preset's name or its ``Budget``; ``pairs`` are the (seed, fold) trainings of every method
    (``training_pairs`` makes a grid of them); ``methods`` may end with ``stock_time`` (``--equal-time``): stock
    nnU-Net for ReIsoSeg's wall time."""
    import torch

    pairs = [(int(s), int(f)) for s, f in pairs]
    if not pairs or len(set(pairs)) != len(pairs):
        raise BenchmarkError(f"training pairs {pairs}: give each (seed, fold) once, and at least one")
    if min(min(p) for p in pairs) < 0:
        raise BenchmarkError(f"training pairs {pairs}: seeds and folds are numbers >= 0")
    budget = _budget(preset)
    chosen = _check_methods(methods)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ds = open_dataset(dataset, budget)
    out_dir = Path(out) if out is not None else Path("reisoseg_benchmark") / f"{ds.name}_{budget.name}"
    check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = ensure_plans(ds, out_dir, budget)
    try:
        pi_plan = describe_pi_plan(plans, CONFIGURATION)
    except ValueError as e:
        pi_plan = str(e)
    primary_classes = _primary_classes(ds, budget)
    data = check_dataset(ds.folder, ds.labels)  # looked at before anything trains
    _say_plan(ds, budget, pairs, chosen, device, data, primary_classes)
    trainings = train_all(ds, budget, pairs, chosen, device, out_dir)
    cfg = plans["configurations"][CONFIGURATION]
    results: BenchmarkResults = {
        "dataset": ds.name, "preset": budget.name, "budget": budget.record(), "methods": [m.name for m in chosen],
        "trainers": {m.name: m.trainer_name(budget) for m in chosen}, "pairs": [list(p) for p in pairs],
        "folds": sorted({f for _, f in pairs}), "seeds": sorted({s for s, _ in pairs}),
        "device": device, "machine": machine(), "command": command or f"reisoseg benchmark --preset {budget.name}",
        "synthetic": ds.synthetic, "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"],
        "spacing": cfg["spacing"], "classes": {str(v): k for k, v in ds.labels.items() if isinstance(v, int)},
        "plans": budget.plans_name, "features_per_stage": cfg["architecture"]["arch_kwargs"].get("features_per_stage"),
        "nnunet_workers": {k: os.environ.get(k) or worker_env().get(k) for k in ("nnUNet_n_proc_DA",
                                                                                "nnUNet_def_n_proc")},
        "primary_measures": [list(p) for p in budget.primary], "primary_classes": primary_classes,
        "reisoseg_info": pi_plan, "data": data,
        "trainings": trainings,
    }
    instances = check_instances(ds.folder)
    if instances:  # only datasets with instance ids kept: other results.json stay as they were
        results["instances"] = instances
    return write_results(results, out_dir, ds.folder)


def _budget(preset: str | Budget) -> Budget:
    if isinstance(preset, Budget):
        return preset
    if preset not in PRESETS:
        raise BenchmarkError(f"unknown preset {preset}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def _primary_classes(ds: Dataset, budget: Budget) -> list[str]:
    """The labels (as strings) of the budget's primary classes, which the dataset must have."""
    missing = [n for n in budget.primary_classes if n not in ds.labels]
    if missing:
        raise BenchmarkError(f"the {budget.name} preset's primary classes {missing} are not labels of {ds.name} "
                             f"({sorted(ds.labels)}); use a preset made for this dataset")
    return [str(ds.labels[n]) for n in budget.primary_classes]


def _say_plan(ds: Dataset, budget: Budget, pairs: Sequence[tuple[int, int]], methods: Sequence[Method], device: str,
              data: dict, primary_classes: Sequence[str]) -> None:
    """What the data contain, what will train, and the primary measures, before anything trains."""
    for split, per_class in data.items():
        for c, d in per_class.items():
            if d["objects"]:
                log(f"{split} {c}: {d['objects']} objects spanning a median of {d['median_span']:g} sections, "
                    f"{d['span_4_or_more']:.0%} 4 or more, {d['single_section']:.0%} in one section")
    n_total = len(methods) * len(pairs)
    log(f"{ds.name}: {n_total} trainings ({', '.join(m.name for m in methods)} x (seed, fold) {pairs}), "
        f"preset {budget.name}: {budget.epochs} epochs x {budget.iterations} iterations on {device}")
    log("primary measures, named before training: " + ", ".join(f"{m} on the {split} cases"
                                                                 for split, m in budget.primary)
        + (f" of {', '.join(budget.primary_classes)}" if primary_classes else " of every class"))


def check_output_dir(out_dir: Path) -> None:
    """-o must be absent, empty or a benchmark's own folder (which a new run continues), never a link, and
    writable: the benchmark writes records, report and plots there and would mix them into anything else."""
    from nnunetv2_reisoseg.io.folders import OutputError, check_output

    if out_dir.is_dir() and not out_dir.is_symlink():
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in BENCHMARK_ENTRIES)
        if foreign and not (out_dir / RECORDS).is_dir():
            raise BenchmarkError(f"-o {out_dir} holds other files ({', '.join(foreign[:3])}) and is not a benchmark's "
                                 "output; choose a new or empty folder")
        out_dir = out_dir / RECORDS  # the folder a new run writes into
    try:
        check_output(out_dir, True, lambda p: None)
    except OutputError as e:
        raise BenchmarkError(str(e)) from None


def _check_methods(methods: Sequence[str]) -> list[Method]:
    """The methods named, with the equal-time arm (if asked) last: it needs both others' wall times."""
    unknown = [m for m in methods if m not in METHODS and m != EQUAL_TIME.name]
    if unknown:
        raise BenchmarkError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if EQUAL_TIME.name in methods and not {"stock", "reiso"} <= set(methods):
        raise BenchmarkError("--equal-time trains stock nnU-Net for ReIsoSeg's wall time: it needs both "
                             "stock and reiso in --methods")
    return [METHODS[m] for m in methods if m != EQUAL_TIME.name] + [EQUAL_TIME] * (EQUAL_TIME.name in methods)


def train_all(ds: Dataset, budget: Budget, pairs: Sequence[tuple[int, int]], methods: Sequence[Method], device: str,
              out_dir: Path) -> list[TrainingRecord]:
    """Every training's record, (seed, fold) pair by pair and method by method; a training with a record of
    this version is not run again."""
    trainings, done, n_total = [], 0, len(pairs) * len(methods)
    with progress_bar(n_total, "benchmark: trainings", "training") as bar:
        for pair in pairs:
            trainings += _train_pair(ds, budget, pair, methods, device, out_dir, (done, n_total))
            done += len(methods)
            bar.update(len(methods))
    return trainings


def _train_pair(ds: Dataset, budget: Budget, pair: tuple[int, int], methods: Sequence[Method], device: str,
                out_dir: Path, count: tuple[int, int]) -> list[TrainingRecord]:
    """The records of every method's training on one (seed, fold) pair, trained where no record exists;
    ``count`` is (trainings before this pair, all trainings), for the log."""
    done, n_total = count
    trainings: list[TrainingRecord] = []
    walls: dict[str, float] = {}
    for meth in methods:
        run = Run.under(out_dir, ds.name, meth, pair, budget)
        done += 1
        record_file = out_dir / RECORDS / f"{meth.name}_seed{run.seed}_fold{run.fold}.json"
        record = checks.json_shape(checks.read_json(record_file, "a benchmark record", _RECORD_FIX), str(record_file),
                                   {"training_wall_s": (int, float), "cases": list}, _RECORD_FIX) \
            if record_file.is_file() else None
        if record is not None and record.get("record_version") == RECORD_VERSION:
            log(f"training {done}/{n_total}: {run.tag}: using its record {record_file}")
        else:
            log(f"training {done}/{n_total}: {run.tag}")
            train(run, ds.id, device, out_dir, equal_time_env(run, walls))
            record = _record(run, ds, device, out_dir)
            record_file.parent.mkdir(parents=True, exist_ok=True)
            record_file.write_text(json.dumps(record, indent=1, default=float))
        walls[meth.name] = record["training_wall_s"]
        trainings.append(record)
    return trainings


def _record(run: Run, ds: Dataset, device: str, out: Path) -> TrainingRecord:
    """Predict the test cases, evaluate validation and test predictions, and collect a finished training's
    record: budget, wall time, machine, learning curves and every case's metrics."""
    ending = json.loads((ds.folder / "dataset.json").read_text())["file_ending"]
    timing = json.loads((run.folder / TIMING_FILE).read_text())
    inference = predict_test(run, ds.folder, device, out)
    pairs = [("validation", p, ds.folder / "labelsTr" / p.name)
             for p in sorted((run.folder / "validation").glob("*" + ending))]
    pairs += [("test", p, ds.folder / "labelsTs" / p.name)
              for p in sorted(predictions_folder(out, run).glob("*" + ending))
              if (ds.folder / "labelsTs" / p.name).is_file()]
    log(f"{run.tag}: evaluating {len(pairs)} predictions")
    cases: list[CaseResult] = []
    for split, pred, ref in pairs:
        truth = ds.folder / "isotropic_truth" / pred.name
        per_class = evaluate_case(pred, ref, ds.foreground, ds.labels.get("ignore"),
                                  truth if truth.is_file() else None)
        for c, metrics in per_class.items():
            cases.append({"split": split, "case": pred.name[: -len(ending)], "class": c, "prediction": str(pred),
                          "reference": str(ref), "metrics": metrics})
    learning = curves(run.folder)
    return {"record_version": RECORD_VERSION, "method": run.method.name, "seed": run.seed, "fold": run.fold,
            "trainer": run.method.trainer_name(run.budget), "plans": run.budget.plans_name,
            "folder": str(run.folder), "machine": machine(), "finished": time.strftime("%Y-%m-%d %H:%M"),
            "epochs": timing["epochs"], "iterations_per_epoch": timing["iterations_per_epoch"],
            "training_wall_s": timing["training_wall_s"], "timing": timing, "inference": inference,
            "plateau": plateau(learning.get(PLATEAU_CURVE, [])), "curves": learning, "cases": cases}


def write_results(results: BenchmarkResults, out_dir: Path, dataset_dir: Path | None = None) -> Path:
    """The statistics over the trainings, then ``results.json``, the plots (with ``dataset_dir``, the XZ cut of a
    test case) and ``report.md``."""
    trainings, methods = results["trainings"], results["methods"]
    for t in trainings:  # judged again on the raw curve: records written before this rule judged the moving average
        t["plateau"] = plateau(t["curves"].get(PLATEAU_CURVE, []))
    splits = {c["split"] for t in trainings for c in t["cases"]}
    results["summary"] = summarize(flatten_cases(trainings), methods,
                                   primary_measures(results["primary_measures"], splits),
                                   primary_classes=results["primary_classes"])
    results["costs"] = costs(trainings, methods)
    write_plots(results, out_dir)
    results["figure"] = write_xz_figure(results, out_dir, dataset_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=float))
    report = write_report(results, out_dir)
    log(f"wrote {report}, {out_dir / 'results.json'} and {out_dir / 'plots'}")
    return report

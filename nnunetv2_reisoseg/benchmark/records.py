"""The shapes of what the benchmark keeps: a training's record (``OUT/records/*.json``, and each entry of
``results.json``'s ``trainings``) and its case rows. They are JSON objects on disk and stay plain dicts in
memory, so that a report can be rebuilt, and a verdict recomputed, from the files alone; these types name
their fields for the code that writes and reads them."""
from __future__ import annotations

from typing import TypedDict

# one case and class of one training; "class" is a Python keyword, hence the functional form
CaseResult = TypedDict("CaseResult", {"split": str, "case": str, "class": "int | str", "prediction": str,
                                      "reference": str, "metrics": "dict[str, float | None]"})


class CaseRow(CaseResult):
    """A case result with its training's method, seed and fold: the unit of ``stats.summarize``'s input."""

    method: str
    seed: int
    fold: int


class TrainingRecord(TypedDict):
    """Everything a report needs of one finished training, without its weights."""

    record_version: int
    method: str
    seed: int
    fold: int
    trainer: str
    plans: str
    folder: str
    machine: str
    finished: str
    epochs: int
    iterations_per_epoch: int
    training_wall_s: float
    timing: dict  # benchmark_timing.json: step times, peak memory, device
    inference: dict | None  # seconds per test case, or None without test cases
    plateau: dict
    curves: dict[str, list[float]]
    cases: list[CaseResult]


class BenchmarkResults(TypedDict, total=False):
    """``results.json``: what ran (dataset, preset, budget, methods and their trainers, pairs, machine, plan) and
    every training's record; ``write_results`` adds ``summary``, ``costs`` and ``figure``. ``report.py`` reads
    nothing else."""

    dataset: str
    preset: str
    budget: dict
    methods: list[str]
    trainers: dict[str, str]
    pairs: list[list[int]]
    folds: list[int]
    seeds: list[int]
    device: str
    machine: str
    command: str
    synthetic: bool
    patch_size: list[int]
    batch_size: int
    spacing: list[float]
    classes: dict[str, str]
    plans: str
    features_per_stage: list[int] | None
    nnunet_workers: dict[str, str | None]
    primary_measures: list[list[str]]
    primary_classes: list[str]
    reisoseg_info: str
    data: dict
    trainings: list[TrainingRecord]
    summary: dict
    costs: dict
    figure: dict | None

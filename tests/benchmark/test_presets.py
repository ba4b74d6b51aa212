"""Presets: a narrower plan is nnU-Net's plan with fewer features, and nothing else changed."""
import json
from pathlib import Path

import pytest

from nnunetv2_reisoseg.benchmark.environment import BenchmarkError
from nnunetv2_reisoseg.benchmark.planning import narrower_plans
from nnunetv2_reisoseg.benchmark.presets import PLANS, PRESETS

PLANS_FILE = Path(__file__).parent.parent / "fixtures" / "plans" / "em_40x5x5_patch20x128x128.json"


def test_narrower_plans_scale_features_only():
    plans = json.loads(PLANS_FILE.read_text())
    narrow = narrower_plans(plans, 0.25, "nnUNetPlansWidth25")
    kw, old = (p["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"] for p in (narrow, plans))
    assert kw["features_per_stage"] == [max(8, round(f / 4)) for f in old["features_per_stage"]]
    assert min(kw["features_per_stage"]) >= 8 and narrow["plans_name"] == "nnUNetPlansWidth25"
    assert {k: v for k, v in kw.items() if k != "features_per_stage"} == \
        {k: v for k, v in old.items() if k != "features_per_stage"}
    c_new, c_old = narrow["configurations"]["3d_fullres"], plans["configurations"]["3d_fullres"]
    assert c_new["data_identifier"] == c_old["data_identifier"]  # the same preprocessed data
    assert c_new["patch_size"] == c_old["patch_size"] and c_new["batch_size"] == c_old["batch_size"]


def test_every_preset_names_its_primary_measures_and_plans():
    for name, budget in PRESETS.items():
        assert budget.name == name
        assert budget.primary and all(split in ("test", "validation") for split, _ in budget.primary), name
    assert PRESETS["smoke"].plans_name == PLANS and PRESETS["phantom"].plans_name == "nnUNetPlansWidth25"
    assert PRESETS["vnc"].plans_name == "nnUNetPlansWidth25Patch20x64x64"


def test_a_smaller_patch_gets_the_topology_nnunet_plans_for_it():
    """The VNC plan: nnU-Net planned 20x112x448 at 47.5x9.2x9.2 nm; the preset's 20x96x96 gets the stages,
    strides and kernels of nnU-Net's planner for that patch, and features by its rule, then scaled."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    plans = json.loads(PLANS_FILE.read_text())
    cfg = plans["configurations"]["3d_fullres"]
    narrow = narrower_plans(plans, 0.25, "p", (20, 96, 96))
    c_new = narrow["configurations"]["3d_fullres"]
    kw = c_new["architecture"]["arch_kwargs"]
    _, strides, kernels, patch, _ = get_pool_and_conv_props(cfg["spacing"], [20, 96, 96], 4, 999999)
    assert c_new["patch_size"] == [20, 96, 96] == list(patch)
    assert kw["strides"] == [list(s) for s in strides] and kw["kernel_sizes"] == [list(k) for k in kernels]
    n = kw["n_stages"]
    assert n == len(strides) < cfg["architecture"]["arch_kwargs"]["n_stages"]
    assert kw["features_per_stage"] == [max(8, round(min(320, 32 * 2 ** i) / 4)) for i in range(n)]
    assert len(kw["n_conv_per_stage"]) == n and len(kw["n_conv_per_stage_decoder"]) == n - 1
    assert c_new["data_identifier"] == cfg["data_identifier"] and c_new["batch_size"] == cfg["batch_size"]
    assert json.loads(json.dumps(narrow)) == narrow  # written as the plans file nnU-Net reads
    with pytest.raises(BenchmarkError, match="nearest is"):
        narrower_plans(plans, 0.25, "p", (20, 90, 90))  # not divisible by the lateral pooling


def test_both_controls_have_fixed_budget_trainers(nnunet_dirs):
    """aux and stock_half train through the benchmark's trainers like stock and reiso, with the preset's budget."""
    import torch

    from nnunetv2_reisoseg.benchmark.methods import METHODS
    from nnunetv2_reisoseg.benchmark.trainers import nnUNetTrainerBenchmark as bench
    from nnunetv2_reisoseg.method.loss import ReIsotropicLoss, ScaledLoss
    from nnunetv2_reisoseg.training.budget import BenchmarkBudgetMixin
    from tests.fixtures import load_plans
    from tests.training.test_trainer import DATASET_JSON

    for method, loss_type, scale in (("aux", ReIsotropicLoss, 2.0), ("stock_half", ScaledLoss, 0.5)):
        cls = getattr(bench, METHODS[method].trainer_name(PRESETS["tiny"]))
        assert issubclass(cls, BenchmarkBudgetMixin)
        plans = {**load_plans("tiny_40x10x10"), "continue_training": False}  # nnU-Net pops the flag
        t = cls(plans, "3d_fullres", 0, DATASET_JSON, torch.device("cpu"))
        assert t.num_epochs == PRESETS["tiny"].epochs and t.num_iterations_per_epoch == PRESETS["tiny"].iterations
        loss = t._build_loss()
        assert isinstance(loss, loss_type) and loss.scale == scale
    # the budget study's trainers save nnU-Net's checkpoint_latest every 10 epochs, not its default 50
    long = bench.nnUNetTrainerBenchVnc4x({**load_plans("tiny_40x10x10"), "continue_training": False}, "3d_fullres", 0,
                                         DATASET_JSON, torch.device("cpu"))
    assert (long.save_every, long.num_epochs) == (10, 240)


def test_the_budget_study_preset_is_vnc_with_4x_the_iterations_only():
    """docs/study_budget: 4x the vnc preset's training and nothing else changed but the checkpoint interval."""
    from dataclasses import asdict

    from nnunetv2_reisoseg.benchmark.trainers import nnUNetTrainerBenchmark as bench

    long, short = asdict(PRESETS["vnc4x"]), asdict(PRESETS["vnc"])
    assert long["epochs"] * long["iterations"] == 4 * short["epochs"] * short["iterations"] == 6000
    differ = {k for k in long if long[k] != short[k]}
    assert differ == {"name", "epochs", "note", "save_every"}, differ
    assert PRESETS["vnc4x"].plans_name == PRESETS["vnc"].plans_name
    cls = bench.nnUNetTrainerReIsoAuxBenchVnc4x
    assert (cls.bench_epochs, cls.bench_save_every) == (240, 10)


def test_every_method_and_preset_has_its_fixed_budget_trainer():
    """The benchmark's trainer folder defines one class per (method, preset), named as the driver names it, each
    from the factory with the budget's attributes and the method's trainer as its base."""
    from nnunetv2_reisoseg.benchmark.methods import ALL_METHODS
    from nnunetv2_reisoseg.benchmark.trainers import nnUNetTrainerBenchmark as bench
    from nnunetv2_reisoseg.training.budget import BenchmarkBudgetMixin

    assert len(bench.__all__) == len(ALL_METHODS) * len(PRESETS)
    for budget in PRESETS.values():
        for method in ALL_METHODS.values():
            cls = getattr(bench, method.trainer_name(budget))
            assert cls.__mro__[1] is BenchmarkBudgetMixin and cls.__mro__[2].__name__ == method.trainer
            assert (cls.bench_epochs, cls.bench_iterations, cls.bench_epochs_from_env) == \
                (budget.epochs, budget.iterations, method.equal_time)

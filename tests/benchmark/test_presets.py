"""Presets: a narrower plan is nnU-Net's plan with fewer features, and nothing else changed."""
import json
from pathlib import Path

from nnunetv2_reisoseg.benchmark.presets import PLANS, PRESETS, plans_name
from nnunetv2_reisoseg.benchmark.runner import narrower_plans

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
        assert budget.primary and all(split in ("test", "validation") for split, _ in budget.primary), name
    assert plans_name("smoke") == PLANS and plans_name("phantom") == "nnUNetPlansWidth25"

"""`reisoseg benchmark --preset tiny` end to end, and its numbers recomputed from the saved predictions."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from nnunetv2_reisoseg.benchmark.report import primary_measures
from nnunetv2_reisoseg.benchmark.runner import BenchmarkError, run_benchmark
from nnunetv2_reisoseg.benchmark.stats import flatten_cases, summarize
from nnunetv2_reisoseg.evaluation import evaluate_labels, fields

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(tiny_benchmark, monkeypatch):
    """The session's tiny benchmark (tests/conftest.py), which the dry run of perf/gpu_run.sh continues too, with
    nnU-Net's folders set as when it ran (the session fixture restores the environment it found)."""
    root = tiny_benchmark[0]
    for k, v in {"nnUNet_raw": root / "raw", "nnUNet_preprocessed": root / "pre", "nnUNet_def_n_proc": 1,
                 "nnUNet_n_proc_DA": 0, "nnUNet_compile": "f"}.items():
        monkeypatch.setenv(k, str(v))
    for k in ("nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.delenv(k, raising=False)
    return tiny_benchmark


def _read(path):
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img.GetSpacing()[::-1]


def _hd95(pred, ref, spacing):
    """Independent of MONAI: 95th percentile of each directed surface-to-surface distance, the larger."""
    def surface(m):
        return m & ~ndi.binary_erosion(m)

    sp, sr = surface(pred), surface(ref)
    d_to_ref = ndi.distance_transform_edt(~sr, sampling=spacing)[sp]
    d_to_pred = ndi.distance_transform_edt(~sp, sampling=spacing)[sr]
    return max(np.percentile(d_to_ref, 95), np.percentile(d_to_pred, 95))


def test_report_and_files(bench):
    _, out, res = bench
    report = (out / "report.md").read_text()
    for text in ("stock nnU-Net", "ReIsoSeg", "Validation cases", "Test cases", "Dice vs isotropic truth",
                 "training step", "inference (s per test case)", res["machine"], "## Verdicts",
                 "The data are synthetic", "## What this does not show", "AP-75 vs isotropic truth",
                 "Primary measures, named in the preset before training: Dice on the test cases, AP-75 on the test "
                 "cases", "**AP-75 (primary)**", "two-level paired bootstrap", "Holm",
                 "## What the PI module does on this plan (`reisoseg info`)", "PI levels [1, 2]"):
        assert text in report
    assert res["primary_measures"] == [["test", "dice"], ["test", "ap75"]]
    for row in flatten_cases(res["trainings"]):  # every case: every field of reisoseg evaluate, and vs the truth
        assert set(fields()) | {"iso_" + f for f in fields()} == set(row["metrics"])
    assert {t["plateau"]["curve"] for t in res["trainings"]} == {"mean_fg_dice"}
    # one seed and one fold: one training pair, so every comparison is "cannot tell"
    verdicts = [p["verdict"] for split in res["summary"].values() for per_metric in split.values()
                for entry in per_metric.values() for p in entry["paired"].values()]
    assert verdicts and all(v.startswith("cannot tell") or v == "" for v in verdicts)
    assert any(v.startswith("cannot tell (1 training pair") for v in verdicts)
    assert " better |" not in report
    assert (out / "plots" / "per_case.png").stat().st_size > 10_000
    assert (out / "plots" / "learning_curves.png").stat().st_size > 10_000
    assert res["trainers"] == {"stock": "nnUNetTrainerBenchTiny", "reiso": "nnUNetTrainerReIsoBenchTiny",
                               "aux": "nnUNetTrainerReIsoAuxBenchTiny", "stock_half": "nnUNetTrainerHalfLossBenchTiny",
                               "paper": "nnUNetTrainerReIsoSegNetBenchTiny",
                               "stock_time": "nnUNetTrainerBenchTinyEqualTime"}
    assert {(t["method"], c["split"]) for t in res["trainings"] for c in t["cases"]} == {
        (m, s) for m in ("stock", "reiso", "aux", "stock_half", "paper", "stock_time") for s in ("validation", "test")}
    # both controls run and are compared where they answer; every report shows a test block across the sections
    for text in ("ReIsoSeg aux (stock loss + isotropic) - ReIsoSeg", "ReIsoSeg - stock nnU-Net, loss x a",
                 "## One test block across the sections", "plots/xz_cut.png"):
        assert text in report
    assert res["figure"]["missing"] == [] and (out / "plots" / "xz_cut.png").stat().st_size > 10_000
    aux = next(t for t in res["trainings"] if t["method"] == "aux")
    assert len(aux["curves"]["train_loss_ani"]) == len(aux["curves"]["mean_fg_dice"]) == 1
    assert "ReIsoSeg paper network - stock nnU-Net (paired over trainings)" in report
    assert "ReIsoSeg - stock nnU-Net at ReIsoSeg's wall time (paired over trainings)" in report
    runs = {r["method"]: r for r in res["trainings"]}
    walls = {m: runs[m]["training_wall_s"] for m in runs}
    assert runs["stock_time"]["epochs"] == max(1, round(walls["reiso"] / walls["stock"]))
    for run in res["trainings"]:  # every training listed with its budget, wall time and learning curves
        assert {"method", "seed", "fold", "epochs", "iterations_per_epoch", "training_wall_s", "cases",
                "curves"} <= set(run)
        assert len(run["curves"]["mean_fg_dice"]) == run["epochs"]
        if run["method"] == "stock_time":
            continue
        assert run["epochs"] == 1 and len(run["timing"]["step_times_s"]) == 2
        assert all(t > 0 for t in run["timing"]["step_times_s"])
        assert len(run["inference"]["seconds_per_case"]) == 1


def test_numbers_recomputed_from_saved_predictions(bench):
    _, out, res = bench
    for row in flatten_cases(res["trainings"]):
        pred, spacing = _read(row["prediction"])
        ref, _ = _read(row["reference"])
        p, r = pred == row["class"], ref == row["class"]
        m = row["metrics"]
        assert m["dice"] == pytest.approx(2 * (p & r).sum() / (p.sum() + r.sum()), abs=1e-9)
        assert m["iou"] == pytest.approx((p & r).sum() / (p | r).sum(), abs=1e-9)
        if p.any() and r.any():
            assert m["hd95_nm"] == pytest.approx(_hd95(p, r, spacing), rel=1e-3)
        # the same numbers as reisoseg evaluate on the saved arrays
        again = evaluate_labels(pred, ref, spacing, [row["class"]])[str(row["class"])]
        assert {k: m[k] for k in fields()} == pytest.approx(again)
    # the summary is the mean over the rows, and report.md shows it
    again = summarize(flatten_cases(res["trainings"]), res["methods"],
                      primary_measures(res["primary_measures"], res["summary"]))
    assert again == json.loads(json.dumps(res["summary"]))
    report = (out / "report.md").read_text()
    for split in res["summary"].values():
        for per_metric in split.values():
            mean = per_metric["dice"]["trainings"]["reiso"]["mean"]
            assert f"{mean:.3g}" in report


def test_rerun_reuses_trainings_and_errors(bench, capsys):
    root, out, _ = bench
    ckpts = sorted((out / "results").rglob("checkpoint_final.pth"))
    stamps = [p.stat().st_mtime_ns for p in ckpts]
    run_benchmark(None, "tiny", out=out, device="cpu")
    assert [p.stat().st_mtime_ns for p in ckpts] == stamps
    assert capsys.readouterr().out.count("using its record") == 2
    before = json.loads((out / "results.json").read_text())
    # a report from the records alone, as from a study committed without its models, one record from elsewhere
    shutil.move(out / "results", root / "models_elsewhere")
    shutil.move(out / "predictions", root / "predictions_elsewhere")
    record = out / "records" / "reiso_seed0_fold0.json"
    rec = json.loads(record.read_text())
    record.write_text(json.dumps({**rec, "machine": "another machine"}))
    run_benchmark(None, "tiny", out=out, device="cpu", methods=("stock", "stock_time", "reiso", "paper"))
    assert capsys.readouterr().out.count("using its record") == 4  # equal-time epochs the same again
    after = json.loads((out / "results.json").read_text())
    for m in ("dice", "ap75", "voi_split"):
        a, b = after["summary"]["test"]["1"][m], before["summary"]["test"]["1"][m]
        assert a["paired"]["reiso - stock"] == b["paired"]["reiso - stock"]
        assert a["trainings"]["reiso"] == b["trainings"]["reiso"] and a["trainings"]["stock"] == b["trainings"]["stock"]
    assert not (out / "results").exists()
    assert "come from 2 machines" in (out / "report.md").read_text()
    record.write_text(json.dumps(rec))
    shutil.move(root / "models_elsewhere", out / "results")
    shutil.move(root / "predictions_elsewhere", out / "predictions")
    with pytest.raises(BenchmarkError, match="needs both"):
        run_benchmark(None, "tiny", out=out, methods=("reiso", "stock_time"))
    ds_file = root / "raw" / "Dataset951_SynthEMTiny" / "dataset.json"
    original = ds_file.read_text()
    ds_file.write_text(json.dumps({**json.loads(original), "description": "something else"}))
    try:
        with pytest.raises(BenchmarkError, match="is not the tiny preset's generated dataset"):
            run_benchmark(None, "tiny", out=out, device="cpu")
    finally:
        ds_file.write_text(original)  # the session's benchmark is shared
    with pytest.raises(BenchmarkError, match="unknown preset"):
        run_benchmark(None, "huge", out=out)
    with pytest.raises(BenchmarkError, match="dataset 999"):
        run_benchmark("999", "tiny", out=out, device="cpu")


def test_region_dataset_is_refused_before_any_work(tmp_path, monkeypatch):
    raw = tmp_path / "raw" / "Dataset977_Regions"
    raw.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "both": [1, 2], "one": [1]},
                                                  "channel_names": {"0": "EM"}, "numTraining": 1,
                                                  "file_ending": ".nii.gz"}))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    with pytest.raises(BenchmarkError, match="region-based"):
        run_benchmark("977", "tiny", out=tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists() and not (tmp_path / "pre").exists()


def test_gpu_run_dry_mode_runs_every_step_and_reports(tmp_path, tiny_benchmark):
    """perf/gpu_run.sh --dry: the CUDA checks, train_step with and without compile and the stock-vs-ReIsoSeg
    comparison, with tiny settings on the CPU, into one folder with a report. The comparison continues the
    session's tiny benchmark (its dataset, plans and records, as a GPU run continues pairs trained before), so the
    trainings that the tests above check are not trained twice (it is in this module so that pytest-xdist runs it
    on the worker that trained them)."""
    out = tmp_path / "gpu_run"
    root, bench_out, _ = tiny_benchmark
    for name in ("raw", "pre"):
        shutil.copytree(root / name, out / "nnunet" / name)
    shutil.copytree(bench_out / "records", out / "benchmark" / "records")
    p = subprocess.run(["bash", ROOT / "perf" / "gpu_run.sh", out, "--dry", "--budget-s", "900"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (out / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in report.splitlines()
            if line.startswith("| ") and line.count("|") == 5}
    for step in ("gpu_checks", "train_step", "compare_1"):
        assert rows[step] == "ok", rows
        assert (out / f"{step}.log").is_file()
    # on the CPU nnU-Net does not compile, so the dry run does not repeat train_step under another name
    assert rows["train_step_compile"].startswith("skipped (dry run") and not (out / "train_step_compile.log").exists()
    rows = [json.loads(line) for line in (out / "gpu_checks.log").read_text().splitlines() if line.startswith("{")]
    assert [r["trainer"] for r in rows] == ["nnUNetTrainerReIso", "nnUNetTrainerReIsoSegNet"]
    assert all(r["ok"] and r["non_finite_losses"] == 0 and not r["compiled"] for r in rows)
    ratios = json.loads((out / "train_step.json").read_text())["ratios"]
    assert set(ratios) == {"train_step", "train_peak_memory", "inference"} and all(v > 0 for v in ratios.values())
    assert "## Speed and memory, no compile" in report and "## CUDA checks" in report
    assert "cannot tell" in report  # one training pair in the dry run: no verdict
    assert (out / "benchmark" / "results.json").is_file()
    assert "using its record" in (out / "compare_1.log").read_text()  # the session's trainings, continued

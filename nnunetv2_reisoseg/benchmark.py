"""``reisoseg benchmark``: stock nnU-Net against ReIsoSeg on the same plans, folds, seeds and budget.

Steps (each reuses what an earlier run finished): generate the embedded synthetic EM dataset when no
dataset is named; plan and preprocess with nnU-Net when the plans are missing; train every (method,
seed, fold) with ``nnUNetv2_train`` and the fixed-budget trainers of ``trainers/nnUNetTrainerBenchmark.py``
into ``OUT/results/seed<S>``; predict the test cases (when the dataset has ``imagesTs``) in this
process, timing each case; evaluate validation and test predictions; write ``report.md``,
``results.json`` and ``plots/``.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg.bench_trainer import EPOCHS_ENV, SEED_ENV, TIMING_FILE


@dataclass(frozen=True)
class Budget:
    """Training budget of a preset, and the synthetic dataset it generates when none is named."""

    epochs: int
    iterations: int
    val_iterations: int
    test_time_mirroring: bool
    synth: dict = field(default_factory=dict)
    note: str = ""


# the synthetic dataset of the short and full presets (the same data for both)
_SYNTH_FULL = dict(dataset_id=953, name="SynthEM", cases=20, test_cases=5, shape=(32, 256, 256), anisotropy=8,
                   xy_nm=5.0)
PRESETS: dict[str, Budget] = {
    "tiny": Budget(1, 2, 1, False, dict(dataset_id=951, name="SynthEMTiny", cases=5, test_cases=1,
                                        shape=(8, 32, 32), anisotropy=4, xy_nm=10.0),
                   "for the test suite: shows that everything runs, measures nothing useful"),
    "smoke": Budget(5, 24, 2, False, dict(dataset_id=952, name="SynthEMSmoke", cases=15, test_cases=3,
                                          shape=(16, 64, 64), anisotropy=8, xy_nm=5.0),
                    "about 10 minutes on a 2-core CPU; too short to rank the methods"),
    "short": Budget(100, 50, 10, True, _SYNTH_FULL, "5,000 iterations: an hour or two per training on a GPU"),
    "full": Budget(1000, 250, 50, True, _SYNTH_FULL, "nnU-Net's default budget (1000 epochs x 250 iterations)"),
}

# method -> trainer class name prefix; the preset's budget is appended (nnUNetTrainerReIsoBenchSmoke)
METHODS = {"stock": "nnUNetTrainer", "reiso": "nnUNetTrainerReIso", "paper": "nnUNetTrainerReIsoSegNet"}
METHOD_TITLES = {"stock": "stock nnU-Net", "reiso": "ReIsoSeg", "paper": "ReIsoSeg paper network",
                 "stock_time": "stock nnU-Net at ReIsoSeg's wall time"}
EQUAL_TIME_SUFFIX = "EqualTime"  # stock trainer whose epochs come from bench_trainer.EPOCHS_ENV
HIGHER_IS_BETTER = {"dice": True, "iou": True, "hd95_nm": False, "assd_nm": False, "iso_dice": True,
                    "iso_hd95_nm": False, "iso_assd_nm": False}
METRIC_TITLES = {"dice": "Dice", "iou": "IoU", "hd95_nm": "HD95 (nm)", "assd_nm": "ASSD (nm)",
                 "components_ratio": "3D components / reference", "iso_dice": "Dice vs isotropic truth",
                 "iso_hd95_nm": "HD95 vs isotropic truth (nm)", "iso_assd_nm": "ASSD vs isotropic truth (nm)"}
MIN_PAIRS = 3  # the spread of fewer paired differences says nothing
CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"


class BenchmarkError(RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


def log(msg: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def trainer_name(method: str, preset: str) -> str:
    if method == "stock_time":
        return f"{METHODS['stock']}Bench{preset.capitalize()}{EQUAL_TIME_SUFFIX}"
    return f"{METHODS[method]}Bench{preset.capitalize()}"


# ----------------------------------------------------------------------------------------------- setup
def _env_paths() -> tuple[Path, Path]:
    missing = [k for k in ("nnUNet_raw", "nnUNet_preprocessed") if not os.environ.get(k)]
    if missing:
        raise BenchmarkError(f"{' and '.join(missing)} not set: export nnUNet_raw and nnUNet_preprocessed "
                             "(see nnU-Net's setting_up_paths.md); results go to -o OUT, not nnUNet_results.")
    return Path(os.environ["nnUNet_raw"]), Path(os.environ["nnUNet_preprocessed"])


def ensure_dataset(dataset: str | None, preset: str) -> tuple[int, str]:
    """The dataset's id and folder name; generates the preset's synthetic dataset when none is named."""
    raw, _ = _env_paths()
    if dataset is None:
        from nnunetv2_reisoseg.synth import generate_dataset

        spec = dict(PRESETS[preset].synth)
        expected = (f"reisoseg synth: anisotropy {spec['anisotropy']}, {spec['xy_nm']} nm lateral, seed 0; "
                    f"{spec['cases']}+{spec['test_cases']} cases of {'x'.join(map(str, spec['shape']))}")
        existing = sorted(raw.glob(f"Dataset{spec['dataset_id']:03d}_*"))
        if existing:
            ds = existing[0] / "dataset.json"
            desc = json.loads(ds.read_text()).get("description") if ds.is_file() else None
            if existing[0].name != f"Dataset{spec['dataset_id']:03d}_{spec['name']}" or desc != expected:
                raise BenchmarkError(
                    f"{existing[0]} exists but is not the {preset} preset's generated dataset ({expected}). "
                    f"Remove it, or benchmark it by name: reisoseg benchmark {existing[0].name}")
            log(f"reusing {existing[0]}")
        else:
            log(f"generating the embedded synthetic EM dataset ({expected})")
            path = generate_dataset(raw, seed=0, **spec)
            ds = json.loads((path / "dataset.json").read_text())
            ds["description"] = expected
            (path / "dataset.json").write_text(json.dumps(ds, indent=2))
        return spec["dataset_id"], f"Dataset{spec['dataset_id']:03d}_{spec['name']}"
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise BenchmarkError(f"dataset {dataset}: {e}") from None
    return int(name[7:10]), name


def worker_env() -> dict[str, str]:
    """nnU-Net's worker counts, sized to this machine where the user has not set them: its defaults
    (12 augmentation workers per GPU, 8 for preprocessing and export) swamp a small CPU."""
    cores = os.cpu_count() or 2
    out = {}
    if "nnUNet_n_proc_DA" not in os.environ:
        out["nnUNet_n_proc_DA"] = str(max(1, min(12, cores - 1)))
    if "nnUNet_def_n_proc" not in os.environ:
        out["nnUNet_def_n_proc"] = str(max(1, min(8, cores)))
    return out


def _run_logged(cmd: Sequence[str], env: dict, logfile: Path, tag: str, show: re.Pattern | None) -> None:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            if show is not None and show.search(line):
                print(f"  [{tag}] {line.strip()}", flush=True)
        rc = proc.wait()
    if rc != 0:
        tail = "".join(logfile.read_text().splitlines(True)[-25:])
        raise BenchmarkError(f"{tag} failed (exit {rc}); full log: {logfile}\n{tail}")


def ensure_plans(dataset_id: int, dataset_name: str, out: Path) -> dict:
    _, pre = _env_paths()
    plans_file = pre / dataset_name / f"{PLANS}.json"
    if not plans_file.is_file():
        log(f"planning and preprocessing {dataset_name} with nnU-Net ({CONFIGURATION})")
        env = {**os.environ, **worker_env()}
        if env["nnUNet_n_proc_DA"] == "0":  # 0 breaks nnU-Net's planner (torch.set_num_threads(0))
            env["nnUNet_n_proc_DA"] = "1"
        _run_logged(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", CONFIGURATION, "-np",
                     env["nnUNet_def_n_proc"]], env, out / "logs" / "plan_and_preprocess.log", "plan", None)
    plans = json.loads(plans_file.read_text())
    if CONFIGURATION not in plans["configurations"]:
        raise BenchmarkError(f"{plans_file} has no {CONFIGURATION} configuration; the benchmark needs a 3D dataset")
    return plans


# ----------------------------------------------------------------------------------------------- training
@dataclass
class Run:
    method: str
    seed: int
    fold: int
    folder: Path  # nnU-Net's fold folder

    @property
    def tag(self) -> str:
        return f"{self.method} seed {self.seed} fold {self.fold}"

    @property
    def finished(self) -> bool:
        return all((self.folder / f).is_file() for f in ("checkpoint_final.pth", "validation/summary.json",
                                                         TIMING_FILE))


_PROGRESS = re.compile(r"Epoch \d+$|train_loss|Pseudo dice|Epoch time|Mean Validation Dice|Traceback|Error")


def train(run: Run, dataset_id: int, preset: str, device: str, out: Path, extra_env: dict | None = None) -> None:
    from nnunetv2_reisoseg import trainer_dir

    if run.finished:
        log(f"{run.tag}: reusing the finished training in {run.folder}")
        return
    env = {**os.environ, **worker_env()}
    ext = [str(trainer_dir())] + [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    env.update({"nnUNet_results": str(out / "results" / f"seed{run.seed}"), SEED_ENV: str(run.seed),
                "nnUNet_extTrainer": os.pathsep.join(dict.fromkeys(ext)), **(extra_env or {})})
    cmd = ["nnUNetv2_train", str(dataset_id), CONFIGURATION, str(run.fold), "-tr", trainer_name(run.method, preset),
           "-device", device]
    if (run.folder / "checkpoint_latest.pth").is_file() or (run.folder / "checkpoint_final.pth").is_file():
        cmd.append("--c")  # an interrupted run continues from its last checkpoint
    log(f"{run.tag}: {' '.join(cmd)}")
    _run_logged(cmd, env, out / "logs" / f"train_{run.method}_seed{run.seed}_fold{run.fold}.log", run.tag,
                _PROGRESS)
    if not run.finished:
        raise BenchmarkError(f"{run.tag}: nnUNetv2_train ended without checkpoint_final.pth, validation and "
                             f"timing in {run.folder}")


def predict_test(run: Run, dataset_dir: Path, device: str, out: Path) -> dict | None:
    """Predict imagesTs with the run's model in this process; per-case seconds (preprocessing, sliding
    window, resampling; file input/output excluded). Existing predictions are reused."""
    images = sorted((dataset_dir / "imagesTs").glob("*_0000.*"))
    if not images:
        return None
    ending = json.loads((dataset_dir / "dataset.json").read_text())["file_ending"]
    dest = out / "predictions" / f"seed{run.seed}" / run.method / f"fold_{run.fold}"
    timing_file = dest / "inference_timing.json"
    if timing_file.is_file() and all((dest / (p.name[: -len("_0000" + ending)] + ending)).is_file() for p in images):
        return json.loads(timing_file.read_text())
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunetv2_reisoseg import trainer_dir

    old = os.environ.get("nnUNet_extTrainer")
    os.environ["nnUNet_extTrainer"] = os.pathsep.join([str(trainer_dir())] + ([old] if old else []))
    try:
        dev = torch.device(device)
        predictor = nnUNetPredictor(device=dev, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(run.folder.parent), use_folds=(run.fold,),
                                                       checkpoint_name="checkpoint_final.pth")
    finally:
        if old is None:
            os.environ.pop("nnUNet_extTrainer", None)
        else:
            os.environ["nnUNet_extTrainer"] = old
    dest.mkdir(parents=True, exist_ok=True)
    io = SimpleITKIO()
    seconds = {}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for p in images:
        case = p.name[: -len("_0000" + ending)]
        img, props = io.read_images([str(p)])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        seg = predictor.predict_single_npy_array(img, props, None, None, False)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds[case] = time.perf_counter() - t0
        io.write_seg(seg, str(dest / (case + ending)), props)
    timing = {"seconds_per_case": seconds, "device": device,
              "peak_gpu_allocated_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None}
    timing_file.write_text(json.dumps(timing, indent=1))
    return timing


# ----------------------------------------------------------------------------------------------- metrics
def _surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """HD95 and symmetric ASSD in the units of ``spacing`` (MONAI's implementation); NaN when either
    mask is empty (no surface to measure)."""
    if not pred.any() or not ref.any():
        return float("nan"), float("nan")
    import warnings

    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # a MONAI-internal deprecation notice
        hd95 = compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=list(spacing))
        assd = compute_average_surface_distance(p, r, include_background=True, symmetric=True,
                                                spacing=list(spacing))
    return float(hd95.item()), float(assd.item())


def _components(mask: np.ndarray) -> int:
    from scipy import ndimage as ndi

    return int(ndi.label(mask, structure=np.ones((3, 3, 3), bool))[1])


def evaluate_case(pred_file: Path, ref_file: Path, labels: Sequence[int], ignore_label: int | None,
                  truth_file: Path | None = None) -> dict[int, dict[str, float]]:
    """Per class: nnU-Net's Dice and IoU, HD95 and ASSD in the images' units (nm here), the ratio of
    3D connected components (26-neighbourhood) predicted to reference (1 = no fragments, no merges:
    continuity across sections), and with ``truth_file`` the same against the isotropic truth (the
    prediction's sections repeated to the truth's grid)."""
    import SimpleITK as sitk
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    nn = compute_metrics(str(ref_file), str(pred_file), SimpleITKIO(), list(labels), ignore_label)["metrics"]
    pimg = sitk.ReadImage(str(pred_file))
    pred = sitk.GetArrayFromImage(pimg)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_file)))
    spacing = pimg.GetSpacing()[::-1]
    valid = ref != ignore_label if ignore_label is not None else np.ones(ref.shape, bool)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file))) if truth_file is not None else None
    out: dict[int, dict[str, float]] = {}
    for c in labels:
        p, r = (pred == c) & valid, (ref == c) & valid
        hd95, assd = _surface_metrics(p, r, spacing)
        n_ref = _components(r)
        row = {"dice": float(nn[c]["Dice"]), "iou": float(nn[c]["IoU"]), "hd95_nm": hd95, "assd_nm": assd,
               "components_ratio": _components(p) / n_ref if n_ref else float("nan")}
        if truth is not None:
            f = truth.shape[0] // pred.shape[0]
            p_iso = np.repeat(pred == c, f, axis=0)
            t = truth == c
            denom = p_iso.sum() + t.sum()
            row["iso_dice"] = float(2 * (p_iso & t).sum() / denom) if denom else float("nan")
            row["iso_hd95_nm"], row["iso_assd_nm"] = _surface_metrics(p_iso, t, (spacing[0] / f, *spacing[1:]))
        out[int(c)] = row
    return out


# ----------------------------------------------------------------------------------------------- report
def _stats(values: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return {"mean": float(v.mean()) if v.size else None, "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "n": int(v.size), "n_undefined": len(values) - int(v.size)}


def comparisons(methods: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) reported as a - b: every method against stock at the same budget, and ReIsoSeg
    against stock trained for ReIsoSeg's wall time when that was run."""
    pairs = [(m, "stock") for m in methods if m not in ("stock", "stock_time") and "stock" in methods]
    if "stock_time" in methods and "reiso" in methods:
        pairs.append(("reiso", "stock_time"))
    return pairs


def summarize(rows: list[dict], methods: Sequence[str]) -> dict:
    """Per split, class and metric: each method's mean and spread, and under ``paired`` the paired
    difference of each pair of ``comparisons`` over the same (seed, fold, case); a difference within
    its spread is no difference."""
    summary: dict = {}
    metrics = [m for m in METRIC_TITLES if any(m in r["metrics"] for r in rows)]
    for split in sorted({r["split"] for r in rows}):
        for c in sorted({r["class"] for r in rows if r["split"] == split}):
            sel = [r for r in rows if r["split"] == split and r["class"] == c]
            for m in metrics:
                entry = {meth: _stats([r["metrics"].get(m) for r in sel if r["method"] == meth]) for meth in methods}
                values = {(r["method"], r["seed"], r["fold"], r["case"]): r["metrics"].get(m) for r in sel}
                for a, b in comparisons(methods):
                    diffs = []
                    for (meth, *key), va in values.items():
                        vb = values.get((b, *key))
                        if meth == a and va is not None and vb is not None and np.isfinite([va, vb]).all():
                            diffs.append(va - vb)
                    d = _stats(diffs)
                    if m not in HIGHER_IS_BETTER or d["mean"] is None:
                        verdict = ""
                    elif d["n"] < MIN_PAIRS:
                        verdict = f"cannot tell (fewer than {MIN_PAIRS} pairs)"
                    elif abs(d["mean"]) <= d["std"]:
                        verdict = "no difference (within the spread)"
                    else:
                        better = a if (d["mean"] > 0) == HIGHER_IS_BETTER[m] else b
                        verdict = f"{METHOD_TITLES[better]} better"
                    entry.setdefault("paired", {})[f"{a} - {b}"] = {**d, "verdict": verdict}
                summary.setdefault(split, {}).setdefault(str(c), {})[m] = entry
    return summary


def _fmt(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    txt = f"{s['mean']:.{digits}g}" + (f" ± {s['std']:.2g}" if s.get("std") is not None else "")
    return txt + f" (n={s['n']}" + (f", {s['n_undefined']} undefined" if s.get("n_undefined") else "") + ")"


def _machine() -> str:
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


def _costs(results: dict, methods: Sequence[str]) -> dict:
    out = {}
    for meth in methods:
        runs = [r for r in results["runs"] if r["method"] == meth]
        steps = [np.median(r["timing"]["step_times_s"][2:] or r["timing"]["step_times_s"]) for r in runs]
        inf = [s for r in runs if r.get("inference") for s in r["inference"]["seconds_per_case"].values()]
        gpu = [r["timing"]["peak_gpu_allocated_bytes"] for r in runs if r["timing"]["peak_gpu_allocated_bytes"]]
        out[meth] = {"median_step_s": _stats(steps), "training_wall_s": _stats([r["timing"]["training_wall_s"]
                                                                                  for r in runs]),
                     "peak_cpu_rss_gib": _stats([r["timing"]["peak_cpu_rss_bytes"] / 2**30 for r in runs]),
                     "peak_gpu_gib": _stats([g / 2**30 for g in gpu]) if gpu else None,
                     "inference_s_per_case": _stats(inf) if inf else None}
    return out


def write_report(results: dict, out: Path) -> Path:
    methods = results["methods"]
    lines = [f"# reisoseg benchmark: {results['dataset']}, preset `{results['preset']}`", "",
             f"- Command: `{results['command']}`",
             f"- Machine: {results['machine']}; training device `{results['device']}`; nnU-Net workers "
             + ", ".join(f"{k}={v}" for k, v in results["nnunet_workers"].items()),
             f"- Budget per training: {results['budget']['epochs']} epochs x {results['budget']['iterations']} "
             f"iterations, batch {results['batch_size']}, patch {'x'.join(map(str, results['patch_size']))}, "
             f"spacing {'x'.join(f'{v:g}' for v in results['spacing'])} ({results['budget']['note']})",
             f"- Folds {results['folds']}, seeds {results['seeds']}; the same plans, folds, seeds and budget for "
             "every method. Spread is the standard deviation over cases x folds x seeds; a paired difference "
             f"smaller than its spread is reported as no difference, and fewer than {MIN_PAIRS} pairs as cannot "
             "tell.", ""]
    classes = results["classes"]
    pairs = comparisons(methods)
    for split, title in (("validation", "Validation cases (cross-validation folds)"), ("test", "Test cases")):
        if split not in results["summary"]:
            continue
        head = ["class", "metric", *(METHOD_TITLES[m] for m in methods)]
        for a, b in pairs:
            head += [f"{METHOD_TITLES[a]} - {METHOD_TITLES[b]} (paired)", "verdict"]
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c, per_metric in results["summary"][split].items():
            for m, entry in per_metric.items():
                cells = [classes.get(c, c), METRIC_TITLES[m], *(_fmt(entry[x]) for x in methods)]
                for a, b in pairs:
                    d = entry.get("paired", {}).get(f"{a} - {b}")
                    cells += [_fmt(d), d["verdict"] if d else ""]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    costs = results["costs"]
    others = [m for m in methods if m != "stock"] if "stock" in methods else []
    head = ["", *(METHOD_TITLES[m] for m in methods), *(f"{METHOD_TITLES[o]} / stock" for o in others)]
    lines += ["## Cost (measured in this run)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, title in (("median_step_s", "training step (s, median per training)"),
                       ("training_wall_s", "training wall time (s)"), ("peak_cpu_rss_gib", "peak CPU RSS (GiB)"),
                       ("peak_gpu_gib", "peak GPU memory allocated (GiB)"),
                       ("inference_s_per_case", "inference (s per test case)")):
        vals = [costs[m].get(key) for m in methods]
        if all(v is None for v in vals):
            continue
        cells = [title, *(_fmt(v) for v in vals)]
        for o in others:
            a, b = costs["stock"].get(key), costs[o].get(key)
            cells.append(f"{b['mean'] / a['mean']:.2f}x" if a and b and a["mean"] and b["mean"] is not None
                         else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "The training step excludes data loading; inference is nnU-Net's predictor on each test "
              "case in one process (preprocessing, sliding window, resampling; file I/O excluded).", "",
              "## Plots", "", "![per-case metrics](plots/per_case.png)", "",
              "![learning curves](plots/learning_curves.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    rows, methods = results["cases"], results["methods"]
    metrics = [m for m in ("dice", "hd95_nm", "iso_dice") if any(m in r["metrics"] for r in rows)]
    with plt.style.context("default"):
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4.2), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            stock = {(r["split"], r["seed"], r["fold"], r["case"], r["class"]): r["metrics"].get(m)
                     for r in rows if r["method"] == "stock"}
            for other in (x for x in methods if x != "stock" and stock):
                for split, marker in (("validation", "o"), ("test", "s")):
                    pts = [(stock[k], r["metrics"].get(m)) for r in rows if r["method"] == other
                           and r["split"] == split for k in [(split, r["seed"], r["fold"], r["case"], r["class"])]
                           if k in stock]
                    pts = [(a, b) for a, b in pts if a is not None and b is not None and np.isfinite([a, b]).all()]
                    if pts:
                        ax.scatter(*zip(*pts), marker=marker, alpha=0.7, color=f"C{methods.index(other)}",
                                   label=f"{METHOD_TITLES[other]}, {split}")
            if stock:
                lim = ax.get_xlim() + ax.get_ylim()
                lo, hi = min(lim), max(lim)
                ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
                ax.set_xlabel(f"stock nnU-Net {METRIC_TITLES[m]}")
                ax.set_ylabel(f"other method's {METRIC_TITLES[m]}")
                ax.legend(fontsize=7)
            ax.set_title(f"{METRIC_TITLES[m]} per case" + (" (higher is better)" if HIGHER_IS_BETTER.get(m)
                                                           else " (lower is better)"), fontsize=9)
        fig.tight_layout()
        fig.savefig(plots / "per_case.png", dpi=100)
        plt.close(fig)

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for i, run in enumerate(results["runs"]):
            ckpt = torch.load(Path(run["folder"]) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
            lg = ckpt["logging"]
            color = f"C{methods.index(run['method'])}"
            lab = METHOD_TITLES[run["method"]] if i == next(j for j, r in enumerate(results["runs"])
                                                            if r["method"] == run["method"]) else None
            axes[0].plot(lg["train_losses"], color=color, label=lab and f"{lab} train")
            axes[0].plot(lg["val_losses"], color=color, ls="--", label=lab and f"{lab} val")
            for key, ls in (("train_loss_ani", ":"), ("train_loss_iso", "-.")):
                if lg.get(key):
                    axes[0].plot(lg[key], color=color, ls=ls, label=lab and key)
            axes[1].plot(lg["mean_fg_dice"], color=color, label=lab)
        axes[0].set_title("losses (ReIsoSeg: train = 0.5 ani + 0.5 iso)", fontsize=9)
        axes[1].set_title("pseudo Dice on validation patches", fontsize=9)
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / "learning_curves.png", dpi=100)
        plt.close(fig)


# ----------------------------------------------------------------------------------------------- driver
def run_benchmark(dataset: str | None = None, preset: str = "smoke", folds: Sequence[int] = (0,),
                  seeds: Sequence[int] = (0,), out: str | os.PathLike | None = None,
                  methods: Sequence[str] = ("stock", "reiso"), device: str = "auto",
                  command: str = "", equal_time: bool = False) -> Path:
    """Run (or finish) a benchmark and write ``report.md``, ``results.json`` and ``plots/`` in ``out``."""
    import torch

    if preset not in PRESETS:
        raise BenchmarkError(f"unknown preset {preset}; choose one of {', '.join(PRESETS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise BenchmarkError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if equal_time:
        if not {"stock", "reiso"} <= set(methods):
            raise BenchmarkError("--equal-time trains stock nnU-Net for ReIsoSeg's wall time: it needs both "
                                 "stock and reiso in --methods")
        methods = [*methods, "stock_time"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dataset_id, dataset_name = ensure_dataset(dataset, preset)
    raw, _ = _env_paths()
    dataset_dir = raw / dataset_name
    dataset_json = json.loads((dataset_dir / "dataset.json").read_text())
    if any(not isinstance(v, int) for v in dataset_json["labels"].values()):  # before any planning or training
        raise BenchmarkError(f"{dataset_name} is region-based; the benchmark's evaluation handles label datasets "
                             "only (train regions with nnUNetv2_train -tr nnUNetTrainerReIso)")
    out_dir = Path(out) if out is not None else Path("reisoseg_benchmark") / f"{dataset_name}_{preset}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = ensure_plans(dataset_id, dataset_name, out_dir)
    labels = {str(v): k for k, v in dataset_json["labels"].items() if isinstance(v, int)}
    ignore = dataset_json["labels"].get("ignore")
    fg = sorted(int(v) for k, v in dataset_json["labels"].items() if isinstance(v, int) and v > 0 and k != "ignore")
    ending = dataset_json["file_ending"]
    truth_dir = dataset_dir / "isotropic_truth"
    preset_budget = PRESETS[preset]
    n_total = len(methods) * len(seeds) * len(folds)
    log(f"{dataset_name}: {n_total} trainings ({', '.join(methods)} x seeds {list(seeds)} x folds {list(folds)}), "
        f"preset {preset}: {preset_budget.epochs} epochs x {preset_budget.iterations} iterations on {device}")

    run_records, case_rows = [], []
    for seed in seeds:
        for fold in folds:
            walls: dict[str, float] = {}
            for meth in methods:
                folder = (out_dir / "results" / f"seed{seed}" / dataset_name /
                          f"{trainer_name(meth, preset)}__{PLANS}__{CONFIGURATION}" / f"fold_{fold}")
                run = Run(meth, seed, fold, folder)
                extra = None
                if meth == "stock_time":  # as many epochs as fit in ReIsoSeg's training time
                    epochs = max(preset_budget.epochs, round(preset_budget.epochs * walls["reiso"] / walls["stock"]))
                    extra = {EPOCHS_ENV: str(epochs)}
                    log(f"{run.tag}: {epochs} epochs, the stock budget scaled by ReIsoSeg's wall time "
                        f"({walls['reiso']:.0f} s vs {walls['stock']:.0f} s)")
                train(run, dataset_id, preset, device, out_dir, extra)
                walls[meth] = json.loads((folder / TIMING_FILE).read_text())["training_wall_s"]
                inference = predict_test(run, dataset_dir, device, out_dir)
                run_records.append({"method": meth, "seed": seed, "fold": fold, "folder": str(folder),
                                    "timing": json.loads((folder / TIMING_FILE).read_text()),
                                    "inference": inference})
                pairs = [("validation", p, dataset_dir / "labelsTr" / p.name)
                         for p in sorted((folder / "validation").glob("*" + ending))]
                test_dir = out_dir / "predictions" / f"seed{seed}" / meth / f"fold_{fold}"
                pairs += [("test", p, dataset_dir / "labelsTs" / p.name) for p in sorted(test_dir.glob("*" + ending))
                          if (dataset_dir / "labelsTs" / p.name).is_file()]
                log(f"{run.tag}: evaluating {len(pairs)} predictions")
                for split, pred, ref in pairs:
                    truth = truth_dir / pred.name
                    per_class = evaluate_case(pred, ref, fg, ignore, truth if truth.is_file() else None)
                    case = pred.name[: -len(ending)]
                    for c, metrics in per_class.items():
                        case_rows.append({"method": meth, "seed": seed, "fold": fold, "split": split, "case": case,
                                          "class": c, "prediction": str(pred), "reference": str(ref),
                                          "metrics": metrics})
    cfg = plans["configurations"][CONFIGURATION]
    results = {
        "dataset": dataset_name, "preset": preset, "budget": asdict(preset_budget), "methods": list(methods),
        "trainers": {m: trainer_name(m, preset) for m in methods}, "folds": list(folds), "seeds": list(seeds),
        "device": device, "machine": _machine(), "command": command or f"reisoseg benchmark --preset {preset}",
        "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"], "spacing": cfg["spacing"],
        "classes": labels, "runs": run_records, "cases": case_rows,
        "nnunet_workers": {k: os.environ.get(k) or worker_env().get(k) for k in ("nnUNet_n_proc_DA",
                                                                                "nnUNet_def_n_proc")},
    }
    results["summary"] = summarize(case_rows, methods)
    results["costs"] = _costs(results, methods)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=float))
    write_plots(results, out_dir)
    report = write_report(results, out_dir)
    log(f"wrote {report}, {out_dir / 'results.json'} and {out_dir / 'plots'}")
    return report

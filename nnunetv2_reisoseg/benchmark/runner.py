"""``reisoseg benchmark``: stock nnU-Net against ReIsoSeg on the same plans, folds, seeds and budget.

Steps (each reuses what an earlier run finished): generate the embedded synthetic EM dataset when no
dataset is named; plan and preprocess with nnU-Net when the plans are missing; train every (method,
seed, fold) with ``nnUNetv2_train`` and the fixed-budget trainers of ``benchmark/trainers/``
into ``OUT/results/seed<S>``; predict the test cases (when the dataset has ``imagesTs``) in this
process, timing each case; evaluate validation and test predictions; write ``report.md``,
``results.json`` and ``plots/``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunetv2_reisoseg import EXT_TRAINER, our_trainers, trainer_path
from nnunetv2_reisoseg.benchmark.budget import EPOCHS_ENV, SEED_ENV, TIMING_FILE
from nnunetv2_reisoseg.benchmark.datacheck import check_dataset
from nnunetv2_reisoseg.benchmark.figure import write_xz_figure
from nnunetv2_reisoseg.benchmark.metrics import evaluate_case
from nnunetv2_reisoseg.benchmark.presets import CONFIGURATION, METHODS, PLANS, PRESETS, plans_name, trainer_name
from nnunetv2_reisoseg.benchmark.records import BenchmarkResults, CaseResult, TrainingRecord
from nnunetv2_reisoseg.benchmark.report import machine, primary_measures, write_plots, write_report
from nnunetv2_reisoseg.benchmark.stats import PLATEAU_CURVE, costs, flatten_cases, plateau, summarize
from nnunetv2_reisoseg.errors import ReisosegError
from nnunetv2_reisoseg.io import checks
from nnunetv2_reisoseg.method.describe import describe_pi_plan
from nnunetv2_reisoseg.progress import progress_bar, say


class BenchmarkError(ReisosegError, RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


# the benchmark's own fixed-budget trainers: only the trainings this module starts look here, so users'
# nnUNet_extTrainer (reisoseg trainer-path) never imports the benchmark
TRAINER_DIR = Path(__file__).resolve().parent / "trainers"


def ext_trainer_path(existing: str | None) -> str:
    """``nnUNet_extTrainer`` for the benchmark's trainings: its trainer folder first, then the user's."""
    return trainer_path((TRAINER_DIR,), existing)


def nnunet_command(name: str) -> list[str]:
    """nnU-Net's console script ``name``; where it is not on PATH (its wheel unpacked onto PYTHONPATH, as on
    a bare GPU machine), its entry point run by this Python."""
    path = shutil.which(name)
    if path:
        return [path]
    from importlib.metadata import entry_points

    ep = next((e for e in entry_points(group="console_scripts") if e.name == name), None)
    if ep is None:
        raise BenchmarkError(f"{name} is neither on PATH nor a console script of an installed package: install "
                             "nnunetv2 (pip install nnunetv2)")
    return [sys.executable, "-c", f"import sys; from {ep.module} import {ep.attr} as main; sys.argv[0] = {name!r}; "
            "sys.exit(main())"]


def log(msg: str) -> None:
    say(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}")


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
        from nnunetv2_reisoseg.data.synth import generate_dataset

        synth = PRESETS[preset].synth
        if synth is None:
            raise BenchmarkError(f"the {preset} preset generates no data: name the dataset it was made for "
                                 "(README, 'The studies'), e.g. reisoseg benchmark Dataset970_VNC --preset vnc")
        existing = sorted(raw.glob(f"Dataset{synth.dataset_id:03d}_*"))
        if existing:
            ds = existing[0] / "dataset.json"
            desc = json.loads(ds.read_text()).get("description") if ds.is_file() else None
            if existing[0].name != synth.folder or desc != synth.description:
                raise BenchmarkError(
                    f"{existing[0]} exists but is not the {preset} preset's generated dataset ({synth.description}). "
                    f"Remove it, or benchmark it by name: reisoseg benchmark {existing[0].name}")
            log(f"reusing {existing[0]}")
        else:
            log(f"generating the embedded synthetic EM dataset ({synth.description})")
            path = generate_dataset(raw, synth.dataset_id, synth.name, synth.spec())
            ds = json.loads((path / "dataset.json").read_text())
            ds["description"] = synth.description
            (path / "dataset.json").write_text(json.dumps(ds, indent=2))
        return synth.dataset_id, synth.folder
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
                say(f"  [{tag}] {line.strip()}")
        rc = proc.wait()
    if rc != 0:
        tail = "".join(logfile.read_text().splitlines(True)[-25:])
        raise BenchmarkError(f"{tag} failed (exit {rc}); full log: {logfile}\n{tail}")


def narrower_plans(plans: dict, width: float, name: str, patch: Sequence[int] | None = None) -> dict:
    """A copy of nnU-Net's plans whose 3d_fullres network has ``width`` times the features per stage (at least
    8) and, given ``patch``, that patch with the topology nnU-Net's planner derives for it (stages, strides,
    kernels; features per stage by its rule, then scaled). The preprocessed data stay nnU-Net's."""
    out = json.loads(json.dumps(plans))
    out["plans_name"] = name
    cfg = out["configurations"][CONFIGURATION]
    kwargs = cfg["architecture"]["arch_kwargs"]
    if patch is not None:
        from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

        # the arguments nnU-Net's ExperimentPlanner passes: feature maps at least 4 voxels, no pooling cap
        _, strides, kernels, new_patch, _ = get_pool_and_conv_props(cfg["spacing"], list(patch), 4, 999999)
        if list(new_patch) != list(patch):
            raise BenchmarkError(f"patch {list(patch)} is not one nnU-Net's topology accepts for spacing "
                                 f"{cfg['spacing']}; the nearest is {list(new_patch)}")
        n = len(strides)
        cfg["patch_size"] = [int(v) for v in new_patch]  # numpy integers, which JSON cannot write
        kwargs.update(n_stages=n, strides=[[int(v) for v in s] for s in strides],
                      kernel_sizes=[[int(v) for v in k] for k in kernels],
                      features_per_stage=[min(320, 32 * 2 ** i) for i in range(n)],
                      n_conv_per_stage=[kwargs["n_conv_per_stage"][0]] * n,
                      n_conv_per_stage_decoder=[kwargs["n_conv_per_stage_decoder"][0]] * (n - 1))
    kwargs["features_per_stage"] = [max(8, round(f * width)) for f in kwargs["features_per_stage"]]
    return out


def ensure_plans(dataset_id: int, dataset_name: str, out: Path, preset: str) -> dict:
    """The plans the preset trains (nnU-Net's, planned and preprocessed here when missing, or their narrower
    copy)."""
    _, pre = _env_paths()
    plans_file = pre / dataset_name / f"{PLANS}.json"
    if not plans_file.is_file():
        log(f"planning and preprocessing {dataset_name} with nnU-Net ({CONFIGURATION})")
        env = {**os.environ, **worker_env()}
        if env["nnUNet_n_proc_DA"] == "0":  # 0 breaks nnU-Net's planner (torch.set_num_threads(0))
            env["nnUNet_n_proc_DA"] = "1"
        _run_logged([*nnunet_command("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", CONFIGURATION, "-np",
                     env["nnUNet_def_n_proc"]], env, out / "logs" / "plan_and_preprocess.log", "plan", None)
    plans = checks.read_plans(plans_file, f"plan the dataset again: nnUNetv2_plan_and_preprocess -d {dataset_id}")
    splits, given = pre / dataset_name / "splits_final.json", _env_paths()[0] / dataset_name / "splits_final.json"
    if not splits.is_file() and given.is_file():  # reisoseg convert's folds, one per block
        shutil.copyfile(given, splits)
        log(f"using the dataset's folds: copied {given} to {splits}")
    if CONFIGURATION not in plans["configurations"]:
        raise BenchmarkError(f"{plans_file} has no {CONFIGURATION} configuration; the benchmark needs a 3D dataset")
    name = plans_name(preset)
    if name != PLANS:
        plans = narrower_plans(plans, PRESETS[preset].width, name, PRESETS[preset].patch)
        (pre / dataset_name / f"{name}.json").write_text(json.dumps(plans, indent=1))
        log(f"{name}: nnU-Net's plan with features per stage "
            f"{plans['configurations'][CONFIGURATION]['architecture']['arch_kwargs']['features_per_stage']}")
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
    if run.finished:
        log(f"{run.tag}: reusing the finished training in {run.folder}")
        return
    env = {**os.environ, **worker_env()}
    env.update({"nnUNet_results": str(out / "results" / f"seed{run.seed}"), SEED_ENV: str(run.seed),
                EXT_TRAINER: ext_trainer_path(env.get(EXT_TRAINER)), **(extra_env or {})})
    cmd = [*nnunet_command("nnUNetv2_train"), str(dataset_id), CONFIGURATION, str(run.fold), "-tr",
           trainer_name(run.method, preset), "-p", plans_name(preset), "-device", device]
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
    dest = _predictions(out, run)
    timing_file = dest / "inference_timing.json"
    if timing_file.is_file() and all((dest / (p.name[: -len("_0000" + ending)] + ending)).is_file() for p in images):
        return json.loads(timing_file.read_text())
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    dev = torch.device(device)
    predictor = nnUNetPredictor(device=dev, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    with our_trainers(TRAINER_DIR):
        predictor.initialize_from_trained_model_folder(str(run.folder.parent), use_folds=(run.fold,),
                                                       checkpoint_name="checkpoint_final.pth")
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


# ----------------------------------------------------------------------------------------------- driver
def _curves(folder: Path) -> dict:
    """Learning curves of a finished training from its checkpoint: per epoch pseudo Dice, losses (both
    re-isotropic terms for ReIsoSeg) and the seconds since the training started at each epoch's end."""
    import torch

    lg = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    starts, ends = lg.get("epoch_start_timestamps", []), lg.get("epoch_end_timestamps", [])
    out = {k: [float(v) for v in lg[k]] for k in ("mean_fg_dice", "ema_fg_dice", "train_losses", "val_losses",
                                                  "train_loss_ani", "train_loss_iso") if lg.get(k)}
    out["epoch_end_s"] = [float(e - starts[0]) for e in ends] if starts else []
    return out


_RECORD_FIX = "remove it, and the benchmark trains that training again"
RECORDS = "records"  # one JSON per finished training: what a report needs, without the weights
RECORD_VERSION = 2  # records of another version (other metrics) are computed again from the model


def _record(run: Run, preset: str, dataset_dir: Path, device: str, out: Path, fg: Sequence[int],
            ignore: int | None) -> TrainingRecord:
    """Predict the test cases, evaluate validation and test predictions, and collect a finished training's
    record: budget, wall time, machine, learning curves and every case's metrics."""
    ending = json.loads((dataset_dir / "dataset.json").read_text())["file_ending"]
    timing = json.loads((run.folder / TIMING_FILE).read_text())
    inference = predict_test(run, dataset_dir, device, out)
    pairs = [("validation", p, dataset_dir / "labelsTr" / p.name)
             for p in sorted((run.folder / "validation").glob("*" + ending))]
    pairs += [("test", p, dataset_dir / "labelsTs" / p.name) for p in sorted(_predictions(out, run).glob("*" + ending))
              if (dataset_dir / "labelsTs" / p.name).is_file()]
    log(f"{run.tag}: evaluating {len(pairs)} predictions")
    cases: list[CaseResult] = []
    for split, pred, ref in pairs:
        truth = dataset_dir / "isotropic_truth" / pred.name
        per_class = evaluate_case(pred, ref, fg, ignore, truth if truth.is_file() else None)
        for c, metrics in per_class.items():
            cases.append({"split": split, "case": pred.name[: -len(ending)], "class": c, "prediction": str(pred),
                          "reference": str(ref), "metrics": metrics})
    curves = _curves(run.folder)
    return {"record_version": RECORD_VERSION, "method": run.method, "seed": run.seed, "fold": run.fold,
            "trainer": trainer_name(run.method, preset), "plans": plans_name(preset), "folder": str(run.folder),
            "machine": machine(), "finished": time.strftime("%Y-%m-%d %H:%M"), "epochs": timing["epochs"],
            "iterations_per_epoch": timing["iterations_per_epoch"], "training_wall_s": timing["training_wall_s"],
            "timing": timing, "inference": inference, "plateau": plateau(curves.get(PLATEAU_CURVE, [])),
            "curves": curves, "cases": cases}


def _predictions(out: Path, run: Run) -> Path:
    """Where the test predictions of a training go."""
    return out / "predictions" / f"seed{run.seed}" / run.method / f"fold_{run.fold}"


EQUAL_TIME = "stock_time"  # the method of stock nnU-Net trained for as long as ReIsoSeg took (--equal-time)


@dataclass(frozen=True)
class _Dataset:
    """The dataset a benchmark trains on, with what its evaluation needs from dataset.json."""

    id: int
    name: str
    folder: Path
    labels: dict  # dataset.json's labels
    synthetic: bool

    @property
    def foreground(self) -> list[int]:
        return sorted(int(v) for k, v in self.labels.items() if isinstance(v, int) and v > 0 and k != "ignore")


def training_pairs(seeds: Sequence[int], folds: Sequence[int]) -> list[tuple[int, int]]:
    """Every (seed, fold) of the grid seeds x folds, seed by seed."""
    return [(s, f) for s in seeds for f in folds]


def run_benchmark(dataset: str | None = None, preset: str = "smoke",
                  pairs: Sequence[tuple[int, int]] = ((0, 0),), out: str | os.PathLike | None = None,
                  methods: Sequence[str] = ("stock", "reiso"), device: str = "auto", command: str = "") -> Path:
    """Run (or finish) a benchmark and write ``report.md``, ``results.json`` and ``plots/`` in ``out``.
    ``pairs`` are the (seed, fold) trainings of every method (``training_pairs`` makes a grid of them);
    ``methods`` may end with ``stock_time`` (``--equal-time``): stock nnU-Net for ReIsoSeg's wall time."""
    import torch

    pairs = [(int(s), int(f)) for s, f in pairs]
    if not pairs or len(set(pairs)) != len(pairs):
        raise BenchmarkError(f"training pairs {pairs}: give each (seed, fold) once, and at least one")
    if min(min(p) for p in pairs) < 0:
        raise BenchmarkError(f"training pairs {pairs}: seeds and folds are numbers >= 0")

    methods = _check_methods(preset, methods)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ds = _open_dataset(dataset, preset)
    out_dir = Path(out) if out is not None else Path("reisoseg_benchmark") / f"{ds.name}_{preset}"
    check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = ensure_plans(ds.id, ds.name, out_dir, preset)
    try:
        pi_plan = describe_pi_plan(plans, CONFIGURATION)
    except ValueError as e:
        pi_plan = str(e)
    budget = PRESETS[preset]
    missing = [n for n in budget.primary_classes if n not in ds.labels]
    if missing:
        raise BenchmarkError(f"the {preset} preset's primary classes {missing} are not labels of {ds.name} "
                             f"({sorted(ds.labels)}); use a preset made for this dataset")
    primary_classes = [str(ds.labels[n]) for n in budget.primary_classes]
    data = check_dataset(ds.folder, ds.labels)  # looked at before anything trains
    for split, per_class in data.items():
        for c, d in per_class.items():
            if d["objects"]:
                log(f"{split} {c}: {d['objects']} objects spanning a median of {d['median_span']:g} sections, "
                    f"{d['span_4_or_more']:.0%} 4 or more, {d['single_section']:.0%} in one section")
    n_total = len(methods) * len(pairs)
    log(f"{ds.name}: {n_total} trainings ({', '.join(methods)} x (seed, fold) {pairs}), "
        f"preset {preset}: {budget.epochs} epochs x {budget.iterations} iterations on {device}")
    log("primary measures, named before training: " + ", ".join(f"{m} on the {split} cases"
                                                                 for split, m in budget.primary)
        + (f" of {', '.join(budget.primary_classes)}" if primary_classes else " of every class"))
    trainings = train_all(ds, preset, pairs, methods, device, out_dir)
    cfg = plans["configurations"][CONFIGURATION]
    results: BenchmarkResults = {
        "dataset": ds.name, "preset": preset, "budget": asdict(budget), "methods": list(methods),
        "trainers": {m: trainer_name(m, preset) for m in methods}, "pairs": [list(p) for p in pairs],
        "folds": sorted({f for _, f in pairs}), "seeds": sorted({s for s, _ in pairs}),
        "device": device, "machine": machine(), "command": command or f"reisoseg benchmark --preset {preset}",
        "synthetic": ds.synthetic, "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"],
        "spacing": cfg["spacing"], "classes": {str(v): k for k, v in ds.labels.items() if isinstance(v, int)},
        "plans": plans_name(preset), "features_per_stage": cfg["architecture"]["arch_kwargs"].get("features_per_stage"),
        "nnunet_workers": {k: os.environ.get(k) or worker_env().get(k) for k in ("nnUNet_n_proc_DA",
                                                                                "nnUNet_def_n_proc")},
        "primary_measures": [list(p) for p in budget.primary], "primary_classes": primary_classes,
        "reisoseg_info": pi_plan, "data": data,
        "trainings": trainings,
    }
    return write_results(results, out_dir, ds.folder)


BENCHMARK_ENTRIES = {RECORDS, "results", "predictions", "logs", "plots", "report.md", "results.json", "README.md"}


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


def _check_methods(preset: str, methods: Sequence[str]) -> list[str]:
    """Known preset and methods, with the equal-time arm (if asked) last: it needs both others' wall times."""
    if preset not in PRESETS:
        raise BenchmarkError(f"unknown preset {preset}; choose one of {', '.join(PRESETS)}")
    unknown = [m for m in methods if m not in METHODS and m != EQUAL_TIME]
    if unknown:
        raise BenchmarkError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if EQUAL_TIME in methods and not {"stock", "reiso"} <= set(methods):
        raise BenchmarkError("--equal-time trains stock nnU-Net for ReIsoSeg's wall time: it needs both "
                             "stock and reiso in --methods")
    return [m for m in methods if m != EQUAL_TIME] + [EQUAL_TIME] * (EQUAL_TIME in methods)


def _open_dataset(dataset: str | None, preset: str) -> _Dataset:
    dataset_id, dataset_name = ensure_dataset(dataset, preset)
    folder = _env_paths()[0] / dataset_name
    if not folder.is_dir():
        raise BenchmarkError(f"no dataset {dataset_name} in $nnUNet_raw ({folder.parent}): convert it first "
                             "(reisoseg convert), or name one that is there")
    labels = checks.json_shape(
        checks.read_json(folder / "dataset.json", "an nnU-Net dataset.json", "convert the dataset again"),
        str(folder / "dataset.json"), {"labels": dict, "file_ending": str}, "convert the dataset again")["labels"]
    if any(not isinstance(v, int) for v in labels.values()):  # before any planning or training
        raise BenchmarkError(f"{dataset_name} is region-based; the benchmark's evaluation handles label datasets "
                             "only (train regions with nnUNetv2_train -tr nnUNetTrainerReIso)")
    return _Dataset(dataset_id, dataset_name, folder, labels, dataset is None)


def train_all(ds: _Dataset, preset: str, pairs: Sequence[tuple[int, int]], methods: Sequence[str], device: str,
              out_dir: Path) -> list[TrainingRecord]:
    """Every training's record, (seed, fold) pair by pair and method by method; a training with a record of
    this version is not run again."""
    trainings, done, n_total = [], 0, len(pairs) * len(methods)
    with progress_bar(n_total, "benchmark: trainings", "training") as bar:
        for seed, fold in pairs:
            trainings += _train_pair(ds, preset, (seed, fold), methods, device, out_dir, (done, n_total))
            done += len(methods)
            bar.update(len(methods))
    return trainings


def _train_pair(ds: _Dataset, preset: str, pair: tuple[int, int], methods: Sequence[str], device: str,
                out_dir: Path, count: tuple[int, int]) -> list[TrainingRecord]:
    """The records of every method's training on one (seed, fold) pair, trained where no record exists;
    ``count`` is (trainings before this pair, all trainings), for the log."""
    (seed, fold), (done, n_total) = pair, count
    trainings: list[TrainingRecord] = []
    walls: dict[str, float] = {}
    for meth in methods:
        folder = (out_dir / "results" / f"seed{seed}" / ds.name /
                  f"{trainer_name(meth, preset)}__{plans_name(preset)}__{CONFIGURATION}" / f"fold_{fold}")
        run = Run(meth, seed, fold, folder)
        done += 1
        record_file = out_dir / RECORDS / f"{meth}_seed{seed}_fold{fold}.json"
        record = checks.json_shape(checks.read_json(record_file, "a benchmark record", _RECORD_FIX), str(record_file),
                                   {"training_wall_s": (int, float), "cases": list}, _RECORD_FIX) \
            if record_file.is_file() else None
        if record is not None and record.get("record_version") == RECORD_VERSION:
            log(f"training {done}/{n_total}: {run.tag}: using its record {record_file}")
        else:
            log(f"training {done}/{n_total}: {run.tag}")
            train(run, ds.id, preset, device, out_dir, _equal_time_env(run, preset, walls))
            record = _record(run, preset, ds.folder, device, out_dir, ds.foreground, ds.labels.get("ignore"))
            record_file.parent.mkdir(parents=True, exist_ok=True)
            record_file.write_text(json.dumps(record, indent=1, default=float))
        walls[meth] = record["training_wall_s"]
        trainings.append(record)
    return trainings


def _equal_time_env(run: Run, preset: str, walls: dict[str, float]) -> dict[str, str] | None:
    """The epochs of the equal-time arm: the stock budget scaled by ReIsoSeg's wall time in the same pair."""
    if run.method != EQUAL_TIME:
        return None
    budget = PRESETS[preset]
    epochs = max(budget.epochs, round(budget.epochs * walls["reiso"] / walls["stock"]))
    log(f"{run.tag}: {epochs} epochs, the stock budget scaled by ReIsoSeg's wall time "
        f"({walls['reiso']:.0f} s vs {walls['stock']:.0f} s)")
    return {EPOCHS_ENV: str(epochs)}


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

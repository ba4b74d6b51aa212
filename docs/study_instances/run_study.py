"""The instance study: stock nnU-Net trained on boundary targets and decoded by the blockwise watershed, against
stock nnU-Net trained on one object class and decoded by connected components, scored against the instance truth.

    export nnUNet_raw=... nnUNet_preprocessed=...
    python docs/study_instances/run_study.py --out /work/study/instances --pairs 0:0 0:1 0:2      # train + score
    python docs/study_instances/run_study.py --out /work/study/instances --pairs 0:0 0:1 0:2 --report  # report only

Steps, each reusing what a run before finished: (1) two synth datasets from one spec, the same images and
instance ids (``--instances --touching``), labels one object class in one (``Dataset985``) and boundary targets in
the other (``Dataset986``); the share of objects that touch another is said before anything trains; (2) stock
nnU-Net trained on each by ``reisoseg benchmark`` (its fixed-budget trainers, records and test predictions), the
same (seed, fold) pairs, the preset's budget; (3) every test case predicted by ``predict-volume`` with each
training's model, ``--instances`` (components) for the one-class model, ``--instances watershed`` for the boundary
model, with the time of each instance pass; (4) every output scored by ``evaluate --instances`` against the case's
instance ids; one record per training and decoding in ``OUT/records``; (5) the verdicts over the trainings (the
benchmark's statistics: paired t-interval, two-level bootstrap over pairs and cases, Holm over the primaries),
written to ``docs/study_instances/results.json`` and ``report.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PRIMARY = (("test", "ap75"), ("test", "ap50"))  # named before training
SECONDARY = ("merged_objects", "split_objects", "voi_merge", "voi_split", "dice")
ARMS = {"stock": ("one object class + connected components", "components"),
        "watershed": ("boundary targets + seeded watershed", "watershed")}
DATASETS = {"stock": (985, "SynthTouchOneClass"), "watershed": (986, "SynthTouchBoundary")}


def spec(boundary_nm: float | None, cases: tuple[int, int, tuple[int, int, int]]):
    """The synth data of both datasets (the phantom preset's grid, touching pairs kept apart by their ids)."""
    from nnunetv2_reisoseg.data.synth import SynthSpec

    n_train, n_test, shape = cases
    return SynthSpec(cases=n_train, test_cases=n_test, shape=shape, anisotropy=8, xy_nm=6.0, seed=0, instances=True,
                     touching=0.3, boundary_nm=boundary_nm)


def make_data(boundary_nm: float, cases: tuple[int, int, tuple[int, int, int]]) -> dict:
    """Both datasets (generated once) and what the instance ids contain: objects and the share touching another."""
    from nnunetv2_reisoseg.benchmark.datacheck import check_instances
    from nnunetv2_reisoseg.data.synth import generate_dataset

    raw = Path(os.environ["nnUNet_raw"])
    for arm, (dataset_id, name) in DATASETS.items():
        folder = raw / f"Dataset{dataset_id}_{name}"
        if not folder.is_dir():
            generate_dataset(raw, dataset_id, name, spec(boundary_nm if arm == "watershed" else None, cases))
    folders = {arm: raw / f"Dataset{i}_{n}" for arm, (i, n) in DATASETS.items()}
    a, b = (sorted((folders[arm] / "instancesTs").glob("*.nii.gz")) for arm in ARMS)
    from nnunetv2_reisoseg.io.volumes import read_image

    if not all(np.array_equal(read_image(x)[0], read_image(y)[0]) for x, y in zip(a, b)):
        raise SystemExit("the two datasets' instance ids differ: generate them again from one spec")
    return {"folders": {k: str(v) for k, v in folders.items()}, "instances": check_instances(folders["stock"])}


def train(out: Path, preset: str, pairs: list[tuple[int, int]]) -> dict[str, Path]:
    """Stock nnU-Net on each dataset, by the benchmark (records, models and test predictions in OUT/<arm>)."""
    from nnunetv2_reisoseg.benchmark.runner import run_benchmark

    for arm, (dataset_id, _) in DATASETS.items():
        run_benchmark(str(dataset_id), preset, pairs, out / arm, ("stock",), "cpu",
                      command=f"docs/study_instances/run_study.py ({arm} arm)")
    return {arm: out / arm for arm in ARMS}


def _h5(nifti: Path, dest: Path, key: str) -> str:
    """A test case as HDF5 with its voxel size (what predict-volume and evaluate read), written once."""
    import h5py

    from nnunetv2_reisoseg.io.volumes import read_image

    if not dest.is_file():
        array, spacing = read_image(nifti)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(dest, "w") as f:
            f.create_dataset(key, data=array).attrs["resolution"] = spacing
    return f"{dest}:{key}"


def decode_and_score(out: Path, arm: str, folder: Path, seed: int, fold: int, preset: str) -> dict:
    """One training's record: every test case predicted by predict-volume with this arm's decoding, then scored
    by evaluate --instances against the instance ids."""
    from nnunetv2_reisoseg.benchmark.methods import METHODS
    from nnunetv2_reisoseg.benchmark.presets import CONFIGURATION, PRESETS
    from nnunetv2_reisoseg.evaluation.evaluate import ReadOptions, evaluate_files
    from nnunetv2_reisoseg.volume.predict import InstanceOptions, predict_volume
    from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions

    budget = PRESETS[preset]
    dataset_id, name = DATASETS[arm]
    model = (out / arm / "results" / f"seed{seed}" / f"Dataset{dataset_id}_{name}" /
             f"{METHODS['stock'].trainer_name(budget)}__{budget.plans_name}__{CONFIGURATION}")
    cases, seconds = [], {}
    for image in sorted((folder / "imagesTs").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        src = _h5(image, out / "inputs" / f"{case}.h5", "raw")
        truth = _h5(folder / "instancesTs" / f"{case}.nii.gz", out / "truth" / f"{case}.h5", "ids")
        dest = out / "decoded" / arm / f"seed{seed}_fold{fold}" / f"{case}.zarr"
        if not dest.is_dir():
            summary = predict_volume(src, dest, model, PredictOptions(folds=(fold,), device="cpu", tta=False,
                                                                      image=False),
                                     RunOptions(progress=False), InstanceOptions(mode=ARMS[arm][1]))
            seconds[case] = summary.instance_seconds
        metrics = evaluate_files(f"{dest}:labels/instances", truth, reading=ReadOptions(instances=True))["1"]
        # the case's number: both arms' datasets name the same case differently, and cases pair by name
        cases.append({"split": "test", "case": case.rsplit("_", 1)[-1], "class": 1, "prediction": str(dest),
                      "reference": truth, "metrics": metrics})
    return {"method": arm, "seed": seed, "fold": fold, "decoding": ARMS[arm][1], "instance_seconds": seconds,
            "cases": cases, "finished": time.strftime("%Y-%m-%d %H:%M")}


def records(out: Path, pairs: list[tuple[int, int]], preset: str, data: dict) -> list[dict]:
    """Every training's record, decoded and scored where no record exists yet."""
    from nnunetv2_reisoseg.benchmark.environment import ext_trainer_path

    # the models were trained by the benchmark's fixed-budget trainers, which only its folder defines
    os.environ["nnUNet_extTrainer"] = ext_trainer_path(os.environ.get("nnUNet_extTrainer"))
    found = []
    for seed, fold in pairs:
        for arm in ARMS:
            path = out / "records" / f"{arm}_seed{seed}_fold{fold}.json"
            if not path.is_file():
                rec = decode_and_score(out, arm, Path(data["folders"][arm]), seed, fold, preset)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rec, indent=1, default=float))
            found.append(json.loads(path.read_text()))
    return found


def figure(out: Path, recs: list[dict], data: dict, path: Path) -> dict | None:
    """One touching pair of a test case, in the section where its contact is longest: the image, the instance
    truth, components (the stock arm) and the watershed, from the first pair's decoded outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import zarr

    from nnunetv2_reisoseg.data.instances import touching_ids
    from nnunetv2_reisoseg.io.volumes import read_image

    first = {r["method"]: r for r in recs if (r["seed"], r["fold"]) == (recs[0]["seed"], recs[0]["fold"])}
    best = None
    for c in first["stock"]["cases"]:
        truth = read_image(Path(data["folders"]["stock"]) / "instancesTs" / f"{_case_file(data, c['case'])}")[0]
        if not touching_ids(truth):
            continue
        contact = [(np.count_nonzero((t[:, :-1] != t[:, 1:]) & (t[:, :-1] > 0) & (t[:, 1:] > 0)), z)
                   for z, t in enumerate(truth)]
        n, z = max(contact)
        if best is None or n > best[0]:
            best = (n, z, c["case"], truth)
    if best is None:
        return None
    _, z, case, truth = best
    image = read_image(Path(data["folders"]["stock"]) / "imagesTs" / _case_file(data, case, "_0000"))[0]
    panels = [("image", image[z], "gray"), ("instance truth", truth[z], "tab20")]
    for arm in ARMS:
        row = next(c for c in first[arm]["cases"] if c["case"] == case)
        ids = zarr.open_array(f"{row['prediction']}/labels/instances/0", mode="r")[z]
        panels.append((f"{ARMS[arm][0]} (AP-75 {row['metrics']['ap75']:.2f})", ids, "tab20"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (title, img, cmap) in zip(axes, panels):
        shown = img if cmap == "gray" else np.ma.masked_equal(np.asarray(img) % 20 + (np.asarray(img) > 0), 0)
        ax.imshow(shown, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"test case {case}, section {z}: objects in colours (one per id)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return {"case": case, "section": int(z), "path": str(path)}


def _case_file(data: dict, case: str, suffix: str = "") -> str:
    """The file of test case number ``case`` in the one-class dataset."""
    name = DATASETS["stock"][1].lower()
    return f"{name}_{case}{suffix}.nii.gz"


def summarize_records(recs: list[dict]) -> dict:
    from nnunetv2_reisoseg.benchmark.stats import flatten_cases, summarize

    return summarize(flatten_cases(recs), list(ARMS), PRIMARY,
                     titles={arm: f"stock nnU-Net, {title}" for arm, (title, _) in ARMS.items()})


def write_report(results: dict, path: Path) -> Path:
    """report.md from results.json: the primaries' verdicts, the secondaries, every training, the decoding time."""
    from nnunetv2_reisoseg.benchmark.metrics import metric_titles
    from nnunetv2_reisoseg.benchmark.stats import fmt_paired, fmt_stats

    titles = metric_titles()
    per_metric = results["summary"]["test"]["1"]
    data = results["data"]
    lines = ["# The instance study: results", "",
             f"Stock nnU-Net at the `{results['preset']}` preset's budget on the (seed, fold) pairs "
             f"{', '.join(f'{s}:{f}' for s, f in results['pairs'])}; the test cases against their instance ids. "
             f"Data: {data['test']['cases']} test cases, {data['test']['objects']} objects, "
             f"{data['test']['touching']} touching another (training: {data['training']['objects']} objects, "
             f"{data['training']['touching']} touching). The question, the arms and the rules: README.md.", "",
             "Arms: " + "; ".join(f"`{k}`: {v}" for k, v in results["arms"].items()) + ".", "",
             "| measure | stock (mean over trainings) | watershed | watershed - stock: t-interval over trainings; "
             "two-level bootstrap; Holm | verdict |", "|---|---|---|---|---|"]
    for primary in (True, False):
        for m, entry in per_metric.items():
            if entry["primary"] != primary:
                continue
            p = entry["paired"]["watershed - stock"]
            name = f"**{titles.get(m, m)}** (primary)" if primary else titles.get(m, m)
            lines.append(f"| {name} | {fmt_stats(entry['trainings']['stock'])} | "
                         f"{fmt_stats(entry['trainings']['watershed'])} | {fmt_paired(p)} | {p.get('verdict', '')} |")
    lines += ["", "Every training (mean over its test cases):", "",
              "| arm | seed:fold | AP-75 | AP-50 | merged objects | split objects | seconds of the instance pass per "
              "case |", "|---|---|---|---|---|---|---|"]
    for rec in sorted(results["trainings"], key=lambda r: (r["method"], r["seed"], r["fold"])):
        mean = {m: np.mean([c["metrics"][m] for c in rec["cases"] if c["metrics"].get(m) is not None])
                for m in ("ap75", "ap50", "merged_objects", "split_objects")}
        secs = list(rec["instance_seconds"].values())  # empty where the cases were decoded by an earlier run
        lines.append(f"| {rec['method']} | {rec['seed']}:{rec['fold']} | {mean['ap75']:.3f} | {mean['ap50']:.3f} | "
                     f"{mean['merged_objects']:.2f} | {mean['split_objects']:.2f} | "
                     f"{f'{np.mean(secs):.2f}' if secs else 'n/a'} |")
    if results.get("figure"):
        fig = results["figure"]
        lines += ["", f"![a touching pair](plots/{Path(fig['path']).name})", "",
                  f"Test case {fig['case']}, section {fig['section']}, from the first pair's models."]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="models, predictions and records (outside git)")
    ap.add_argument("--pairs", nargs="+", default=["0:0", "0:1", "0:2"], help="SEED:FOLD trainings of each arm")
    ap.add_argument("--preset", default="phantom", help="the benchmark preset whose budget both arms train")
    ap.add_argument("--boundary-nm", type=float, default=12.0, help="the boundary targets' thickness")
    ap.add_argument("--cases", type=int, nargs=2, default=(40, 20), metavar=("TRAIN", "TEST"))
    ap.add_argument("--shape", type=int, nargs=3, default=(20, 128, 128), metavar=("Z", "Y", "X"))
    ap.add_argument("--results", type=Path, default=HERE / "results.json", help="where results.json goes")
    ap.add_argument("--report", action="store_true", help="only the report, from the records in OUT/records")
    a = ap.parse_args()
    pairs = [tuple(int(v) for v in p.split(":")) for p in a.pairs]
    data = make_data(a.boundary_nm, (a.cases[0], a.cases[1], tuple(a.shape)))
    print(json.dumps(data["instances"]), flush=True)  # looked at before anything trains
    if not a.report:
        train(a.out, a.preset, pairs)
    recs = records(a.out, pairs, a.preset, data)
    results = {"pairs": [list(p) for p in pairs], "preset": a.preset, "boundary_nm": a.boundary_nm,
               "primary_measures": [list(p) for p in PRIMARY], "arms": {k: v[0] for k, v in ARMS.items()},
               "data": data["instances"], "summary": summarize_records(recs), "trainings": recs,
               "figure": figure(a.out, recs, data, a.results.parent / "plots" / "touching_pair.png")}
    a.results.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {a.results} and {write_report(results, a.results.parent / 'report.md')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The same results before and after a change that must change nothing (issue 20's refactor, issue 37's layout):
the labels and instances of ``reisoseg predict-volume``, ``reisoseg evaluate`` of them in memory and block by
block, and every number of ``reisoseg benchmark --preset tiny``, computed by this checkout and by a git revision,
each through the ``reisoseg`` command in its own processes.

    python perf/same_results.py --before REV

Prints what it compared and exits 1 on any difference. Timings, machine names and paths are not compared;
everything trained, predicted or measured is (losses and pseudo Dice per epoch, every case's metrics, the
verdicts and their intervals). CPU, about 10 minutes on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "perf"))
from predict_volume import make_model, make_volume  # noqa: E402 (the same model and volume as the timing)

# record fields that depend on the machine or the moment, not on what was computed
VOLATILE = {"timing", "training_wall_s", "inference", "machine", "finished", "folder", "prediction", "reference",
            "epoch_end_s", "costs", "command"}


def reisoseg(args: list[str], source: Path, env: dict | None = None) -> str:
    """``python -m nnunetv2_reisoseg ARGS`` importing the package from ``source``: run there, since ``-m`` puts
    the working directory before PYTHONPATH (and nnU-Net's training subprocesses inherit both)."""
    full = {**os.environ, **(env or {}), "PYTHONPATH": str(source)}
    p = subprocess.run([sys.executable, "-m", "nnunetv2_reisoseg", *args], env=full, capture_output=True,
                       text=True, cwd=source)
    if p.returncode != 0:
        raise SystemExit(f"reisoseg {' '.join(args)} failed with {source}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def strip(obj):
    """``obj`` without the volatile fields, at any depth."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))
    return [] if same else [f"{where}: {a!r} != {b!r}"]


def run_version(tmp: Path, name: str, source: Path, model: Path, volume: Path) -> dict:
    import zarr

    out = tmp / f"{name}.zarr"
    reisoseg(["predict-volume", "-i", f"{volume}:raw", "-o", str(out), "-m", str(model), "-device", "cpu",
              "--disable_tta", "--block-size", "16", "64", "64", "--instances"], source)
    evaluated = {mode: json.loads(reisoseg(["evaluate", "-p", str(out), "-r", f"{volume}:ref", *extra], source))
                 for mode, extra in (("memory", []), ("blockwise", ["--blockwise", "--block-size", "8", "64", "64"]))}
    env = {"nnUNet_raw": str(tmp / f"raw_{name}"), "nnUNet_preprocessed": str(tmp / f"pre_{name}"),
           "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "f"}
    reisoseg(["benchmark", "--preset", "tiny", "--device", "cpu", "-o", str(tmp / f"bench_{name}")], source, env)
    probe = subprocess.run([sys.executable, "-c", "import nnunetv2_reisoseg; print(nnunetv2_reisoseg.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(source)}, cwd=source, capture_output=True, text=True)
    assert probe.stdout.strip().startswith(str(source)), f"{name} imported {probe.stdout.strip()}, not {source}"
    # the layout before issue 29 kept the labels at the root and the objects in a CSV file inside the store
    new = (out / "labels" / "semantic").is_dir()
    csv = out / "labels" / "instances" / "objects.csv"
    return {"labels": zarr.open_array(str(out / ("labels/semantic/0" if new else "0")), mode="r")[:],
            "instances": zarr.open_array(str(out / "labels" / "instances" / "0"), mode="r")[:],
            "objects": csv.read_text() if csv.is_file() else reisoseg(["objects", str(out)], source),
            "evaluate": evaluated,
            "results": strip(json.loads((tmp / f"bench_{name}" / "results.json").read_text()))}


def _add_reference(volume: Path, spacing) -> None:
    """A reference the predictions are evaluated against: the bright parts of the volume, as labels."""
    import h5py

    with h5py.File(volume, "a") as f:
        f.create_dataset("ref", data=(f["raw"][...] > 150).astype(np.uint8), chunks=(8, 64, 64)).attrs[
            "resolution"] = spacing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, metavar="REV", help="the git revision to compare this checkout with")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "before"), a.before],
                       check=True, capture_output=True)
        try:
            spacing, _ = make_model(tmp / "model", ROOT / "tests" / "fixtures" / "plans" / "tiny_40x10x10.json")
            make_volume(tmp / "vol.h5", [24, 160, 150], spacing)
            _add_reference(tmp / "vol.h5", spacing)
            runs = {name: run_version(tmp, name, source, tmp / "model", tmp / "vol.h5")
                    for name, source in (("before", tmp / "before"), ("now", ROOT))}
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "before")],
                           check=False, capture_output=True)
    b, n = runs["before"], runs["now"]
    report = {
        "predict-volume labels": np.array_equal(b["labels"], n["labels"]),
        "predict-volume instances": np.array_equal(b["instances"], n["instances"]),
        "objects (CSV)": b["objects"] == n["objects"],
        "evaluate in memory and blockwise (JSON)": not differences(b["evaluate"], n["evaluate"]),
    }
    added = sorted(set(n["results"]) - set(b["results"]))  # fields this checkout adds (e.g. the data check)
    diff = differences(b["results"], {k: v for k, v in n["results"].items() if k not in added})
    report["benchmark --preset tiny results.json (all but timings, machine, paths)"] = not diff
    n_trainings = len(n["results"]["trainings"])
    n_cases = sum(len(t["cases"]) for t in n["results"]["trainings"])
    print(f"{a.before} against this checkout ({ROOT}):")
    print(f"- predict-volume: {b['labels'].size:,} voxels, {int(n['instances'].max())} objects")
    print(f"- benchmark --preset tiny: {n_trainings} trainings, {n_cases} case rows, every metric, curve and verdict")
    for what, ok in report.items():
        print(f"  {'same' if ok else 'DIFFERENT'}: {what}")
    for d in diff[:20]:
        print(f"    {d}")
    if added:
        print(f"  new in this checkout's results.json (not compared): {', '.join(added)}")
    sys.exit(0 if all(report.values()) else 1)


if __name__ == "__main__":
    main()

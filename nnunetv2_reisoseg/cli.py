"""``reisoseg``: tools around the ReIsoSeg trainers (also ``python -m nnunetv2_reisoseg``).

This module parses and dispatches: every decision and every file read is in the command's own module."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence


def _trainer_path() -> None:
    from nnunetv2_reisoseg import trainer_dir

    print(trainer_dir())


def _int_value(text: str) -> int:
    return int(text, 0)  # accepts 0xffffffffffffffff as well as decimal


def _seed_fold(text: str) -> tuple[int, int]:
    try:
        seed, fold = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SEED:FOLD (e.g. 1:0)") from None
    return seed, fold


# plain errors of a command's module that are its user's (a missing file, a clash, a bad value); the plugin's own
# are ReisosegErrors, which every command reports alike
_FILE_ERRORS = (FileNotFoundError, FileExistsError, ValueError)
_CLASH_ERRORS = (FileExistsError, ValueError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reisoseg", description=__doc__)
    p.set_defaults(user_errors=())
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_info, _add_trainer_path, _add_export_stock, _add_import_stock, _add_synth, _add_convert,
                _add_predict_volume, _add_objects, _add_evaluate, _add_benchmark):
        add(sub)
    return p


def _add_info(sub: argparse._SubParsersAction) -> None:
    from nnunetv2_reisoseg.method.knobs import PI_REDUCTION

    s = sub.add_parser("info", help="what the PI module will do on a dataset's plans")
    s.add_argument("dataset", help="dataset id or name (or a plans .json file)")
    s.add_argument("-c", "--configuration", default="3d_fullres")
    s.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier")
    s.add_argument("--pi-levels", type=int, nargs="+", default=None, help="override the automatic PI levels")
    s.add_argument("--reduction", type=int, default=PI_REDUCTION, help="PI module channel reduction")
    s.set_defaults(func="nnunetv2_reisoseg.method.describe:info_command")


def _add_trainer_path(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("trainer-path", help="print the folder to put in nnUNet_extTrainer")
    s.set_defaults(func=_trainer_path)


def _add_export_stock(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export-stock", help="write a stock nnUNetTrainer model folder (PI weights dropped)")
    s.add_argument("model_folder", help="trained model folder, e.g. .../nnUNetTrainerReIso__nnUNetPlans__3d_fullres")
    s.add_argument("-o", "--output", required=True, help="output model folder")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    s.set_defaults(func="nnunetv2_reisoseg.training.export:export_command", user_errors=_FILE_ERRORS)


def _add_import_stock(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("import-stock", help="a stock nnU-Net checkpoint plus a fresh isotropic branch, for "
                                            "nnUNetv2_train -tr nnUNetTrainerReIso -pretrained_weights")
    s.add_argument("checkpoint", help="stock checkpoint, e.g. .../nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0/"
                                      "checkpoint_final.pth")
    s.add_argument("-o", "--output", required=True, help="checkpoint to write (give it to -pretrained_weights)")
    s.add_argument("-tr", "--trainer", default="nnUNetTrainerReIso",
                   help="the ReIsoSeg trainer you will train with (its PI levels and reduction shape the branch)")
    s.add_argument("--plans", default=None, help="plans .json to build for (default: the checkpoint's own)")
    s.add_argument("-c", "--configuration", default=None, help="configuration (default: the checkpoint's own)")
    s.add_argument("--seed", type=int, default=0, help="seed of the isotropic branch's initialisation")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.set_defaults(func="nnunetv2_reisoseg.training.export:import_command", user_errors=_FILE_ERRORS)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("synth", help="generate a synthetic anisotropic EM dataset in $nnUNet_raw")
    s.add_argument("--dataset-id", type=int, default=901)
    s.add_argument("--name", default="SynthEM")
    s.add_argument("--cases", type=int, default=20)
    s.add_argument("--test-cases", type=int, default=0)
    s.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256), metavar=("Z", "Y", "X"),
                   help="anisotropic grid shape")
    s.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxel size in nm, e.g. 40 10 10 (overrides --anisotropy and --xy-nm); object sizes are "
                        "physical (nm) and do not depend on --shape")
    s.add_argument("--anisotropy", type=int, default=8, help="section thickness / lateral pixel size (shorthand)")
    s.add_argument("--xy-nm", type=float, default=5.0, help="lateral pixel size in nm (shorthand)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--membranes", action="store_true", help="label cell membranes as a second class (2)")
    s.add_argument("--missing-sections", type=float, default=0.0, metavar="P",
                   help="probability that a case has one section lost to noise")
    s.add_argument("--instances", action="store_true",
                   help="one id per mitochondrion, each with its own membrane, kept in instancesTr/ and instancesTs/")
    s.add_argument("--touching", type=float, default=0.0, metavar="P",
                   help="with --instances: probability that a mitochondrion gets a sibling pressed against it")
    s.add_argument("--boundary-nm", type=float, default=None, metavar="NM",
                   help="train boundary targets (background, mitochondria interior, boundary NM nm thick per section); "
                        "implies --instances")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    s.set_defaults(func="nnunetv2_reisoseg.data.synth:SynthCommand", user_errors=_CLASH_ERRORS)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("convert", help="turn EM volumes (HDF5, TIFF, slice folders, zarr, MRC) into an nnU-Net "
                                       "raw dataset in $nnUNet_raw")
    s.add_argument("--image", action="append", required=True, metavar="PATH[:KEY]",
                   help="image volume; repeat for several volumes (HDF5/zarr take :KEY, e.g. sample_A.h5:volumes/raw)")
    s.add_argument("--labels", action="append", required=True, metavar="PATH[:KEY]",
                   help="label volume of the --image in the same position")
    s.add_argument("--test-image", action="append", default=[], metavar="PATH[:KEY]",
                   help="held-out volume -> imagesTs")
    s.add_argument("--test-labels", action="append", default=[], metavar="PATH[:KEY]", help="its labels -> labelsTs")
    s.add_argument("--dataset-id", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in nm (overrides what the files say; needed when they say nothing)")
    s.add_argument("--split", type=int, default=1, help="cut each training volume into N blocks (cases)")
    s.add_argument("--split-axis", default="auto", choices=("auto", "z", "y", "x"),
                   help="axis to cut along; auto = largest physical extent, lateral on ties")
    s.add_argument("--binary", action="store_true", help="every non-background value (e.g. instance ids) -> 1")
    s.add_argument("--instances", action="store_true",
                   help="the labels are object ids: kept in instancesTr/ and instancesTs/ (downsampled by majority; "
                        "nnU-Net ignores them), nnU-Net trains one object class")
    s.add_argument("--boundary-nm", type=float, default=None, metavar="NM",
                   help="the labels are object ids (as --instances): nnU-Net trains boundary targets (background, "
                        "interior, boundary), the contour NM nm thick in each section plus contacts across sections")
    s.add_argument("--label-map", nargs="+", default=[], metavar="SRC:DST", help="map label values, e.g. 3:1 7:2")
    s.add_argument("--background", type=_int_value, nargs="+", default=None, metavar="V",
                   help="values meaning background (default: 0 and CREMI's 0xffffffffffffffff)")
    s.add_argument("--ignore-value", type=_int_value, nargs="+", default=[], metavar="V",
                   help="values meaning 'not annotated' -> nnU-Net's ignore label")
    s.add_argument("--unmapped-background", action="store_true",
                   help="label values missing from --label-map are background (default: an error)")
    s.add_argument("--threshold", type=float, default=None, metavar="V",
                   help="anti-aliased masks (0/255 with a few values between): values >= V are class 1")
    s.add_argument("--downsample", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="integer factors: images by block mean, labels by majority (ties to the higher class)")
    s.add_argument("--hold-out", type=float, default=0.0, metavar="FRACTION",
                   help="keep the last FRACTION of each training volume along the split axis as a test case "
                        "(spatially separate from the training blocks)")
    s.add_argument("--class-names", nargs="+", default=None, help="names of classes 1..K for dataset.json")
    s.add_argument("--channel-name", default="EM")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    s.set_defaults(func="nnunetv2_reisoseg.data.convert.command:ConvertCommand", user_errors=_CLASH_ERRORS)


def _add_dask(s: argparse.ArgumentParser, what: str) -> None:
    s.add_argument("--workers", type=int, default=0, help=f"run {what} on a local dask cluster of N processes")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help=f"run {what} on an existing dask cluster (tcp://host:8786); workers must see the same files")


def _add_predict_volume(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("predict-volume", help="segment a whole volume (HDF5, zarr / OME-Zarr, MRC, TIFF) block by "
                                              "block with any nnU-Net 3D model, into an OME-Zarr")
    s.add_argument("-i", "--input", required=True, metavar="VOLUME",
                   help="PATH[:KEY]: file.h5:volumes/raw, volume.zarr (OME-Zarr: full resolution), .mrc, .tif")
    s.add_argument("-o", "--output", required=True, metavar="OUT.zarr",
                   help="OME-Zarr to write: the image with its labels (labels/semantic, labels/instances) and pyramids")
    s.add_argument("-m", "--model", required=True, metavar="MODEL_FOLDER",
                   help="trained model folder (plans.json, dataset.json, fold_X/), e.g. $nnUNet_results/Dataset901_X/"
                        "nnUNetTrainerReIso__nnUNetPlans__3d_fullres")
    s.add_argument("-f", "--folds", nargs="+", default=["0"], help="folds to ensemble (default 0)")
    s.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth")
    s.add_argument("--block-size", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxels per block (input axes; rounded up to whole output chunks). Memory grows with it; "
                        "every tile is predicted once whatever the blocks. Default: 6 patches per axis")
    s.add_argument("-step_size", type=float, default=0.5, help="sliding-window step as a fraction of the patch")
    s.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    s.add_argument("-device", default="cuda", choices=("cuda", "cpu"))
    _add_dask(s, "the blocks")
    s.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxel size in nm when the file has none (or a wrong one)")
    s.add_argument("--save_probabilities", action="store_true", help="also write per-class probabilities (float16)")
    s.add_argument("--no-image", action="store_true",
                   help="leave the input volume out of the output (by default it is the image under the labels)")
    s.add_argument("--c", action="store_true", help="continue an interrupted run (same settings), redoing unfinished "
                                                    "blocks only")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.add_argument("--instances", nargs="?", const="components", default=None, choices=("components", "watershed"),
                   help="also label the objects over the whole volume: OUT.zarr/labels/instances, with the table "
                        "OUT.zarr/objects (reisoseg objects OUT.zarr prints it as CSV). components (the default): 3D "
                        "connected components of each class; watershed: for a model trained on boundary targets "
                        "(convert/synth --boundary-nm), seeds grown inside the foreground, which separates touching "
                        "objects (keeps the probabilities it grows from)")
    s.add_argument("--min-size", type=float, default=None, metavar="NM3",
                   help="with --instances: drop objects smaller than this volume in nm^3 (default: keep all)")
    s.add_argument("--connectivity", type=int, default=None, choices=(6, 18, 26),
                   help="with --instances: voxel neighbourhood of an object (default 26)")
    for flag, what in (("--seed-threshold", "interior probability above which a voxel may seed (default 0.7)"),
                       ("--boundary-threshold", "boundary probability below which a voxel may seed (default 0.3)"),
                       ("--foreground-threshold", "foreground probability (1 - background) above which the seeds "
                                                  "grow (default 0.5)"),
                       ("--halo-nm", "context each block reads around it (default 250 nm)"),
                       ("--min-seed-nm3", "smaller seeds are dropped (default 50000 nm^3)")):
        s.add_argument(flag, type=float, default=None, help=f"with --instances watershed: {what}")
    s.set_defaults(func="nnunetv2_reisoseg.volume.command:PredictCommand")


def _add_objects(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("objects", help="print the objects of a predict-volume --instances output as CSV")
    s.add_argument("output", metavar="OUT.zarr", help="predict-volume's output")
    s.set_defaults(func="nnunetv2_reisoseg.volume.output:objects_command")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from nnunetv2_reisoseg.io.labels import DEFAULT_BACKGROUND

    s = sub.add_parser("evaluate", help="voxel, surface and object (EM) measures of a segmentation against a "
                                        "reference, as JSON per class")
    s.add_argument("-p", "--prediction", required=True, metavar="PATH[:KEY]",
                   help="predicted labels: NIfTI/MHA/NRRD, file.h5:key, zarr / OME-Zarr (predict-volume's output), "
                        "TIFF, folder of slices, MRC")
    s.add_argument("-r", "--reference", required=True, metavar="PATH[:KEY]", help="reference labels, same grid")
    s.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxel size in nm (default: from the files, which must agree)")
    s.add_argument("--classes", type=int, nargs="+", default=None,
                   help="class labels to evaluate (default: every non-zero label in either volume)")
    s.add_argument("--probabilities", default=None, metavar="PATH[:KEY]",
                   help="predicted probabilities (C, Z, Y, X): nnU-Net's .npz, OUT.zarr/probabilities, file.h5:key; "
                        "rank predicted objects for AP by their mean probability (default: by size)")
    s.add_argument("--connectivity", type=int, default=26, choices=(6, 18, 26), help="3D connectivity of objects")
    s.add_argument("--ignore-label", type=int, default=None, metavar="V",
                   help="reference value meaning 'not annotated': those voxels count nowhere")
    s.add_argument("--background", type=_int_value, nargs="+", default=list(DEFAULT_BACKGROUND), metavar="V",
                   help="label values meaning 'no object' in either volume (default: 0 and CREMI's "
                        "0xffffffffffffffff); other values must be non-negative integers")
    s.add_argument("--binary", action="store_true",
                   help="every non-background value of either volume is class 1: instance ids (CREMI clefts, "
                        "MitoEM) against a semantic prediction, as convert --binary")
    s.add_argument("--instances", action="store_true",
                   help="both volumes hold object ids (instance truth, predict-volume's labels/instances): each id is "
                        "one object, scored without connected components, as one class (1)")
    s.add_argument("--allow-unfinished", action="store_true",
                   help="score a predict-volume output whose run has not finished (refused by default)")
    s.add_argument("-o", "--output", default=None, metavar="metrics.json",
                   help="also write the JSON here (after printing it)")
    s.add_argument("--overwrite", action="store_true", help="replace an -o file that evaluate wrote")
    s.add_argument("--blockwise", action="store_true",
                   help="evaluate block by block in bounded memory (automatic above 2^28 voxels); surface distances "
                        "are then null")
    s.add_argument("--block-size", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxels per block of --blockwise (default 64 1024 1024)")
    _add_dask(s, "--blockwise")
    s.add_argument("--work-dir", default=None, metavar="DIR",
                   help="where --blockwise keeps its scratch (object ids, compressed; removed at the end)")
    s.set_defaults(func="nnunetv2_reisoseg.evaluation.command:EvaluateCommand")


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    from nnunetv2_reisoseg.benchmark.methods import METHODS
    from nnunetv2_reisoseg.benchmark.presets import PRESETS

    s = sub.add_parser("benchmark", help="train and evaluate stock nnU-Net and ReIsoSeg side by side")
    s.add_argument("dataset", nargs="?", default=None,
                   help="dataset id or name in $nnUNet_raw (default: generate the preset's synthetic EM dataset)")
    s.add_argument("--preset", default="smoke", choices=tuple(PRESETS), help="training budget (and the synthetic "
                   "dataset it generates): " + "; ".join(f"{n}: {b.note}" for n, b in PRESETS.items() if b.note))
    s.add_argument("--folds", type=int, nargs="+", default=None, help="folds to train (default 0)")
    s.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds to train (default 0); every method trains each seed on each fold")
    s.add_argument("--pairs", type=_seed_fold, nargs="+", default=None, metavar="SEED:FOLD",
                   help="the (seed, fold) trainings, instead of the grid --seeds x --folds: e.g. 0:0 0:1 0:2 0:3 1:0 "
                        "for 5 pairs on a dataset with 4 folds")
    s.add_argument("--methods", nargs="+", default=["stock", "reiso"], choices=tuple(METHODS),
                   help="; ".join(f"{m.name}: {m.title} ({m.trainer})" for m in METHODS.values()))
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    s.add_argument("--equal-time", action="store_true",
                   help="also train stock nnU-Net for as many epochs as fit in ReIsoSeg's training time")
    s.add_argument("-o", "--output", default=None,
                   help="output folder (default reisoseg_benchmark/<dataset>_<preset>); re-running reuses "
                        "the trainings it holds")
    s.set_defaults(func="nnunetv2_reisoseg.benchmark.runner:BenchmarkCommand")


DEBUG_ENV = "REISOSEG_DEBUG"  # 1: let an unexpected error show its traceback


def _entry(func: str | Callable) -> Callable:
    """A parser's entry point, a function or a command class: ``module:name`` is imported only when its command
    runs (a fast --help)."""
    if callable(func):
        return func
    module, name = func.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure ends as one line on stderr and a non-zero exit."""
    from nnunetv2_reisoseg.errors import ReisosegError

    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("command", "func", "user_errors")}
    try:
        entry = _entry(args.func)
        if isinstance(entry, type):  # a command class: built from the options, then run
            entry(**options).run()
        else:
            entry(**options)
        return 0
    except args.user_errors as e:
        raise SystemExit(f"{args.command}: {e}") from None
    except ReisosegError as e:  # whatever module raised it, on whatever code path
        text = str(e)
        raise SystemExit(text if text.startswith(f"{args.command}:") else f"{args.command}: {text}") from None
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as e:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise SystemExit(f"{args.command}: unexpected {type(e).__name__}: {first}. This is a bug of reisoseg or of a "
                         f"library it calls: rerun with {DEBUG_ENV}=1 for the traceback, and report it") from None


if __name__ == "__main__":
    sys.exit(main())

"""``reisoseg``: tools around the ReIsoSeg trainers (also ``python -m nnunetv2_reisoseg``)."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _load_plans(dataset: str, plans: str) -> dict:
    """Plans from a .json path, or from $nnUNet_preprocessed/<dataset>/<plans>.json."""
    from nnunetv2_reisoseg.io.checks import read_plans

    if dataset.endswith(".json"):
        return read_plans(dataset)
    root = os.environ.get("nnUNet_preprocessed")
    if not root:
        raise SystemExit("info: nnUNet_preprocessed is not set: export it (see nnU-Net's setting_up_paths.md).")
    name = _dataset_folder(Path(root), dataset)
    path = Path(root) / name / f"{plans}.json"
    if not path.is_file():
        raise SystemExit(f"info: {path} not found: run nnUNetv2_plan_and_preprocess -d {dataset} first.")
    return read_plans(path)


def _dataset_folder(root: Path, dataset: str) -> str:
    """The DatasetXXX_NAME folder under ``root`` that ``dataset`` (an id or a name) names."""
    if dataset.isdigit():
        found = sorted(p.name for p in root.glob(f"Dataset{int(dataset):03d}_*")) if root.is_dir() else []
        if not found:
            raise SystemExit(f"info: no dataset {dataset} in $nnUNet_preprocessed ({root}): plan it with "
                             f"nnUNetv2_plan_and_preprocess -d {dataset}, or check the id")
        return found[0]
    if not (root / dataset).is_dir():
        raise SystemExit(f"info: no dataset {dataset} in $nnUNet_preprocessed ({root}): give its id or its "
                         "DatasetXXX_NAME folder name, or a plans .json file")
    return dataset


def cmd_info(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.method.describe import describe_pi_plan
    from nnunetv2_reisoseg.method.knobs import PISettings

    plans = _load_plans(args.dataset, args.plans)
    if args.configuration not in plans["configurations"]:
        raise SystemExit(f"info: the plans have no configuration {args.configuration!r} (they have "
                         f"{', '.join(plans['configurations']) or 'none'}); pass -c with one of those")
    try:
        pi = PISettings(levels=args.pi_levels, reduction=args.reduction)
        print(describe_pi_plan(plans, args.configuration, pi), end="")
    except (ValueError, KeyError, TypeError) as e:  # plans of another shape than nnU-Net writes
        raise SystemExit(f"info: {e}") from None
    return 0


def cmd_trainer_path(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg import trainer_dir

    print(trainer_dir())
    return 0


def cmd_export_stock(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.training.export import export_stock

    try:
        written = export_stock(args.model_folder, args.output, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"export-stock: {e}") from None
    for w in written:
        print(f"wrote {w}")
    print(f"Stock nnU-Net model folder: {args.output}\nPredict without the plugin: nnUNetv2_predict_from_modelfolder "
          f"-i IN -o OUT -m {args.output} -f FOLDS")
    return 0


def cmd_import_stock(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.training.export import import_stock

    trainer_class = None
    if args.trainer != "nnUNetTrainerReIso":
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        from nnunetv2_reisoseg import our_trainers

        try:
            with our_trainers():
                trainer_class = recursive_find_trainer_class_by_name(args.trainer)
        except RuntimeError as e:
            raise SystemExit(f"import-stock: {e}") from None
    from nnunetv2_reisoseg.io.checks import read_plans

    plans = read_plans(args.plans) if args.plans else None
    try:
        info = import_stock(args.checkpoint, args.output, trainer_class, plans, args.configuration, args.seed,
                            args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"import-stock: {e}") from None
    print(f"wrote {info['output']}: {info['kept']} tensors from {args.checkpoint} and {info['new_parameters']:,} "
          f"freshly initialised isotropic-branch parameters ({info['trainer']}, seed {args.seed})")
    print(f"next: nnUNetv2_train DATASET CONFIGURATION FOLD -tr {info['trainer']} -pretrained_weights "
          f"{info['output']}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.data.synth import SynthSpec, generate_dataset

    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise SystemExit("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (see nnU-Net's "
                         "setting_up_paths.md).")
    from nnunetv2_reisoseg.io.checks import voxel_size

    anisotropy, xy_nm = args.anisotropy, args.xy_nm
    if args.voxel_size is not None:
        vz, vy, vx = voxel_size(args.voxel_size, "synth: --voxel-size")
        if vy != vx or vy <= 0 or vz <= 0 or abs(vz / vy - round(vz / vy)) > 1e-6 or round(vz / vy) < 1:
            raise SystemExit(f"synth: --voxel-size {vz:g} {vy:g} {vx:g}: the lateral axes must be equal and the "
                             "section thickness a whole number of lateral pixels (e.g. 40 10 10 or 45 5 5)")
        anisotropy, xy_nm = round(vz / vy), vy
    try:
        spec = SynthSpec(cases=args.cases, shape=tuple(args.shape), anisotropy=anisotropy, xy_nm=xy_nm, seed=args.seed,
                         test_cases=args.test_cases, membranes_class=args.membranes,
                         missing_sections=args.missing_sections)
        path = generate_dataset(raw, args.dataset_id, args.name, spec, args.overwrite)
    except (FileExistsError, ValueError) as e:
        raise SystemExit(f"synth: {e}") from None
    print(f"wrote {path}")
    return 0


def _int_value(text: str) -> int:
    return int(text, 0)  # accepts 0xffffffffffffffff as well as decimal


def _label_map(items: Sequence[str]) -> dict[int, int]:
    out = {}
    for item in items:
        src, sep, dst = item.partition(":")
        try:
            key, value = _int_value(src), int(dst)
        except ValueError:
            value = -1
        if not sep or value < 0:
            raise SystemExit(f"convert: --label-map takes SRC:DST pairs of integers with DST >= 0, got {item!r}")
        out[key] = value
    return out


def cmd_convert(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.data.convert import ConvertError, LabelRules, Pair, convert
    from nnunetv2_reisoseg.data.convert.dataset import SPLITS_FILE, ConvertOptions

    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise SystemExit("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (see nnU-Net's "
                         "setting_up_paths.md).")
    if len(args.image) != len(args.labels):
        raise SystemExit(f"convert: {len(args.image)} --image but {len(args.labels)} --labels; give one "
                         "--labels per --image, in the same order")
    if args.test_labels and len(args.test_labels) != len(args.test_image):
        raise SystemExit("convert: give one --test-labels per --test-image (or none)")
    rules = LabelRules(binary=args.binary, label_map=_label_map(args.label_map), ignore=tuple(args.ignore_value),
                       threshold=args.threshold, unmapped_background=args.unmapped_background)
    if args.background is not None:
        rules.background = tuple(args.background)
    test = [Pair(i, args.test_labels[k] if args.test_labels else None) for k, i in enumerate(args.test_image)]
    try:
        options = ConvertOptions(spacing_nm=args.spacing and tuple(args.spacing), split=args.split,
                                 split_axis=args.split_axis, rules=rules, channel_name=args.channel_name,
                                 class_names=args.class_names and tuple(args.class_names),
                                 downsample=tuple(args.downsample) if args.downsample else (1, 1, 1),
                                 hold_out=args.hold_out)
        path = convert(raw, args.dataset_id, args.name, [Pair(i, lab) for i, lab in zip(args.image, args.labels)],
                       test, options, args.overwrite)
    except (ConvertError, FileExistsError) as e:
        raise SystemExit(f"convert: {e}") from None
    ds = json.loads((path / "dataset.json").read_text())
    print(f"wrote {path}: {ds['numTraining']} training cases, labels {ds['labels']}")
    print(f"next: nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c 3d_fullres && reisoseg info {args.dataset_id}")
    if (path / SPLITS_FILE).is_file():
        print(f"then: cp {path / SPLITS_FILE} $nnUNet_preprocessed/{path.name}/ (one fold per block; "
              "reisoseg benchmark copies it itself)")
    return 0


def _seed_fold(text: str) -> tuple[int, int]:
    try:
        seed, fold = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SEED:FOLD (e.g. 1:0)") from None
    return seed, fold


def cmd_benchmark(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.benchmark.runner import BenchmarkError, run_benchmark, training_pairs

    if args.pairs is not None and (args.folds is not None or args.seeds is not None):
        raise SystemExit("benchmark: --pairs names every (seed, fold) training itself; give it without --folds "
                         "and --seeds")
    pairs = args.pairs or training_pairs(args.seeds or [0], args.folds or [0])
    try:
        methods = [*args.methods, *(["stock_time"] if args.equal_time else [])]
        report = run_benchmark(args.dataset, args.preset, pairs, args.output, methods,
                               args.device, command="reisoseg " + " ".join(sys.argv[1:]))
    except BenchmarkError as e:
        raise SystemExit(f"benchmark: {e}") from None
    print(report.read_text())
    return 0


def cmd_predict_volume(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.volume.predict import InstanceOptions, VolumeError, predict_volume
    from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions

    if args.workers and args.scheduler:
        raise SystemExit("predict-volume: --workers starts a local dask cluster, --scheduler joins one; give one")
    if not args.instances and (args.min_size is not None or args.connectivity is not None):
        raise SystemExit("predict-volume: --min-size and --connectivity shape the objects of --instances; add "
                         "--instances")
    instances = InstanceOptions(args.connectivity or 26, args.min_size or 0.0) if args.instances else None
    try:
        options = PredictOptions(folds=tuple(args.folds), checkpoint=args.checkpoint, step_size=args.step_size,
                                 tta=not args.disable_tta, device=args.device,
                                 block_size=args.block_size and tuple(args.block_size),
                                 spacing=args.spacing and tuple(args.spacing),
                                 save_probabilities=args.save_probabilities, image=not args.no_image)
        run = RunOptions(workers=args.workers, scheduler=args.scheduler, cont=args.c, overwrite=args.overwrite)
        predict_volume(args.input, args.output, args.model, options, run, instances)
    except VolumeError as e:
        raise SystemExit(f"predict-volume: {e}") from None
    return 0


def cmd_objects(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.blockwise.components import Objects

    group = Path(args.output) / "objects"
    if not (group / ".zgroup").is_file():
        raise SystemExit(f"objects: {args.output} holds no table of objects; predict-volume writes one with "
                         "--instances")
    objects, names = Objects.read_zarr(str(group))
    objects.write_csv(sys.stdout, names)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.evaluation import EvaluationError
    from nnunetv2_reisoseg.evaluation.evaluate import ReadOptions
    from nnunetv2_reisoseg.io import checks
    from nnunetv2_reisoseg.io.folders import OutputError, check_output, write_file
    from nnunetv2_reisoseg.io.volumes import input_path

    if args.workers and args.scheduler:
        raise SystemExit("evaluate: --workers starts a local dask cluster, --scheduler joins one; give one")
    if args.output is not None and not args.output.strip():
        raise SystemExit("evaluate: -o is empty; give the file to write the JSON to, or leave -o out")
    if args.spacing is not None:
        checks.voxel_size(args.spacing, "--spacing")
    if args.block_size is not None:
        checks.whole_numbers(args.block_size, "--block-size")
    checks.workers(args.workers)
    if args.ignore_label is not None and args.ignore_label < 0:
        raise SystemExit(f"evaluate: --ignore-label {args.ignore_label}: labels are non-negative integers, so no "
                         "voxel can hold it; give the value that marks 'not annotated' in the reference")
    if args.output:  # before hours of blockwise work
        try:
            check_output(args.output, args.overwrite, _evaluate_json,
                         [input_path(s) for s in (args.prediction, args.reference)])
        except OutputError as e:
            raise SystemExit(f"evaluate: {e}") from None
    reading = ReadOptions(background=tuple(args.background), allow_unfinished=args.allow_unfinished,
                          binary=args.binary)
    try:
        result = _evaluate(args, reading)
    except EvaluationError as e:
        raise SystemExit(f"evaluate: {e}") from None
    text = json.dumps(result, indent=1)
    print(text, flush=True)  # the result reaches the user even if -o cannot be written
    if args.output:
        # the file carries evaluate's mark beside the classes: --overwrite replaces only a file that has it
        marked = json.dumps({**result, EVALUATE_MARK: {"command": "evaluate", "prediction": args.prediction,
                                                       "reference": args.reference}}, indent=1)
        try:
            write_file(args.output, lambda path: path.write_text(marked + "\n"))
        except OSError as e:
            raise SystemExit(f"evaluate: the result above could not be written to {args.output}: {e}") from None
    return 0


def _evaluate(args: argparse.Namespace, reading) -> dict:
    from nnunetv2_reisoseg.evaluation import EvaluationError, evaluate_files
    from nnunetv2_reisoseg.evaluation import blockwise as bw

    blockwise = args.blockwise or args.block_size is not None or args.workers or args.scheduler
    if not blockwise and not args.prediction.lower().endswith(bw.ITK_SUFFIXES):
        shape = bw.volume_info(args.prediction, allow_unfinished=True, spacing_given=args.spacing is not None)[0]
        if math.prod(shape) > bw.BLOCKWISE_ABOVE:
            blockwise = True
            print(f"evaluate: {'x'.join(map(str, shape))} voxels do not fit in memory comfortably; evaluating "
                  "block by block (surface distances are null then)", file=sys.stderr)
    if not blockwise:
        return evaluate_files(args.prediction, args.reference, args.spacing, args.classes, args.connectivity,
                              args.ignore_label, reading, probabilities=args.probabilities)
    if args.probabilities:
        raise EvaluationError("--probabilities ranks objects in memory only; drop it (AP then ranks by size) "
                              "or evaluate without --blockwise")
    run = bw.BlockwiseRun(block_shape=args.block_size and tuple(args.block_size), workers=args.workers,
                          scheduler=args.scheduler, work_dir=args.work_dir)
    return bw.evaluate_blockwise(args.prediction, args.reference, args.spacing, args.classes, args.connectivity,
                                 args.ignore_label, reading, run=run)


EVALUATE_MARK = "reisoseg"  # the key of evaluate's mark in an -o file (class keys are numbers)


def _evaluate_json(path: Path) -> str | None:
    """None when ``path`` is a result evaluate wrote (it carries evaluate's mark), else why it is not."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return "it is not an evaluate result (not JSON)"
    mark = data.get(EVALUATE_MARK) if isinstance(data, dict) else None
    if isinstance(mark, dict) and mark.get("command") == "evaluate":
        return None
    return f"it is not an evaluate result (it has no {EVALUATE_MARK!r} mark of evaluate)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reisoseg", description=__doc__)
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
    s.set_defaults(func=cmd_info)


def _add_trainer_path(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("trainer-path", help="print the folder to put in nnUNet_extTrainer")
    s.set_defaults(func=cmd_trainer_path)


def _add_export_stock(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export-stock", help="write a stock nnUNetTrainer model folder (PI weights dropped)")
    s.add_argument("model_folder", help="trained model folder, e.g. .../nnUNetTrainerReIso__nnUNetPlans__3d_fullres")
    s.add_argument("-o", "--output", required=True, help="output model folder")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    s.set_defaults(func=cmd_export_stock)


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
    s.set_defaults(func=cmd_import_stock)


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
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    s.set_defaults(func=cmd_synth)


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
    s.set_defaults(func=cmd_convert)


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
    s.add_argument("--workers", type=int, default=0, help="run the blocks on a local dask cluster of N processes")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the blocks on an existing dask cluster (tcp://host:8786); workers must see the same files")
    s.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxel size in nm when the file has none (or a wrong one)")
    s.add_argument("--save_probabilities", action="store_true", help="also write per-class probabilities (float16)")
    s.add_argument("--no-image", action="store_true",
                   help="leave the input volume out of the output (by default it is the image under the labels)")
    s.add_argument("--c", action="store_true", help="continue an interrupted run (same settings), redoing unfinished "
                                                    "blocks only")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.add_argument("--instances", action="store_true",
                   help="also label the objects (3D connected components of each class) over the whole volume: "
                        "OUT.zarr/labels/instances, with the table OUT.zarr/objects (id, class, voxels, bounding box, "
                        "centroid in nm; reisoseg objects OUT.zarr prints it as CSV)")
    s.add_argument("--min-size", type=float, default=None, metavar="NM3",
                   help="with --instances: drop objects smaller than this volume in nm^3 (default: keep all)")
    s.add_argument("--connectivity", type=int, default=None, choices=(6, 18, 26),
                   help="with --instances: voxel neighbourhood of an object (default 26)")
    s.set_defaults(func=cmd_predict_volume)


def _add_objects(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("objects", help="print the objects of a predict-volume --instances output as CSV")
    s.add_argument("output", metavar="OUT.zarr", help="predict-volume's output")
    s.set_defaults(func=cmd_objects)


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
    s.add_argument("--workers", type=int, default=0, help="--blockwise on a local dask cluster of N processes")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS", help="--blockwise on an existing dask cluster")
    s.add_argument("--work-dir", default=None, metavar="DIR",
                   help="where --blockwise keeps its scratch (object ids, compressed; removed at the end)")
    s.set_defaults(func=cmd_evaluate)


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    from nnunetv2_reisoseg.benchmark.methods import METHODS
    from nnunetv2_reisoseg.benchmark.presets import PRESETS

    s = sub.add_parser("benchmark", help="train and evaluate stock nnU-Net and ReIsoSeg side by side")
    s.add_argument("dataset", nargs="?", default=None,
                   help="dataset id or name in $nnUNet_raw (default: generate the preset's synthetic EM dataset)")
    s.add_argument("--preset", default="smoke", choices=tuple(PRESETS),
                   help="training budget and the synthetic dataset it generates: smoke (a pipeline check, ~10 min "
                        "on a 2-core CPU), plateau (stock nnU-Net levels off on a 2-core CPU, ~12 min per stock "
                        "training), phantom (mitochondria at physical scale, ~10 min per stock training), realcpu "
                        "(your own real dataset on a CPU, named as DATASET; generates nothing; vnc is the same budget "
                        "under the VNC study's name, vnc4x 4x it), short and full (GPU; full = nnU-Net's 1000 x 250)")
    s.add_argument("--folds", type=int, nargs="+", default=None, help="folds to train (default 0)")
    s.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds to train (default 0); every method trains each seed on each fold")
    s.add_argument("--pairs", type=_seed_fold, nargs="+", default=None, metavar="SEED:FOLD",
                   help="the (seed, fold) trainings, instead of the grid --seeds x --folds: e.g. 0:0 0:1 0:2 0:3 1:0 "
                        "for 5 pairs on a dataset with 4 folds")
    s.add_argument("--methods", nargs="+", default=["stock", "reiso"], choices=tuple(METHODS),
                   help="stock nnU-Net, ReIsoSeg on nnU-Net's planned U-Net (reiso), and/or the paper's network; "
                        "the controls of docs/study_why: aux (ReIsoSeg with stock's loss kept on the deployed "
                        "branch, nnUNetTrainerReIsoAux) and stock_half (stock nnU-Net with its loss x a = 0.5)")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    s.add_argument("--equal-time", action="store_true",
                   help="also train stock nnU-Net for as many epochs as fit in ReIsoSeg's training time")
    s.add_argument("-o", "--output", default=None,
                   help="output folder (default reisoseg_benchmark/<dataset>_<preset>); re-running reuses "
                        "the trainings it holds")
    s.set_defaults(func=cmd_benchmark)


DEBUG_ENV = "REISOSEG_DEBUG"  # 1: let an unexpected error show its traceback


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure ends as one line on stderr and a non-zero exit."""
    from nnunetv2_reisoseg.errors import ReisosegError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
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

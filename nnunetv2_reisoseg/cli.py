"""``reisoseg``: tools around the ReIsoSeg trainers (also ``python -m nnunetv2_reisoseg``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _load_plans(dataset: str, plans: str) -> dict:
    """Plans from a .json path, or from $nnUNet_preprocessed/<dataset>/<plans>.json."""
    if dataset.endswith(".json") and Path(dataset).is_file():
        return json.loads(Path(dataset).read_text())
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if not nnUNet_preprocessed.is_set():
        raise SystemExit("nnUNet_preprocessed is not set: export it (see nnU-Net's setting_up_paths.md).")
    name = maybe_convert_to_dataset_name(dataset)
    path = Path(str(nnUNet_preprocessed)) / name / f"{plans}.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run nnUNetv2_plan_and_preprocess -d {dataset} first.")
    return json.loads(path.read_text())


def cmd_info(args: argparse.Namespace) -> int:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_reisoseg.network import pi_plan_from_configuration
    from nnunetv2_reisoseg.pi_module import PIModule, isotropic_size

    plans = _load_plans(args.dataset, args.plans)
    pm = PlansManager(plans)
    if args.configuration not in plans["configurations"]:
        raise SystemExit(f"configuration {args.configuration} not in plans; available: {list(plans['configurations'])}")
    cm = pm.get_configuration(args.configuration)
    if len(cm.patch_size) != 3:
        raise SystemExit(f"{args.configuration} is 2D: ReIsoSeg needs a 3D configuration such as 3d_fullres.")
    try:
        plan = pi_plan_from_configuration(cm, args.pi_levels)
    except ValueError as e:
        raise SystemExit(f"ReIsoSeg cannot train {args.configuration}: {e}") from None
    pi = PIModule(plan.channels, plan.ratios, plan.levels, plan.section_axis, args.reduction)
    n_pi = sum(p.numel() for p in pi.parameters())
    channels = cm.network_arch_init_kwargs["features_per_stage"]
    print(f"{pm.dataset_name} / {pm.plans_name} / {args.configuration} ({cm.network_arch_class_name})")
    print(f"network-space spacing {tuple(cm.spacing)}, patch {tuple(cm.patch_size)}, section axis "
          f"{plan.section_axis} (transpose_forward {pm.transpose_forward})")
    print(f"{'stage':>5}  {'features':>8}  {'patch shape':>16}  {'spacing':>24}  {'ratio':>6}  PI module")
    for s, (shape, sp, r) in enumerate(zip(plan.stage_shapes, plan.stage_spacings, plan.stage_ratios)):
        if s in plan.levels:
            n = shape[plan.section_axis]
            use = f"yes: {n} -> {isotropic_size(n, max(r, 1.0))} sections, channels {channels[s]} -> " \
                  f"{max(1, channels[s] // args.reduction)}"
        else:
            use = "no (full resolution)" if s == 0 else "no (bottleneck)" if s == len(plan.stage_ratios) - 1 else "no"
        sp_txt = "x".join(f"{v:g}" for v in sp)
        print(f"{s:>5}  {channels[s]:>8}  {'x'.join(map(str, shape)):>16}  {sp_txt:>24}  {r:>6.3g}  {use}")
    print(f"PI levels {list(plan.levels)}; PI module parameters: {n_pi:,} (training only; inference runs the "
          "stock network)")
    return 0


def cmd_trainer_path(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg import trainer_dir

    print(trainer_dir())
    return 0


def cmd_export_stock(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.export import export_stock

    try:
        written = export_stock(args.model_folder, args.output, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"export-stock: {e}") from None
    for w in written:
        print(f"wrote {w}")
    print(f"Stock nnU-Net model folder: {args.output}\nPredict without the plugin: nnUNetv2_predict_from_modelfolder "
          f"-i IN -o OUT -m {args.output} -f FOLDS")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from nnunetv2_reisoseg.synth import generate_dataset

    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise SystemExit("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (see nnU-Net's "
                         "setting_up_paths.md).")
    try:
        path = generate_dataset(raw, args.dataset_id, args.name, args.cases, args.shape, args.anisotropy,
                                args.xy_nm, args.seed, args.test_cases, args.overwrite)
    except (FileExistsError, ValueError) as e:
        raise SystemExit(f"synth: {e}") from None
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reisoseg", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="what the PI module will do on a dataset's plans")
    s.add_argument("dataset", help="dataset id or name (or a plans .json file)")
    s.add_argument("-c", "--configuration", default="3d_fullres")
    s.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier")
    s.add_argument("--pi-levels", type=int, nargs="+", default=None, help="override the automatic PI levels")
    s.add_argument("--reduction", type=int, default=4, help="PI module channel reduction")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("trainer-path", help="print the folder to put in nnUNet_extTrainer")
    s.set_defaults(func=cmd_trainer_path)

    s = sub.add_parser("export-stock", help="write a stock nnUNetTrainer model folder (PI weights dropped)")
    s.add_argument("model_folder", help="trained model folder, e.g. .../nnUNetTrainerReIso__nnUNetPlans__3d_fullres")
    s.add_argument("-o", "--output", required=True, help="output model folder")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    s.set_defaults(func=cmd_export_stock)

    s = sub.add_parser("synth", help="generate a synthetic anisotropic EM dataset in $nnUNet_raw")
    s.add_argument("--dataset-id", type=int, default=901)
    s.add_argument("--name", default="SynthEM")
    s.add_argument("--cases", type=int, default=20)
    s.add_argument("--test-cases", type=int, default=0)
    s.add_argument("--shape", type=int, nargs=3, default=(32, 256, 256), metavar=("Z", "Y", "X"),
                   help="anisotropic grid shape")
    s.add_argument("--anisotropy", type=int, default=8, help="section thickness / lateral pixel size")
    s.add_argument("--xy-nm", type=float, default=5.0, help="lateral pixel size in nm")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    s.set_defaults(func=cmd_synth)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

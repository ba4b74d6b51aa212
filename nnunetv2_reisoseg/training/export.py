"""Between the plugin and stock nnU-Net: export a trained ReIsoSeg model folder as a stock one (no plugin
needed to predict), and import a stock checkpoint as the starting point of a ReIsoSeg training."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from nnunetv2_reisoseg.io.checkpoints import load_checkpoint
from nnunetv2_reisoseg.io.folders import check_output, marker_owner, staged_folder, write_file
from nnunetv2_reisoseg.method.network import TRAINING_ONLY_PREFIX, has_isotropic_branch, strip_training_only

STOCK_TRAINER = "nnUNetTrainer"
_MODEL_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json")


def _network_from_init_args(trainer_class: type, init_args: dict, plans: dict | None = None,
                            configuration: str | None = None) -> nn.Module:
    """The network ``trainer_class`` builds for a checkpoint's plans (or ``plans``/``configuration``)."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = plans or init_args["plans"]
    configuration = configuration or init_args["configuration"]
    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"the plans have no configuration {configuration!r} (they have "
                         f"{', '.join(plans.get('configurations', {})) or 'none'}); pass -c with one of those")
    pm = PlansManager(plans)
    cm = pm.get_configuration(configuration)
    dataset_json = init_args["dataset_json"]
    n_in = determine_num_input_channels(pm, cm, dataset_json)
    n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
    return trainer_class.build_network_architecture(pm, cm, n_in, n_out, True)


def _mismatch(weights: dict, expected: dict) -> list[str]:
    """Keys of ``expected`` missing from ``weights`` or of another shape, and keys ``expected`` lacks."""
    out = [f"missing {k}" for k in expected if k not in weights]
    out += [f"{k}: {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
            if k in weights and weights[k].shape != v.shape]
    out += [f"unexpected {k}" for k in weights if k not in expected]
    return out


def export_stock(model_folder: str | Path, out_folder: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy ``model_folder`` to ``out_folder`` with every checkpoint reduced to the base network and
    renamed to ``nnUNetTrainer``. Each checkpoint is checked against the network stock nnU-Net builds
    from its plans before anything is written. Returns the checkpoints written; nothing is left behind
    on error."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    src, dst = Path(model_folder), Path(out_folder)
    missing = [f for f in ("plans.json", "dataset.json") if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{src} is not a trained nnU-Net model folder (missing {', '.join(missing)}). Pass the folder "
            "that holds plans.json and fold_X/, e.g. $nnUNet_results/DatasetXXX/"
            "nnUNetTrainerReIso__nnUNetPlans__3d_fullres.")
    checkpoints = sorted(src.glob("fold_*/checkpoint_*.pth"))
    if not checkpoints:
        raise FileNotFoundError(f"No fold_*/checkpoint_*.pth in {src}: train a fold first.")
    if dst.resolve() == src.resolve():
        raise ValueError("the output folder must differ from the model folder")
    check_output(dst, overwrite, marker_owner("export-stock"), protected=[src])

    written = []
    expected = None
    with staged_folder(dst, "export-stock") as tmp:
        for name in _MODEL_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        for ckpt_path in checkpoints:
            ckpt = load_checkpoint(ckpt_path)
            weights = strip_training_only(ckpt["network_weights"])
            if expected is None:  # all folds share the plans
                expected = _network_from_init_args(nnUNetTrainer, ckpt["init_args"]).state_dict()
            problems = _mismatch(weights, expected)
            if problems:
                paper = "ReIsoSegNet" in str(ckpt.get("trainer_name"))
                raise ValueError(
                    f"{ckpt_path} holds " + ("the paper's network" if paper else "a network") +
                    f" ({ckpt.get('trainer_name')}) that stock nnU-Net does not build from these plans "
                    f"({len(problems)} differences, e.g. {problems[0]}): there is no stock model to export. Predict "
                    "with the plugin installed (nnUNetv2_predict -tr with nnUNet_extTrainer set)"
                    + (", or train nnUNetTrainerReIso, whose network is nnU-Net's own." if paper else "."))
            stock = {
                "network_weights": weights,
                "trainer_name": STOCK_TRAINER,
                "init_args": ckpt["init_args"],
                "current_epoch": ckpt.get("current_epoch"),
                "inference_allowed_mirroring_axes": ckpt.get("inference_allowed_mirroring_axes"),
                # nnU-Net's checkpoint keys, kept so that the folder is a regular model folder
                "optimizer_state": None,
                "grad_scaler_state": None,
                "logging": ckpt.get("logging"),
                "_best_ema": ckpt.get("_best_ema"),
                "exported_from": ckpt.get("trainer_name"),
            }
            rel = ckpt_path.relative_to(src)
            (tmp / rel.parent).mkdir(parents=True, exist_ok=True)
            torch.save(stock, tmp / rel)
            written.append(dst / rel)
    return written


def find_trainer(name: str) -> type:
    """The trainer class ``name`` as nnU-Net finds it (this plugin's trainers first, then ``nnUNet_extTrainer``)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_reisoseg import our_trainers
    from nnunetv2_reisoseg.errors import InputError

    try:
        with our_trainers():
            return recursive_find_trainer_class_by_name(name)
    except RuntimeError as e:
        raise InputError(str(e)) from None


def import_stock(checkpoint: str | Path, out_file: str | Path, trainer_class: type | None = None,
                 plans: dict | None = None, configuration: str | None = None, seed: int = 0,
                 overwrite: bool = False) -> dict:
    """Write ``out_file``: a stock nnU-Net checkpoint's weights plus a freshly initialised isotropic branch
    (PI module and isotropic heads, seeded by ``seed``), built by ``trainer_class`` (nnUNetTrainerReIso by
    default) from the checkpoint's own plans (or ``plans``/``configuration``). nnU-Net's
    ``-pretrained_weights`` then loads it into a ReIsoSeg training; like every checkpoint it gives, the
    output heads (``.seg_layers.``) are left to be trained. Returns a summary."""
    if trainer_class is None:
        from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso

        trainer_class = nnUNetTrainerReIso
    src, dst = Path(checkpoint), Path(out_file)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such checkpoint (e.g. $nnUNet_results/DatasetXXX/"
                                "nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth)")
    check_output(dst, overwrite, _imported_checkpoint, protected=[src])
    ckpt = load_checkpoint(src)
    weights = ckpt["network_weights"]
    if has_isotropic_branch(weights):
        raise ValueError(f"{src} already holds an isotropic branch ({ckpt.get('trainer_name')}): pass it to "
                         "-pretrained_weights directly")
    torch.manual_seed(seed)
    net = _network_from_init_args(trainer_class, ckpt["init_args"], plans, configuration)
    target = net.state_dict()
    problems = _mismatch(weights, strip_training_only(target))
    if problems:
        raise ValueError(
            f"{src} ({ckpt.get('trainer_name')}) does not hold the network {trainer_class.__name__} builds around "
            f"from these plans ({len(problems)} differences, e.g. {problems[0]}). Import checkpoints of stock "
            "nnUNetTrainer (or a trainer with the same network) trained with the same plans.")
    n_new = sum(p.numel() for n, p in net.named_parameters() if n.startswith(TRAINING_ONLY_PREFIX))
    if n_new == 0:
        raise ValueError(f"{trainer_class.__name__} builds no isotropic branch, so there is nothing to import: pass "
                         "the stock checkpoint to -pretrained_weights directly, or name a ReIsoSeg trainer with -tr")
    target.update(weights)
    out = {"network_weights": target, "trainer_name": trainer_class.__name__, "init_args": ckpt["init_args"],
           "imported_from": {"checkpoint": str(src.resolve()), "trainer_name": ckpt.get("trainer_name"),
                             "current_epoch": ckpt.get("current_epoch")}, "isotropic_branch_seed": seed}
    write_file(dst, lambda path: torch.save(out, path))
    return {"output": dst, "trainer": trainer_class.__name__, "kept": len(weights), "new_parameters": n_new}


def _imported_checkpoint(path: Path) -> str | None:
    """None when ``path`` is a checkpoint import-stock wrote (replaceable with --overwrite), else why not."""
    if not path.is_file():
        return "it is not a file"
    try:
        ckpt = load_checkpoint(path, mmap=True)
    except ValueError:
        return "it is not a checkpoint"
    return None if "imported_from" in ckpt else f"it is a checkpoint of {ckpt.get('trainer_name')}, not of import-stock"


def export_command(model_folder: str, output: str, overwrite: bool = False) -> None:
    """``reisoseg export-stock``: export, then say what was written and how stock nnU-Net predicts with it."""
    for w in export_stock(model_folder, output, overwrite=overwrite):
        print(f"wrote {w}")
    print(f"Stock nnU-Net model folder: {output}\nPredict without the plugin: nnUNetv2_predict_from_modelfolder "
          f"-i IN -o OUT -m {output} -f FOLDS")


def import_command(checkpoint: str, output: str, trainer: str = "nnUNetTrainerReIso", plans: str | None = None,
                   configuration: str | None = None, seed: int = 0, overwrite: bool = False) -> None:
    """``reisoseg import-stock``: import for ``trainer`` (found as nnU-Net finds it), then say how to train from it."""
    from nnunetv2_reisoseg.io.checks import read_plans

    trainer_class = find_trainer(trainer) if trainer != "nnUNetTrainerReIso" else None
    info = import_stock(checkpoint, output, trainer_class, read_plans(plans) if plans else None, configuration, seed,
                        overwrite)
    print(f"wrote {info['output']}: {info['kept']} tensors from {checkpoint} and {info['new_parameters']:,} "
          f"freshly initialised isotropic-branch parameters ({info['trainer']}, seed {seed})")
    print(f"next: nnUNetv2_train DATASET CONFIGURATION FOLD -tr {info['trainer']} -pretrained_weights "
          f"{info['output']}")

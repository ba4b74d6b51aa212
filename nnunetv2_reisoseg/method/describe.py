"""What the PI module does on a plan, as the table ``reisoseg info`` prints and every benchmark report shows:
per encoder stage its features, patch shape, spacing and anisotropy ratio, and what the PI module does there."""
from __future__ import annotations

from nnunetv2_reisoseg.errors import InputError
from nnunetv2_reisoseg.method.knobs import PI_REDUCTION, PISettings


def info_command(dataset: str, configuration: str = "3d_fullres", plans: str = "nnUNetPlans",
                 pi_levels: list[int] | None = None, reduction: int = PI_REDUCTION) -> None:
    """``reisoseg info``: print the table for the PI settings asked (None: the levels the plan gives)."""
    print(describe_dataset(dataset, plans, configuration, PISettings(levels=pi_levels, reduction=reduction)), end="")


def describe_dataset(dataset: str, plans_name: str = "nnUNetPlans", configuration: str = "3d_fullres",
                     settings: PISettings = PISettings()) -> str:
    """``reisoseg info``: the table for a dataset's plans (its id or name, or a plans .json file)."""
    from nnunetv2_reisoseg.io.datasets import load_plans

    plans = load_plans(dataset, plans_name)
    if configuration not in plans["configurations"]:
        raise InputError(f"the plans have no configuration {configuration!r} (they have "
                         f"{', '.join(plans['configurations']) or 'none'}); pass -c with one of those")
    try:
        return describe_pi_plan(plans, configuration, settings)
    except (ValueError, KeyError, TypeError) as e:  # plans of another shape than nnU-Net writes
        raise InputError(str(e)) from None


def describe_pi_plan(plans: dict, configuration: str = "3d_fullres", settings: PISettings = PISettings()) -> str:
    """The table for ``configuration`` of ``plans``, as printed (lines ending in newlines); a ValueError names why
    ReIsoSeg cannot train it."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_reisoseg.method.network import pi_plan_from_configuration
    from nnunetv2_reisoseg.method.pi_module import PIModule

    if configuration not in plans["configurations"]:
        raise ValueError(f"configuration {configuration} not in plans; available: {list(plans['configurations'])}")
    pm = PlansManager(plans)
    cm = pm.get_configuration(configuration)
    if len(cm.patch_size) != 3:
        raise ValueError(f"{configuration} is 2D: ReIsoSeg needs a 3D configuration such as 3d_fullres.")
    try:
        plan = pi_plan_from_configuration(cm, settings)
    except ValueError as e:
        raise ValueError(f"ReIsoSeg cannot train {configuration}: {e}") from None
    pi = PIModule(plan.channels, plan.ratios, plan.levels, plan.section_axis, settings)
    n_pi = sum(p.numel() for p in pi.parameters())
    channels = cm.network_arch_init_kwargs["features_per_stage"]
    lines = [f"{pm.dataset_name} / {pm.plans_name} / {configuration} ({cm.network_arch_class_name})",
             f"network-space spacing {tuple(cm.spacing)}, patch {tuple(cm.patch_size)}, section axis "
             f"{plan.section_axis} (transpose_forward {pm.transpose_forward})",
             f"{'stage':>5}  {'features':>8}  {'patch shape':>16}  {'spacing':>24}  {'ratio':>6}  PI module"]
    last = len(plan.stage_ratios) - 1
    for s, (shape, sp, r) in enumerate(zip(plan.stage_shapes, plan.stage_spacings, plan.stage_ratios)):
        if s in plan.levels:
            i = plan.levels.index(s)
            use = (f"yes: {shape[plan.section_axis]} -> {plan.iso_sizes[i]} sections, channels {plan.channels[i]} "
                   f"-> {plan.inner_channels[i]}")
        else:
            use = "no (full resolution)" if s == 0 else "no (bottleneck)" if s == last else "no"
        sp_txt = "x".join(f"{v:g}" for v in sp)
        lines.append(f"{s:>5}  {channels[s]:>8}  {'x'.join(map(str, shape)):>16}  {sp_txt:>24}  {r:>6.3g}  {use}")
    lines.append(f"PI levels {list(plan.levels)}; isotropic branch parameters: {n_pi:,} in the PI module plus the "
                 "isotropic output heads (training only; inference runs the stock network)")
    return "".join(line + "\n" for line in lines)

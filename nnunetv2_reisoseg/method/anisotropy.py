"""Anisotropy arithmetic: per-stage ratios, the section axis and the choice of PI levels.

Everything here is a pure function of what nnU-Net's plans already hold (the configuration's
spacing, which is in network space, i.e. after ``transpose_forward``, and the per-stage strides), so
the trainer never asks the user for a number the plans imply.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnunetv2_reisoseg.method.knobs import PISettings

# A stage counts as isotropic once its section spacing is less than twice its lateral spacing: the
# same rule nnU-Net's planner uses to start pooling the section axis (get_pool_and_conv_props).
ISOTROPIC_BELOW = 2.0
# The reference uses three PI levels (encoder levels 1, 2, 3).
MAX_PI_LEVELS = 3
# The PI Net goes from one PI level to the next with a 2x2x2-strided conv (and back with a 2x2x2
# transposed conv): on the isotropic grid every axis halves between consecutive PI levels.
PI_NET_STRIDE = 2


def section_axis(spacing: Sequence[float]) -> int:
    """Index of the network-space axis with the largest spacing (the section axis)."""
    if len(spacing) != 3:
        raise ValueError(f"ReIsoSeg needs 3D spacing, got {tuple(spacing)}")
    return int(np.argmax(np.asarray(spacing, dtype=float)))


def cumulative_strides(strides: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Total downsampling factor per axis at every encoder stage."""
    return [tuple(int(v) for v in c) for c in np.cumprod(np.asarray(strides, dtype=np.int64), axis=0)]


def stage_spacings(spacing: Sequence[float], strides: Sequence[Sequence[int]]) -> list[tuple[float, ...]]:
    """Physical spacing of the features at every encoder stage."""
    return [tuple(float(s) * c for s, c in zip(spacing, cum)) for cum in cumulative_strides(strides)]


def stage_anisotropy(spacing: Sequence[float], strides: Sequence[Sequence[int]]) -> list[float]:
    """Per-stage ratio: section-axis spacing / finest lateral spacing of the features at that stage."""
    axis = section_axis(spacing)
    ratios = []
    for sp in stage_spacings(spacing, strides):
        lateral = min(v for i, v in enumerate(sp) if i != axis)
        ratios.append(sp[axis] / lateral)
    return ratios


def stage_shapes(patch_size: Sequence[int], strides: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Feature-map shape at every encoder stage for a training patch (nnU-Net plans divisible patches)."""
    return [tuple(int(p) // c for p, c in zip(patch_size, cum)) for cum in cumulative_strides(strides)]


def reduced_channels(channels: Sequence[int], reduction: int) -> tuple[int, ...]:
    """Channels inside the PI module: C // reduction (at least 1), 1/4 in the paper."""
    if reduction < 1:
        raise ValueError(f"the PI module's channel reduction must be >= 1, got {reduction}")
    return tuple(max(1, int(c) // reduction) for c in channels)


def isotropic_sizes(sizes: Sequence[int], ratios: Sequence[float]) -> tuple[int, ...]:
    """Section-axis size of every PI level on the isotropic grid, chosen from the deepest level up.

    The PI Net halves every axis from one PI level to the next and doubles it on the way back, so
    level l needs exactly twice the isotropic slices of level l + 1. The deepest level takes
    ``round(n * ratio)`` (never fewer than its ``n`` slices; a ratio below 1 is left alone) and every
    shallower level twice the one below. Between PI levels nnU-Net halves the lateral axes, so level
    l's own target ``n_l * ratio_l`` is twice level l + 1's: the sizes differ from rounding each level
    on its own by at most half a slice at the deepest level, and no resampling inside the PI Net is
    needed to make the strided convs meet.
    """
    if len(sizes) != len(ratios) or not sizes:
        raise ValueError(f"one size per ratio, got sizes {tuple(sizes)} and ratios {tuple(ratios)}")
    deepest = max(int(sizes[-1]), round(int(sizes[-1]) * max(1.0, float(ratios[-1]))))
    out = tuple(deepest * PI_NET_STRIDE ** (len(sizes) - 1 - i) for i in range(len(sizes)))
    for lvl, (n, iso) in enumerate(zip(sizes, out)):
        if iso < n:
            raise ValueError(
                f"PI level {lvl} has {n} sections but only {iso} on the isotropic grid derived from the deepest "
                f"PI level ({tuple(sizes)} sections, ratios {tuple(ratios)}): consecutive PI levels must halve the "
                "lateral axes and at most halve the section axis, as nnU-Net's strides do")
    return out


def _pi_transition_problem(strides: Sequence[Sequence[int]], level: int, axis: int) -> str | None:
    """Why the PI Net cannot go from stage ``level - 1`` to ``level`` (None when it can): it halves every
    axis of the isotropic grid, so the plan must halve both lateral axes there (section: 1 or 2)."""
    st = tuple(int(v) for v in strides[level])
    lateral_ok = all(v == PI_NET_STRIDE for a, v in enumerate(st) if a != axis)
    if lateral_ok and st[axis] in (1, PI_NET_STRIDE):
        return None
    return f"stride {st} into stage {level}"


def default_pi_levels(ratios: Sequence[float], max_levels: int = MAX_PI_LEVELS) -> list[int]:
    """PI levels chosen from the per-stage anisotropy.

    A window of at most ``max_levels`` consecutive stages that starts at the first downsampled stage
    and reaches the first isotropic stage. Where the first isotropic stage comes early, the window
    still takes ``max_levels`` stages (the reference uses levels 1-3 for ratios 2, 4 and 8); where it
    comes late, the window ends at it. The full-resolution stage (0) and the bottleneck (last) are
    never used; plans with no isotropic stage get the deepest stages available.
    """
    n_stages = len(ratios)
    first, last = 1, n_stages - 2  # candidates: no full-resolution stage, no bottleneck
    if last < first:
        raise ValueError(
            f"The plan has {n_stages} encoder stage(s); the PI module needs at least 3 (full resolution, "
            "one level for the PI module, bottleneck). Use a configuration with a larger patch size or "
            "train with stock nnUNetTrainer."
        )
    iso = [s for s in range(first, last + 1) if ratios[s] < ISOTROPIC_BELOW]
    end = iso[0] if iso else last
    end = min(max(end, first + max_levels - 1), last)
    start = max(first, end - max_levels + 1)
    return list(range(start, end + 1))


@dataclass(frozen=True)
class PIPlan:
    """What the PI module does on one plan: per PI level its stage, ratio, channels and shape."""

    section_axis: int
    levels: tuple[int, ...]
    ratios: tuple[float, ...]
    channels: tuple[int, ...]
    inner_channels: tuple[int, ...]  # inside the PI module (channels // reduction)
    stage_ratios: tuple[float, ...]
    stage_spacings: tuple[tuple[float, ...], ...]
    stage_shapes: tuple[tuple[int, ...], ...]
    iso_sizes: tuple[int, ...]  # section-axis size of each PI level on the isotropic grid (training patch)


def plan_pi_module(
    spacing: Sequence[float],
    strides: Sequence[Sequence[int]],
    features_per_stage: Sequence[int],
    patch_size: Sequence[int] | None = None,
    settings: PISettings = PISettings(),
) -> PIPlan:
    """Validate and describe the PI module for a 3D plan and the user's ``settings`` (their levels, or the plan's
    choice where they name none; their channel reduction); raise a clear error where it cannot work."""
    pi_levels = settings.levels
    if len(spacing) != 3 or any(len(s) != 3 for s in strides):
        raise ValueError(
            f"ReIsoSeg works on 3D configurations only (spacing {tuple(spacing)}). Train a 3D configuration "
            "such as 3d_fullres with nnUNetTrainerReIso, or use stock nnUNetTrainer for 2d."
        )
    n_stages = len(strides)
    if len(features_per_stage) != n_stages:
        raise ValueError(f"features_per_stage has {len(features_per_stage)} entries for {n_stages} stages")
    ratios = stage_anisotropy(spacing, strides)
    axis = section_axis(spacing)
    if pi_levels is None:
        levels = default_pi_levels(ratios)
        # keep the window up to the first transition the PI Net cannot follow (rare: a plan that stops
        # pooling one lateral axis early)
        for i in range(1, len(levels)):
            if _pi_transition_problem(strides, levels[i], axis):
                levels = levels[:i]
                break
    else:
        levels = list(pi_levels)
    if not levels:
        raise ValueError("PISettings.levels is empty: the PI module needs at least one encoder level")
    if levels != list(range(levels[0], levels[0] + len(levels))):
        raise ValueError(f"PISettings.levels must be consecutive encoder stages, got {levels}")
    if levels[0] < 1 or levels[-1] > n_stages - 2:
        raise ValueError(
            f"PI levels {levels} are not usable on this plan: valid PI levels are 1..{n_stages - 2} "
            f"(the plan has {n_stages} stages; the full-resolution stage 0 and the bottleneck "
            f"{n_stages - 1} are never replaced)."
        )
    problems = [p for lv in levels[1:] if (p := _pi_transition_problem(strides, lv, axis))]
    if problems:
        raise ValueError(
            f"PI levels {levels} cannot be used on this plan: {'; '.join(problems)} (section axis {axis}). The PI "
            "Net halves every axis between consecutive PI levels, so the plan must halve both lateral axes there. "
            "Set pi = PISettings(levels=...) to stages joined by such strides in a subclass of nnUNetTrainerReIso.")
    shapes = stage_shapes(patch_size, strides) if patch_size is not None else []
    if shapes:
        for lvl in levels:
            if shapes[lvl][axis] < 2:
                raise ValueError(
                    f"PI level {lvl} has a section axis of size {shapes[lvl][axis]} for patch size "
                    f"{tuple(patch_size)}: there is nothing to make isotropic. Set pi = PISettings(levels=...) to "
                    f"shallower stages (e.g. {[lv for lv in range(1, lvl)] or 'none possible'}) in a subclass of "
                    "nnUNetTrainerReIso, or plan a larger patch."
                )
    level_ratios = tuple(ratios[lv] for lv in levels)
    iso = isotropic_sizes([shapes[lv][axis] for lv in levels], level_ratios) if shapes else ()
    channels = tuple(int(features_per_stage[lv]) for lv in levels)
    return PIPlan(
        section_axis=axis,
        levels=tuple(levels),
        ratios=level_ratios,
        channels=channels,
        inner_channels=reduced_channels(channels, settings.reduction),
        stage_ratios=tuple(ratios),
        stage_spacings=tuple(stage_spacings(spacing, strides)),
        stage_shapes=tuple(shapes),
        iso_sizes=iso,
    )

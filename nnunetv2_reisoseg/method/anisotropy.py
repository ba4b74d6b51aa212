"""Anisotropy arithmetic: per-stage ratios, the section axis and the choice of PI levels.

Everything here is a pure function of what nnU-Net's plans already hold (the configuration's
spacing, which is in network space, i.e. after ``transpose_forward``, and the per-stage strides), so
the trainer never asks the user for a number the plans imply.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A stage counts as isotropic once its section spacing is less than twice its lateral spacing: the
# same rule nnU-Net's planner uses to start pooling the section axis (get_pool_and_conv_props).
ISOTROPIC_BELOW = 2.0
# The reference uses three PI levels (encoder levels 1, 2, 3).
MAX_PI_LEVELS = 3


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
    stage_ratios: tuple[float, ...]
    stage_spacings: tuple[tuple[float, ...], ...]
    stage_shapes: tuple[tuple[int, ...], ...]


def plan_pi_module(
    spacing: Sequence[float],
    strides: Sequence[Sequence[int]],
    features_per_stage: Sequence[int],
    patch_size: Sequence[int] | None = None,
    pi_levels: Sequence[int] | None = None,
) -> PIPlan:
    """Validate and describe the PI module for a 3D plan; raise a clear error where it cannot work."""
    if len(spacing) != 3 or any(len(s) != 3 for s in strides):
        raise ValueError(
            f"ReIsoSeg works on 3D configurations only (spacing {tuple(spacing)}). Train a 3D configuration "
            "such as 3d_fullres with nnUNetTrainerReIso, or use stock nnUNetTrainer for 2d."
        )
    n_stages = len(strides)
    if len(features_per_stage) != n_stages:
        raise ValueError(f"features_per_stage has {len(features_per_stage)} entries for {n_stages} stages")
    ratios = stage_anisotropy(spacing, strides)
    levels = list(pi_levels) if pi_levels is not None else default_pi_levels(ratios)
    if not levels:
        raise ValueError("pi_levels is empty: the PI module needs at least one encoder level")
    if levels != list(range(levels[0], levels[0] + len(levels))):
        raise ValueError(f"pi_levels must be consecutive encoder stages, got {levels}")
    if levels[0] < 1 or levels[-1] > n_stages - 2:
        raise ValueError(
            f"pi_levels {levels} are not usable on this plan: valid PI levels are 1..{n_stages - 2} "
            f"(the plan has {n_stages} stages; the full-resolution stage 0 and the bottleneck "
            f"{n_stages - 1} are never replaced)."
        )
    shapes = stage_shapes(patch_size, strides) if patch_size is not None else []
    axis = section_axis(spacing)
    if shapes:
        for lvl in levels:
            if shapes[lvl][axis] < 2:
                raise ValueError(
                    f"PI level {lvl} has a section axis of size {shapes[lvl][axis]} for patch size "
                    f"{tuple(patch_size)}: there is nothing to make isotropic. Set pi_levels to shallower "
                    f"stages (e.g. {[lv for lv in range(1, lvl)] or 'none possible'}) in a subclass of "
                    "nnUNetTrainerReIso, or plan a larger patch."
                )
    return PIPlan(
        section_axis=axis,
        levels=tuple(levels),
        ratios=tuple(ratios[lv] for lv in levels),
        channels=tuple(int(features_per_stage[lv]) for lv in levels),
        stage_ratios=tuple(ratios),
        stage_spacings=tuple(stage_spacings(spacing, strides)),
        stage_shapes=tuple(shapes),
    )

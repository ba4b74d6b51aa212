"""The one check of every number and JSON file a command reads, before any work: voxel sizes (from options and
from files' metadata), block sizes, worker counts, thresholds and probabilities are finite and in range, and a
JSON file has the shape its reader expects. A failure is an ``InputError`` whose message names the option or
the file, the value, and the fix."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nnunetv2_reisoseg.errors import InputError

# voxel sizes in nm that a NIfTI header (float32) and nnU-Net's planning carry: 0.001 nm to 10 cm
MIN_VOXEL_NM, MAX_VOXEL_NM = 1e-3, 1e8


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a real number (a string, None, a bool, a complex)."""
    if isinstance(value, bool | str | bytes) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def spacing_problem(values: Any) -> str | None:
    """Why ``values`` is not a voxel size Z Y X in nm (None when it is one)."""
    try:
        items = list(values)
    except TypeError:
        return f"{values!r} is not three numbers"
    if len(items) != 3:
        return f"{_show(items)} has {len(items)} value(s), not three (Z Y X)"
    numbers = [_number(v) for v in items]
    if any(v is None for v in numbers):
        return f"{_show(items)} is not three numbers"
    if not all(math.isfinite(v) for v in numbers):  # type: ignore[arg-type]
        return f"{_show(items)} is not finite"
    if min(numbers) <= 0:  # type: ignore[type-var]
        return f"{_show(items)} has a value that is zero or negative"
    if min(numbers) < MIN_VOXEL_NM or max(numbers) > MAX_VOXEL_NM:  # type: ignore[type-var]
        return f"{_show(items)} is outside {MIN_VOXEL_NM:g}-{MAX_VOXEL_NM:g} nm (is the unit right?)"
    return None


def voxel_size(values: Any, where: str, fix: str = "give three positive numbers Z Y X in nm, e.g. 40 10 10"
               ) -> tuple[float, float, float]:
    """``values`` as a voxel size Z Y X in nm, or an ``InputError`` naming ``where`` (an option, or a file and
    its attribute) and ``fix``."""
    problem = spacing_problem(values)
    if problem is not None:
        raise InputError(f"{where}: {problem}; {fix}")
    z, y, x = (float(v) for v in values)
    return z, y, x


def _show(items: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else f"'{v}'" if isinstance(v, str | bytes) else str(v)
                           for v in items) + "]"


def whole_numbers(values: Any, where: str, n: int = 3, minimum: int = 1) -> tuple[int, ...]:
    """``n`` whole numbers of at least ``minimum`` (block sizes, shapes, factors)."""
    items = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else [values]
    ok = len(items) == n and all(_number(v) is not None and math.isfinite(float(v)) and float(v) == int(float(v))
                                 for v in items)
    if not ok or min(int(float(v)) for v in items) < minimum:
        raise InputError(f"{where}: {_show(items)} is not {n} whole number(s) of at least {minimum}")
    return tuple(int(float(v)) for v in items)


def workers(value: Any, where: str = "--workers") -> int:
    """A worker count: 0 (run here) or more processes; never more than a sane multiple of the cores."""
    n = _number(value)
    cap = 64 * (os.cpu_count() or 1)
    if n is None or not math.isfinite(n) or n != int(n) or not 0 <= n <= cap:
        raise InputError(f"{where}: {value!r} is not a number of worker processes; give 0 (run here) to {cap}")
    return int(n)


def dask_workers(n_workers: Any, scheduler: str | None) -> int:
    """``--workers`` (a local dask cluster) or ``--scheduler`` (a running one), not both; the worker count."""
    if n_workers and scheduler:
        raise InputError("--workers starts a local dask cluster, --scheduler joins one; give one")
    return workers(n_workers)


def number(value: Any, where: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False,
           what: str = "a number") -> float:
    """A finite number in [low, high] (an end excluded where ``*_open``)."""
    v = _number(value)
    inside = v is not None and math.isfinite(v) and (v > low if low_open else v >= low) and \
        (v < high if high_open else v <= high)
    if not inside:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InputError(f"{where}: {value!r} is not {what} in {span}")
    return float(v)  # type: ignore[arg-type]


def probability(value: Any, where: str) -> float:
    return number(value, where, 0.0, 1.0, what="a probability")


def probabilities(array: Any, where: str, tolerance: float = 1e-3) -> Any:
    """``array`` when it holds probabilities: a float dtype and every value finite in [0, 1] (within
    ``tolerance``, for float16 stores); else an ``InputError`` (an image or labels given by mistake)."""
    import numpy as np

    a = np.asarray(array)
    if a.dtype.kind != "f":
        raise InputError(f"{where}: dtype {a.dtype} holds no probabilities (expected floats in [0, 1]); give the "
                         "predicted probabilities, e.g. nnU-Net's .npz or predict-volume's OUT.zarr/probabilities")
    if a.size and not (np.isfinite(a).all() and a.min() >= -tolerance and a.max() <= 1 + tolerance):
        raise InputError(f"{where}: values from {float(np.nanmin(a)):g} to {float(np.nanmax(a)):g}"
                         f"{' and NaN or inf' if not np.isfinite(a).all() else ''} are not probabilities in [0, 1]; "
                         "give the predicted probabilities (softmax), not logits or an image")
    return a


def read_json(path: str | os.PathLike, what: str, fix: str) -> Any:
    """The JSON in ``path``; a missing, unreadable or malformed file is an ``InputError`` naming ``what`` it
    should be and ``fix``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file ({what}); {fix}")
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError:
        raise InputError(f"{path} is not text, so not {what}; {fix}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e}); {fix}") from None
    except ValueError as e:
        raise InputError(f"{path} is not valid JSON ({e}), so not {what}; {fix}") from None


def json_shape(data: Any, where: str, keys: Mapping[str, type | tuple[type, ...]], fix: str) -> dict:
    """``data`` as a JSON object holding ``keys`` with values of the given types, or an ``InputError``."""
    if not isinstance(data, dict):
        raise InputError(f"{where} holds a JSON {type(data).__name__}, not an object; {fix}")
    for key, kind in keys.items():
        if key not in data:
            raise InputError(f"{where} has no {key!r}; {fix}")
        if not isinstance(data[key], kind) or (kind is not bool and isinstance(data[key], bool)
                                               and bool not in (kind if isinstance(kind, tuple) else (kind,))):
            raise InputError(f"{where}: {key!r} is a {type(data[key]).__name__}, not what it must be; {fix}")
    return data


def read_plans(path: str | os.PathLike, fix: str = "give the plans file nnUNetv2_plan_and_preprocess wrote "
                                                   "($nnUNet_preprocessed/DATASET/nnUNetPlans.json)") -> dict:
    """nnU-Net plans from ``path``: a JSON object with its configurations, each with a spacing and a patch."""
    plans = json_shape(read_json(path, "nnU-Net plans", fix), str(path), {"configurations": dict}, fix)
    for name, cfg in plans["configurations"].items():
        if not isinstance(cfg, dict):
            raise InputError(f"{path}: configuration {name!r} is not an object; {fix}")
    return plans

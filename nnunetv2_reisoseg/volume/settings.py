"""The settings of a predict-volume run: what the user asks (``PredictOptions``: how to predict;
``RunOptions``: where and how the run executes) and what a run was made with (``RunSettings``: written into
the output, read by every worker, and compared by ``--c`` on the fields marked to resume)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from nnunetv2_reisoseg.volume.intensity import VolumeStats

TILES = "owned"  # each tile predicted once by the block holding its centre (runs before it recomputed halos)
_RESUME = {"resume": True}  # a field that must match for --c to continue a run (the rest is provenance)


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """How to predict: nnUNetv2_predict's options, and the blocks."""

    folds: tuple[int | str, ...] = (0,)
    checkpoint: str = "checkpoint_final.pth"
    step_size: float = 0.5
    tta: bool = True
    device: str = "cuda"
    block_size: tuple[int, int, int] | None = None  # None: a few patches per block (grid.block_shape)
    spacing: tuple[float, float, float] | None = None  # nm, Z Y X; None: the file's own voxel size
    save_probabilities: bool = False
    image: bool = True  # copy the input volume into the output as the image under the labels


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Where and how a run executes: serial, on a local dask cluster (``workers``) or on a ``scheduler``; whether
    it continues (``cont``) or replaces (``overwrite``) an existing output."""

    workers: int = 0
    scheduler: str | None = None
    cont: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class RunSettings:
    """What a run was made with; its JSON form (``to_json``) is the output's ``settings.json`` and its
    ``reisoseg`` attributes, key for key as before this class existed."""

    input: str = field(metadata=_RESUME)
    shape: tuple[int, ...] = field(metadata=_RESUME)
    spacing_nm: tuple[float, ...] = field(metadata=_RESUME)
    model: str = field(metadata=_RESUME)
    folds: tuple[int | str, ...] = field(metadata=_RESUME)
    checkpoint: str = field(metadata=_RESUME)
    step_size: float = field(metadata=_RESUME)
    tta: bool = field(metadata=_RESUME)
    device: str
    block_shape: tuple[int, ...] = field(metadata=_RESUME)
    chunks: tuple[int, ...] = field(metadata=_RESUME)
    save_probabilities: bool = field(metadata=_RESUME)
    transpose_forward: tuple[int, ...] = field(metadata=_RESUME)
    trainer: str | None
    configuration: str
    tiles: str = field(default=TILES, metadata=_RESUME)
    statistics: dict | None = field(default=None, metadata=_RESUME)  # VolumeStats.to_dict() of the input
    image: str | None = field(default=None, metadata=_RESUME)  # dtype of the input's copy in the output; None: none

    @classmethod
    def resume_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.metadata.get("resume"))

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples become lists, as json writes them

    @classmethod
    def from_json(cls, data: dict) -> RunSettings:
        values = {f.name: data.get(f.name) for f in fields(cls) if f.name in data}
        for k, v in values.items():
            if isinstance(v, list):
                values[k] = tuple(v)
        return cls(**values)

    def differences(self, old: dict) -> list[str]:
        """The resume fields whose values differ from ``old`` (a run's settings.json)."""
        new = self.to_json()
        return [k for k in self.resume_keys() if old.get(k) != new.get(k)]

    @property
    def volume_stats(self) -> VolumeStats:
        if self.statistics is None:
            raise ValueError("the run's settings hold no intensity statistics yet")
        bbox = self.statistics["bbox"]
        return VolumeStats(**{**self.statistics, "bbox": None if bbox is None else tuple(map(tuple, bbox))})


RESUME_KEYS = RunSettings.resume_keys()

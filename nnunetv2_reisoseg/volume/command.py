"""``reisoseg predict-volume`` as a command: its options (named as on the command line) as the prediction, run and
instance options of ``predict_volume``."""
from __future__ import annotations

from dataclasses import dataclass

from nnunetv2_reisoseg.io.checks import dask_workers
from nnunetv2_reisoseg.volume.predict import WATERSHED_KNOBS, InstanceOptions, Summary, predict_volume
from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions


@dataclass(frozen=True, kw_only=True)
class PredictCommand:
    """Everything ``reisoseg predict-volume`` was asked, named as its options."""

    input: str
    output: str
    model: str
    folds: tuple[str, ...] = ("0",)
    checkpoint: str = "checkpoint_final.pth"
    block_size: tuple[int, ...] | None = None
    step_size: float = 0.5
    disable_tta: bool = False
    device: str = "cuda"
    workers: int = 0
    scheduler: str | None = None
    spacing: tuple[float, ...] | None = None
    save_probabilities: bool = False
    no_image: bool = False
    c: bool = False  # nnU-Net's name for continuing
    overwrite: bool = False
    instances: str | None = None  # components or watershed
    min_size: float | None = None
    connectivity: int | None = None
    seed_threshold: float | None = None
    boundary_threshold: float | None = None
    foreground_threshold: float | None = None
    halo_nm: float | None = None
    min_seed_nm3: float | None = None

    def run(self) -> Summary:
        dask_workers(self.workers, self.scheduler)
        watershed = {k: getattr(self, k) for k in WATERSHED_KNOBS}
        instances = InstanceOptions.from_flags(self.instances, self.connectivity, self.min_size, watershed)
        options = PredictOptions(folds=tuple(self.folds), checkpoint=self.checkpoint, step_size=self.step_size,
                                 tta=not self.disable_tta, device=self.device,
                                 block_size=self.block_size and tuple(self.block_size),
                                 spacing=self.spacing and tuple(self.spacing),
                                 save_probabilities=self.save_probabilities, image=not self.no_image)
        run = RunOptions(workers=self.workers, scheduler=self.scheduler, cont=self.c, overwrite=self.overwrite)
        return predict_volume(self.input, self.output, self.model, options, run, instances)

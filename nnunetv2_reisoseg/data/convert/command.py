"""``reisoseg convert`` as a command: its options (named as on the command line) turned into the label rules and
options of ``convert``, the dataset written, and what to run next."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunetv2_reisoseg.data.convert.dataset import SPLITS_FILE, ConvertOptions, convert, volume_pairs
from nnunetv2_reisoseg.data.convert.labels import LabelRules, parse_label_map
from nnunetv2_reisoseg.io.checks import read_json


@dataclass(frozen=True, kw_only=True)
class ConvertCommand:
    """Everything ``reisoseg convert`` was asked, named as its options."""

    dataset_id: int
    name: str
    image: tuple[str, ...]
    labels: tuple[str, ...]
    test_image: tuple[str, ...] = ()
    test_labels: tuple[str, ...] = ()
    binary: bool = False
    instances: bool = False
    boundary_nm: float | None = None
    label_map: tuple[str, ...] = ()
    background: tuple[int, ...] | None = None
    ignore_value: tuple[int, ...] = ()
    unmapped_background: bool = False
    threshold: float | None = None
    spacing: tuple[float, ...] | None = None
    split: int = 1
    split_axis: str = "auto"
    downsample: tuple[int, ...] | None = None
    hold_out: float = 0.0
    class_names: tuple[str, ...] | None = None
    channel_name: str = "EM"
    overwrite: bool = False

    def options(self) -> ConvertOptions:
        rules = LabelRules(binary=self.binary, label_map=parse_label_map(self.label_map),
                           ignore=tuple(self.ignore_value), threshold=self.threshold,
                           unmapped_background=self.unmapped_background)
        if self.background is not None:
            rules.background = tuple(self.background)
        return ConvertOptions(spacing_nm=self.spacing and tuple(self.spacing), split=self.split,
                              split_axis=self.split_axis, rules=rules, channel_name=self.channel_name,
                              class_names=self.class_names and tuple(self.class_names),
                              downsample=tuple(self.downsample) if self.downsample else (1, 1, 1),
                              hold_out=self.hold_out, instances=self.instances, boundary_nm=self.boundary_nm)

    def run(self, raw: Path | None = None) -> Path:
        """Convert into ``raw`` (default ``$nnUNet_raw``); prints what was written and the next commands."""
        if raw is None:
            from nnunetv2_reisoseg.io.datasets import env_folder

            raw = env_folder("nnUNet_raw")
        train, test = volume_pairs(self.image, self.labels, self.test_image, self.test_labels)
        path = convert(raw, self.dataset_id, self.name, train, test, self.options(), self.overwrite)
        ds = read_json(path / "dataset.json", "the dataset.json convert wrote", "convert the dataset again")
        print(f"wrote {path}: {ds['numTraining']} training cases, labels {ds['labels']}")
        print(f"next: nnUNetv2_plan_and_preprocess -d {self.dataset_id} -c 3d_fullres && reisoseg info "
              f"{self.dataset_id}")
        if (path / SPLITS_FILE).is_file():
            print(f"then: cp {path / SPLITS_FILE} $nnUNet_preprocessed/{path.name}/ (one fold per block; "
                  "reisoseg benchmark copies it itself)")
        return path

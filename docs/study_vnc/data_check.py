"""What the VNC study's data contain: how many sections each labelled object spans, per class and split.

    nnUNet_raw=... python docs/study_vnc/data_check.py Dataset970_VNC [--min-voxels N]

Objects are the 3D connected components (26-connectivity, as `reisoseg evaluate` counts objects) of each
class in each case. Also prints the sections that hold no voxel of a class, which would be unlabelled
sections rather than empty tissue in a stack where the class is everywhere.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def spans(labels: np.ndarray, cls: int, min_voxels: int) -> list[int]:
    """Sections (z extent) of every connected component of ``cls`` with at least ``min_voxels`` voxels."""
    comp, n = ndimage.label(labels == cls, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    return [sl[0].stop - sl[0].start for i, sl in enumerate(ndimage.find_objects(comp), start=1)
            if sl is not None and sizes[i] >= min_voxels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="dataset folder name in $nnUNet_raw")
    ap.add_argument("--min-voxels", type=int, default=1,
                    help="ignore smaller components (default 1: every object)")
    a = ap.parse_args()
    root = Path(os.environ["nnUNet_raw"]) / a.dataset

    names = {v: k for k, v in json.loads((root / "dataset.json").read_text())["labels"].items() if v > 0}
    print(f"{a.dataset}: components of at least {a.min_voxels} voxels, 26-connected\n")
    print("| class | split | cases | objects | median span (sections) | spanning >= 4 | in one section | "
          "sections without the class |")
    print("|---|---|---|---|---|---|---|---|")
    for cls, name in sorted(names.items()):
        for split in ("labelsTr", "labelsTs"):
            files = sorted((root / split).glob("*.nii.gz"))
            if not files:
                continue
            all_spans, empty = [], []
            for f in files:
                lab = sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
                all_spans += spans(lab, cls, a.min_voxels)
                empty.append(int((~(lab == cls).any(axis=(1, 2))).sum()))
            s = np.array(all_spans)
            print(f"| {name} | {'training' if split == 'labelsTr' else 'test'} | {len(files)} | {len(s)} | "
                  f"{np.median(s):g} | {np.mean(s >= 4):.0%} | {np.mean(s == 1):.0%} | "
                  f"{', '.join(map(str, empty))} of {lab.shape[0]} |")


if __name__ == "__main__":
    main()

"""What the VNC study's data contain, before training: how many sections the labelled objects span, per class
and split, and which sections hold none of a class (the benchmark's report opens with the same table).

    nnUNet_raw=... python docs/study_vnc/data_check.py Dataset970_VNC
"""
import json
import os
import sys
from pathlib import Path

from nnunetv2_reisoseg.benchmark.datacheck import check_dataset
from nnunetv2_reisoseg.benchmark.report import _data

root = Path(os.environ["nnUNet_raw"]) / (sys.argv[1] if len(sys.argv) > 1 else "Dataset970_VNC")
labels = json.loads((root / "dataset.json").read_text())["labels"]
data = check_dataset(root, labels)
print("\n".join(_data({"data": data, "classes": {str(v): k for k, v in labels.items() if isinstance(v, int)}})))

"""The data check every benchmark report opens with: object spans along the section axis, and the sections
that hold none of a class, on labels with known answers."""
import numpy as np
import SimpleITK as sitk

from nnunetv2_reisoseg.benchmark.datacheck import check_dataset, object_spans
from nnunetv2_reisoseg.benchmark.report import _data


def _write(path, labels, spacing_zyx=(40.0, 5.0, 5.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(labels.astype(np.uint8))
    img.SetSpacing(spacing_zyx[::-1])
    sitk.WriteImage(img, str(path))


def test_spans_count_sections_of_each_3d_object():
    lab = np.zeros((10, 20, 20), np.uint8)
    lab[0:6, 2:5, 2:5] = 1  # 6 sections
    lab[7, 10:12, 10:12] = 1  # 1 section
    lab[2:4, 15:18, 15:18] = 2  # another class
    lab[8, 0, 0] = 1
    lab[9, 1, 1] = 1  # joined to the one above through a corner (26-connectivity): 2 sections
    assert sorted(object_spans(lab, 1)) == [1, 2, 6]
    assert object_spans(lab, 2) == [2]
    assert sorted(object_spans(lab.transpose(1, 0, 2), 1, section_axis=1)) == [1, 2, 6]


def test_dataset_check_per_split_and_class_and_its_report_section(tmp_path):
    a = np.zeros((8, 16, 16), np.uint8)
    a[:, 2:6, 2:6] = 1  # through all 8 sections
    a[3, 10:12, 10:12] = 1  # in one section
    b = np.zeros((8, 16, 16), np.uint8)
    b[2:7, 8:12, 8:12] = 1  # 5 sections; sections 0, 1 and 7 hold no mitochondria
    _write(tmp_path / "labelsTr" / "c_000.nii.gz", a)
    _write(tmp_path / "labelsTr" / "c_001.nii.gz", b)
    _write(tmp_path / "labelsTs" / "c_002.nii.gz", a.transpose(1, 0, 2), (5.0, 40.0, 5.0))  # sections along y
    data = check_dataset(tmp_path, {"background": 0, "mitochondria": 1, "ignore": 2})
    tr, ts = data["training"]["1"], data["test"]["1"]
    assert (tr["cases"], tr["objects"], tr["median_span"]) == (2, 3, 5.0)
    assert tr["span_4_or_more"] == 2 / 3 and tr["single_section"] == 1 / 3
    assert tr["sections_without"] == [0, 3] and tr["sections"] == [8, 8]
    assert tr["voxel_fraction"] == [float((a == 1).mean()), float((b == 1).mean())]
    assert (ts["objects"], ts["median_span"], ts["sections_without"]) == (2, 4.5, [0])  # the coarsest axis
    assert set(data["training"]) == {"1"}  # no ignore label, no background
    lines = _data({"data": data, "classes": {"0": "background", "1": "mitochondria"}})
    assert lines[0] == "## What the data contain"
    assert "| mitochondria | training | 2 | 3 | 5 | 67% | 33% | 3 in 1 of 2 cases |" in "\n".join(lines)
    assert _data({"classes": {}}) == []  # results from before the check

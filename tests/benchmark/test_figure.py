"""The XZ cut of a test block: the plane where predictions break an object at a section, drawn from the files."""
import json

import numpy as np
import SimpleITK as sitk

from nnunetv2_reisoseg.benchmark.figure import FIGURE, breaks, choose_cut, write_xz_figure


def _tube():
    t = np.zeros((10, 12, 30), bool)
    t[1:9, 3:6, 5:12] = True  # runs across 8 sections
    t[1:9, 8:10, 15:25] = True
    return t


def test_a_break_is_a_section_missing_inside_an_object():
    truth = _tube()
    pred = truth.copy()
    pred[4, 8, 18:21] = False  # three voxels of one section, in the plane y = 8
    b = breaks(truth, pred)
    assert b.sum() == 3 and set(np.nonzero(b)[0] + 1) == {4}
    assert choose_cut(truth, [truth.copy(), pred]) == (8, 3)
    assert choose_cut(truth, [truth])[1] == 0  # no break: the plane with the most truth
    ends = truth.copy()
    ends[1, 3:6, 5:12] = False  # a shorter object is not a break
    assert not breaks(truth, ends).any()


def _nii(path, arr):
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing((10.0, 10.0, 40.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def test_the_figure_draws_the_methods_on_disk_and_names_the_others(tmp_path):
    ds, out = tmp_path / "Dataset001_X", tmp_path / "bench"
    (ds).mkdir()
    (ds / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}))
    truth = _tube()
    _nii(ds / "labelsTs" / "x_005.nii.gz", truth)
    _nii(ds / "imagesTs" / "x_005_0000.nii.gz", np.random.default_rng(0).integers(0, 255, truth.shape))
    broken = truth.copy()
    broken[4, 8, 18:21] = False
    _nii(out / "predictions" / "seed0" / "aux" / "fold_1" / "x_005.nii.gz", broken)
    _nii(out / "predictions" / "seed0" / "stock_half" / "fold_1" / "x_005.nii.gz", truth)
    results = {"methods": ["stock", "reiso", "aux", "stock_half"], "pairs": [[0, 0], [0, 1]], "spacing": [40, 10, 10],
               "classes": {"0": "background", "1": "mitochondria"}, "primary_classes": ["1"],
               "trainings": [{"cases": [{"split": "test", "case": "x_005"}]}]}
    info = write_xz_figure(results, out, ds)
    assert info == {"case": "x_005", "pair": [0, 1], "y": 8, "class": 1, "breaks": {"aux": 3, "stock_half": 0},
                    "missing": ["stock", "reiso"]}
    assert (out / "plots" / FIGURE).stat().st_size > 5_000
    assert write_xz_figure(results, out, None) is None

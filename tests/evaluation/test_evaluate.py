"""`reisoseg evaluate`: known answers on built volumes, reference values from scikit-image and MONAI."""
import json

import h5py
import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.evaluation import EvaluationError, evaluate_files, evaluate_labels, fields
from nnunetv2_reisoseg.evaluation.evaluate import ReadOptions
from nnunetv2_reisoseg.evaluation.measures import object_measures
from nnunetv2_reisoseg.evaluation.objects import ContingencyTable
from nnunetv2_reisoseg.evaluation.surface import diagonal

SPACING = (40.0, 5.0, 5.0)


def _tube(shape=(12, 24, 24), z=(1, 11), y=(5, 9), x=(5, 9), label=1, out=None):
    """A straight tube along the section axis, ``z`` sections long."""
    v = np.zeros(shape, np.uint8) if out is None else out
    v[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = label
    return v


def test_identical_volumes_are_perfect():
    ref = _tube()
    _tube(z=(2, 6), y=(14, 20), x=(14, 20), out=ref)
    m = evaluate_labels(ref.copy(), ref, SPACING)["1"]
    assert list(m) == list(fields())
    assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 1.0
    assert m["ap50"] == m["ap75"] == m["f1_50"] == m["f1_75"] == 1.0
    assert m["voi_split"] == m["voi_merge"] == m["arand"] == m["hd95_nm"] == m["assd_nm"] == 0.0
    assert m["ref_objects"] == m["pred_objects"] == 2
    assert m["split_objects"] == m["merged_objects"] == m["missed_objects"] == m["false_objects"] == 0
    assert m["empty_prediction"] is False and m["empty_reference"] is False


def test_one_section_gap_is_one_split_and_no_merge():
    ref = _tube(z=(1, 11))  # 10 sections
    pred = ref.copy()
    pred[6] = 0  # the prediction loses one section: two pieces
    m = evaluate_labels(pred, ref, SPACING)["1"]
    assert (m["ref_objects"], m["pred_objects"]) == (1, 2)
    assert m["split_objects"] == 1 and m["merged_objects"] == 0
    assert m["missed_objects"] == m["false_objects"] == 0
    assert m["voi_split"] > 0.5 * m["voi_merge"] > 0  # the split dominates
    assert m["f1_50"] == pytest.approx(2 * 1 / 3)  # the 5-section piece has IoU 0.5 with the 10-section tube
    assert m["dice"] == pytest.approx(2 * 9 / 19)  # voxel overlap barely notices


def test_two_tubes_joined_by_a_bridge_are_one_merge():
    ref = _tube(y=(4, 8))
    _tube(y=(12, 16), out=ref)
    pred = ref.copy()
    pred[5, 8:12, 5:9] = 1  # a bridge in one section
    m = evaluate_labels(pred, ref, SPACING)["1"]
    assert (m["ref_objects"], m["pred_objects"]) == (2, 1)
    assert m["merged_objects"] == 1 and m["split_objects"] == 0
    assert m["voi_merge"] > 2 * m["voi_split"]  # the merge dominates


def test_far_specks_are_false_objects_and_a_missed_object_is_missed():
    ref = _tube()
    _tube(z=(2, 5), y=(18, 22), x=(2, 6), out=ref)  # this one the prediction misses
    pred = _tube()
    for z, y, x in ((0, 20, 20), (11, 0, 23), (6, 22, 16)):
        pred[z, y, x] = 1
    m = evaluate_labels(pred, ref, SPACING)["1"]
    assert m["false_objects"] == 3 and m["missed_objects"] == 1
    assert m["split_objects"] == m["merged_objects"] == 0


def test_empty_prediction_has_finite_distances_and_zero_recall():
    ref = _tube()
    m = evaluate_labels(np.zeros_like(ref), ref, SPACING, classes=[1])["1"]
    diag = diagonal(ref.shape, SPACING)
    assert m["hd95_nm"] == m["assd_nm"] == pytest.approx(diag) and np.isfinite(diag)
    assert m["empty_prediction"] is True and m["empty_reference"] is False
    assert m["recall"] == m["dice"] == m["precision"] == m["ap75"] == m["f1_50"] == 0.0
    assert m["missed_objects"] == 1 and m["pred_objects"] == 0


def test_connectivity_decides_what_one_object_is():
    ref = np.zeros((4, 8, 8), np.uint8)
    ref[1, 2, 2] = ref[2, 3, 3] = 1  # touch at a corner only
    assert evaluate_labels(ref, ref, SPACING, connectivity=26)["1"]["ref_objects"] == 1
    assert evaluate_labels(ref, ref, SPACING, connectivity=6)["1"]["ref_objects"] == 2


def test_ap_ranks_by_probability_when_given_else_by_size():
    ref = _tube(z=(1, 5), y=(2, 6), x=(2, 6))
    _tube(z=(6, 10), y=(2, 6), x=(2, 6), out=ref)
    pred = ref.copy()
    pred[1:11, 14:22, 14:22] = 1  # the largest predicted object matches nothing
    # by size the false object comes first: precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> 2/3 at every point
    assert evaluate_labels(pred, ref, SPACING)["1"]["ap75"] == pytest.approx(2 / 3)
    prob = np.where(pred == 1, 0.9, 0.1).astype(np.float32)
    prob[1:11, 14:22, 14:22] = 0.55  # least confident: ranked last
    m = evaluate_labels(pred, ref, SPACING, probabilities=prob)["1"]
    assert m["ap75"] == 1.0 and m["f1_75"] == pytest.approx(2 * 2 / 5)


def test_voi_and_adapted_rand_equal_scikit_image():
    from skimage.metrics import adapted_rand_error, variation_of_information

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 6, (6, 20, 20)) * (rng.random((6, 20, 20)) > 0.3)
    pred = np.where(rng.random(ref.shape) > 0.2, ref, rng.integers(0, 9, ref.shape))
    table = ContingencyTable.from_labels(ref, pred)
    m = object_measures(table)
    split, merge = variation_of_information(ref, pred)
    assert (m["voi_split"], m["voi_merge"]) == pytest.approx((split, merge), abs=1e-9)
    assert m["arand"] == pytest.approx(adapted_rand_error(ref, pred)[0], abs=1e-9)


def test_surface_distances_equal_monai():
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    rng = np.random.default_rng(1)
    ref = _tube(z=(2, 9), y=(3, 12), x=(4, 10)).astype(bool)
    pred = ref.copy()
    pred[rng.random(ref.shape) > 0.97] = True
    pred[4:6, 3:6] = False
    m = evaluate_labels(pred.astype(np.uint8), ref.astype(np.uint8), SPACING)["1"]
    p, r = (torch.from_numpy(a[None, None].astype(np.float32)) for a in (pred, ref))
    hd95 = compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=list(SPACING)).item()
    assd = compute_average_surface_distance(p, r, include_background=True, symmetric=True,
                                            spacing=list(SPACING)).item()
    assert m["hd95_nm"] == pytest.approx(hd95, rel=1e-5) and m["assd_nm"] == pytest.approx(assd, rel=1e-5)


def test_contingency_tables_add_up_block_by_block():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 5, (8, 16, 16))
    pred = rng.integers(0, 7, (8, 16, 16))
    whole = ContingencyTable.from_labels(ref, pred)
    parts = ContingencyTable.from_labels(ref[:3], pred[:3]) + ContingencyTable.from_labels(ref[3:], pred[3:])
    assert object_measures(parts) == pytest.approx(object_measures(whole)) and parts.n_voxels == ref.size
    as_dict = {(a, b): c for a, b, c in zip(*(x.tolist() for x in (whole.ref_ids, whole.pred_ids, whole.counts)))}
    assert as_dict == {(a, b): c for a, b, c in zip(*(x.tolist() for x in (parts.ref_ids, parts.pred_ids,
                                                                              parts.counts)))}


def test_ignore_label_voxels_count_nowhere():
    ref = _tube()
    pred = ref.copy()
    pred[0, 20:23, 20:23] = 1  # a false speck ...
    ref[0, 18:24, 18:24] = 255  # ... where nobody annotated
    m = evaluate_labels(pred, ref, SPACING, classes=[1], ignore_label=255)["1"]
    assert m["false_objects"] == 0 and m["dice"] == 1.0


def _nii(path, arr, spacing=SPACING):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing[::-1])
    sitk.WriteImage(img, str(path))
    return str(path)


def test_cli_json_output_and_errors(tmp_path, capsys):
    ref = _tube()
    pred = ref.copy()
    pred[6] = 0
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f["seg"] = pred
        f["seg"].attrs["resolution"] = SPACING
    r = _nii(tmp_path / "ref.nii.gz", ref)
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "-p", f"{tmp_path / 'pred.h5'}:seg", "-r", r, "-o", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    assert written.pop("reisoseg")["command"] == "evaluate"  # the file carries evaluate's mark, stdout the classes
    assert printed == written and list(printed) == ["1"]
    assert printed["1"]["split_objects"] == 1 and list(printed["1"]) == list(fields())

    def fails(args, match):
        with pytest.raises(SystemExit, match=match):
            main(["evaluate", *args])

    fails(["-p", f"{tmp_path / 'pred.h5'}:seg", "-r", r, "-o", str(out)],
          "exists; choose another output, or pass --overwrite")
    fails(["-p", f"{tmp_path / 'pred.h5'}:nokey", "-r", r], "nokey")
    fails(["-p", _nii(tmp_path / "small.nii.gz", ref[:5]), "-r", r], "shape")
    fails(["-p", _nii(tmp_path / "sp.nii.gz", pred, (50.0, 5.0, 5.0)), "-r", r], "voxel sizes differ")
    fails(["-p", _nii(tmp_path / "p.nii.gz", pred), "-r", r, "--classes", "1", "3"], r"class \[3\] in neither")
    fails(["-p", str(tmp_path / "missing.nii.gz"), "-r", r], "no such file")
    # --spacing settles a disagreement
    assert main(["evaluate", "-p", str(tmp_path / "sp.nii.gz"), "-r", r, "--spacing", *map(str, SPACING)]) == 0


def test_probabilities_of_predict_volume_and_nnunet(tmp_path):
    import zarr

    from nnunetv2_reisoseg.evaluation.evaluate import read_probabilities

    prob = np.random.default_rng(3).random((2, 4, 6, 6)).astype(np.float16)
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="w")
    root.create_group("probabilities").create_array("0", data=prob)
    np.savez(tmp_path / "case.npz", probabilities=prob)
    assert np.array_equal(read_probabilities(str(tmp_path / "out.zarr:probabilities")), prob)
    assert np.array_equal(read_probabilities(str(tmp_path / "case.npz")), prob)
    with pytest.raises(EvaluationError, match="do not fit"):
        evaluate_labels(np.ones((4, 6, 7), np.uint8), np.ones((4, 6, 7), np.uint8), SPACING, probabilities=prob)


def test_predict_volume_output_with_its_probabilities(tmp_path, capsys):
    import zarr

    from nnunetv2_reisoseg.io.volumes import COMPLETE_ATTR
    from nnunetv2_reisoseg.volume.output import prepare
    from nnunetv2_reisoseg.volume.settings import RunSettings

    ref = _tube(z=(1, 5), y=(2, 6), x=(2, 6))
    _tube(z=(6, 10), y=(2, 6), x=(2, 6), out=ref)
    pred = ref.copy()
    pred[1:11, 14:22, 14:22] = 1  # the largest predicted object matches nothing
    out = tmp_path / "seg.zarr"
    settings = RunSettings(input="vol.h5:raw", shape=ref.shape, spacing_nm=tuple(SPACING), model="model", folds=(0,),
                           checkpoint="checkpoint_final.pth", step_size=0.5, tta=False, device="cpu",
                           block_shape=ref.shape, chunks=ref.shape, save_probabilities=True,
                           transpose_forward=(0, 1, 2), trainer="nnUNetTrainer", configuration="3d_fullres")
    prepare(out, settings, {"background": 0, "mito": 1}, 2, None)
    root = zarr.open_group(str(out), mode="r+")
    root["labels/semantic/0"][...] = pred
    prob = np.where(pred == 1, 0.9, 0.1).astype(np.float16)
    prob[1:11, 14:22, 14:22] = 0.55
    root["probabilities"]["0"][...] = np.stack([1 - prob, prob])
    r = _nii(tmp_path / "ref.nii.gz", ref)
    # a store whose run has not finished is refused (its missing blocks would read as background) ...
    with pytest.raises(SystemExit, match=r"unfinished reisoseg predict-volume output.*--allow-unfinished"):
        main(["evaluate", "-p", str(out), "-r", r])
    assert main(["evaluate", "-p", str(out), "-r", r, "--allow-unfinished"]) == 0
    capsys.readouterr()
    root.attrs[COMPLETE_ATTR] = {"blocks": 1}  # ... until the run marks it complete, as predict-volume's last step
    assert main(["evaluate", "-p", str(out), "-r", r]) == 0
    assert json.loads(capsys.readouterr().out)["1"]["ap75"] == pytest.approx(2 / 3)  # by size
    assert main(["evaluate", "-p", str(out), "-r", r, "--probabilities", f"{out}:probabilities"]) == 0
    assert json.loads(capsys.readouterr().out)["1"]["ap75"] == 1.0  # by mean probability


def test_labels_that_are_not_classes_are_refused_never_scored(tmp_path):
    """Issue 28: float labels (0.5, 2.7) became classes "0" and "2" with Dice 1.0; negative values and CREMI's
    background 2**64 - 1 were scored as classes."""
    ref = _tube()
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f["ref"] = ref
        for key, data in (("float", ref * 0.5 + (ref == 0) * 2.7), ("neg", ref.astype(np.int16) - 1),
                          ("cremi", np.where(ref == 1, 1, 2**64 - 1).astype(np.uint64)),
                          ("fifty", np.where(ref == 1, 1, 50).astype(np.uint8))):
            f[key] = data
        for key in f:
            f[key].attrs["resolution"] = SPACING
    p = f"{tmp_path}/l.h5"
    with pytest.raises(SystemExit, match=r"labels are not integers \(values such as \[0.5, 2.7\]\).*--background"):
        main(["evaluate", "-p", f"{p}:float", "-r", f"{p}:ref"])
    with pytest.raises(SystemExit, match=r"negative label values \[-1\]"):
        main(["evaluate", "-p", f"{p}:neg", "-r", f"{p}:ref"])
    # CREMI's background is background by default, as in convert; other values with --background
    assert set(evaluate_files(f"{p}:cremi", f"{p}:ref")) == {"1"}
    assert evaluate_files(f"{p}:cremi", f"{p}:ref")["1"]["dice"] == 1.0
    assert set(evaluate_files(f"{p}:fifty", f"{p}:ref")) == {"1", "50"}
    assert set(evaluate_files(f"{p}:fifty", f"{p}:ref", reading=ReadOptions(background=(0, 50)))) == {"1"}
    with pytest.raises(SystemExit, match=r"negative label values \[-1\]"):  # blockwise reads blocks alike
        main(["evaluate", "-p", f"{p}:neg", "-r", f"{p}:ref", "--blockwise"])


def test_an_empty_prediction_has_the_worst_adapted_rand_error():
    ref = _tube()
    m = evaluate_labels(np.zeros_like(ref), ref, SPACING, classes=[1])["1"]
    assert m["arand"] == 1.0 and m["dice"] == 0.0  # scikit-image's value here, 0.0, would read as perfect
    elsewhere = _tube(y=(14, 20), x=(14, 20))  # objects, but none where the reference has one
    assert evaluate_labels(elsewhere, ref, SPACING)["1"]["arand"] == 1.0


def test_the_result_is_printed_before_o_and_o_is_checked_before_work(tmp_path, capsys, monkeypatch):
    import os

    r = _nii(tmp_path / "ref.nii.gz", _tube())
    p = _nii(tmp_path / "pred.nii.gz", _tube(z=(2, 11)))
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda q, mode: False if str(q) == str(ro) else real(q, mode))
    with pytest.raises(SystemExit, match="is not writable"):
        main(["evaluate", "-p", p, "-r", r, "-o", str(ro / "m.json")])
    assert capsys.readouterr().out == ""  # refused before any work
    # the folder of -o is made; a write that fails after the work still shows the result
    assert main(["evaluate", "-p", p, "-r", r, "-o", str(tmp_path / "new" / "m.json")]) == 0
    written = json.loads((tmp_path / "new" / "m.json").read_text())
    assert {k: v for k, v in written.items() if k != "reisoseg"} == json.loads(capsys.readouterr().out)
    # -o replaces only a result evaluate wrote
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    with pytest.raises(SystemExit, match="not an evaluate result"):
        main(["evaluate", "-p", p, "-r", r, "-o", str(tmp_path / "notes.json"), "--overwrite"])
    with pytest.raises(SystemExit, match="which holds"):
        main(["evaluate", "-p", p, "-r", r, "-o", r, "--overwrite"])
    assert main(["evaluate", "-p", p, "-r", r, "-o", str(tmp_path / "new" / "m.json"), "--overwrite"]) == 0
    capsys.readouterr()
    import nnunetv2_reisoseg.io.folders as folders

    def full(target, write):
        raise OSError("No space left on device")

    monkeypatch.setattr(folders, "write_file", full)
    with pytest.raises(SystemExit, match=r"the result above could not be written.*No space left"):
        main(["evaluate", "-p", p, "-r", r, "-o", str(tmp_path / "m2.json")])
    assert json.loads(capsys.readouterr().out)["1"]["dice"] > 0.9


def test_binary_scores_instance_ids_against_a_semantic_prediction(tmp_path, capsys):
    """CREMI's clefts are instance ids on 2**64 - 1: with --binary every id is the one class the model predicts,
    in memory and block by block alike."""
    ref = np.full((12, 24, 24), 2**64 - 1, np.uint64)
    ref[1:11, 5:9, 5:9] = 7
    ref[2:6, 14:20, 14:20] = 12
    pred = (ref != 2**64 - 1).astype(np.uint8)
    pred[6] = 0  # the first object broken at one section
    with h5py.File(tmp_path / "v.h5", "w") as f:
        for key, data in (("ref", ref), ("pred", pred)):
            f[key] = data
            f[key].attrs["resolution"] = SPACING
    p, r = f"{tmp_path}/v.h5:pred", f"{tmp_path}/v.h5:ref"
    assert set(evaluate_files(p, r)) == {"1", "7", "12"}  # without it, ids are classes
    one = evaluate_files(p, r, reading=ReadOptions(binary=True))
    assert set(one) == {"1"} and one["1"]["ref_objects"] == 2 and one["1"]["split_objects"] == 1
    capsys.readouterr()
    assert main(["evaluate", "-p", p, "-r", r, "--binary", "--blockwise", "--block-size", "5", "10", "10"]) == 0
    blocks = json.loads(capsys.readouterr().out)["1"]
    assert {k: v for k, v in blocks.items() if k not in ("hd95_nm", "assd_nm")} == pytest.approx(
        {k: v for k, v in one["1"].items() if k not in ("hd95_nm", "assd_nm")})

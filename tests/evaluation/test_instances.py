"""evaluate --instances: object ids scored as objects against instance truth (no connected components), in memory
and block by block alike."""
import numpy as np
import pytest

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.evaluation import EvaluationError
from nnunetv2_reisoseg.evaluation.blockwise import BlockwiseRun, evaluate_blockwise
from nnunetv2_reisoseg.evaluation.evaluate import ReadOptions, evaluate_files, evaluate_instances
from tests.evaluation.test_blockwise import _write

SPACING = (40.0, 8.0, 8.0)


def _touching(shape=(8, 40, 44)) -> np.ndarray:
    """Instance truth: two pairs of touching boxes (one id each), a lone box, and an id in two separate places."""
    ids = np.zeros(shape, np.uint64)
    ids[1:5, 2:12, 2:10], ids[1:5, 2:12, 10:20] = 7, 9  # touching along x
    ids[2:7, 20:30, 5:15], ids[2:7, 30:38, 5:15] = 11, 3  # touching along y
    ids[1:6, 25:35, 25:40] = 5
    ids[0:2, 0:4, 30:36], ids[6:8, 36:40, 38:44] = 2**40, 2**40  # one object in two parts, a 64-bit id
    return ids


def test_instance_truth_scores_1_against_itself_and_a_merged_pair_lowers_it():
    truth = _touching()
    same = evaluate_instances(truth, truth, SPACING)["1"]
    assert same["ap75"] == same["ap50"] == same["f1_75"] == 1.0 and same["ref_objects"] == 6  # not 7 components
    assert same["merged_objects"] == same["split_objects"] == 0
    merged = truth.copy()
    merged[merged == 9] = 7  # components of the mask would see no difference
    m = evaluate_instances(merged, truth, SPACING)["1"]
    assert m["dice"] == 1.0 and m["pred_objects"] == 5 and m["merged_objects"] == 1
    assert m["ap75"] < 1.0 and m["ap50"] < 1.0 and m["voi_merge"] > 0 == m["voi_split"]


def test_blocks_give_the_in_memory_result_and_the_cli_reads_ids(tmp_path, capsys):
    truth = _touching()
    pred = truth.copy()
    pred[pred == 3] = 11  # a merge
    pred[4:7, 20:30, 5:10] = 12  # a split
    t, p = _write(tmp_path / "t.zarr", truth), _write(tmp_path / "p.zarr", pred)
    memory = evaluate_files(p, t, reading=ReadOptions(instances=True))
    blocks = evaluate_blockwise(p, t, reading=ReadOptions(instances=True),
                                run=BlockwiseRun(block_shape=(3, 16, 13), progress=False))
    assert memory["1"]["merged_objects"] == 1 and memory["1"]["split_objects"] == 1
    for k, v in memory["1"].items():
        assert blocks["1"][k] == (None if k in ("hd95_nm", "assd_nm") else pytest.approx(v)), k
    assert main(["evaluate", "-p", p, "-r", t, "--instances"]) == 0
    assert '"merged_objects": 1' in capsys.readouterr().out


def test_the_reference_ignore_id_is_no_object_and_bad_combinations_are_refused(tmp_path):
    truth = _touching()
    truth[:, :, 42:] = 99  # not annotated
    pred = truth.copy()
    pred[pred == 99] = 0
    r = evaluate_instances(pred, truth, SPACING, ignore_label=99)["1"]
    assert r["ap75"] == 1.0 and r["ref_objects"] == 6
    t, p = _write(tmp_path / "t.zarr", truth), _write(tmp_path / "p.zarr", pred)
    blocks = evaluate_blockwise(p, t, ignore_label=99, reading=ReadOptions(instances=True),
                                run=BlockwiseRun(block_shape=(3, 16, 13), progress=False))
    assert blocks["1"]["ap75"] == 1.0 and blocks["1"]["ref_objects"] == 6
    with pytest.raises(EvaluationError, match="give one"):
        ReadOptions(binary=True, instances=True)
    with pytest.raises(SystemExit, match="leave --classes out"):
        main(["evaluate", "-p", p, "-r", t, "--instances", "--classes", "2"])

"""One registry defines every measure: adding one is one ``register``, and evaluate (in memory and blockwise), the
benchmark's titles, directions and verdicts take it from there."""
import numpy as np
import pytest

from nnunetv2_reisoseg.benchmark.metrics import higher_is_better, metric_titles
from nnunetv2_reisoseg.benchmark.stats import summarize
from nnunetv2_reisoseg.evaluation import evaluate_labels, fields
from nnunetv2_reisoseg.evaluation import measures as ms
from nnunetv2_reisoseg.evaluation.blockwise import BlockwiseRun, evaluate_blockwise
from nnunetv2_reisoseg.evaluation.objects import f1_at
from tests.evaluation.test_blockwise import _pair, _write


@pytest.fixture
def f1_90():
    """The one edit that adds a measure: object F1 at IoU 0.9 (taken out again after the test)."""
    ms.register(ms.Measure("f1_90", "object F1 (IoU 0.9)", True, ms.TABLE, lambda s: f1_at(s.objects.pairs, 0.9)))
    yield "f1_90"
    ms.MEASURES.pop("f1_90")


def test_a_registered_measure_reaches_evaluate_the_blockwise_pass_and_the_benchmark(tmp_path, f1_90):
    pred, ref = _pair()
    memory = evaluate_labels(pred, ref, (40.0, 8.0, 8.0))
    assert fields()[-1] == f1_90 and all(list(row) == list(fields()) for row in memory.values())
    assert 0 <= memory["1"][f1_90] <= memory["1"]["f1_75"]  # a stricter threshold matches fewer objects
    p, r = _write(tmp_path / "p.zarr", pred), _write(tmp_path / "r.zarr", ref)
    blocks = evaluate_blockwise(p, r, run=BlockwiseRun(block_shape=(5, 16, 13), progress=False))
    assert blocks["1"][f1_90] == pytest.approx(memory["1"][f1_90])
    assert metric_titles()[f1_90] == "object F1 (IoU 0.9)" and higher_is_better(f1_90) is True
    assert metric_titles()["iso_" + f1_90].endswith("vs isotropic truth") and higher_is_better("iso_f1_90")
    rows = [{"method": meth, "seed": 0, "fold": f, "split": "test", "case": "c", "class": 1,
             "metrics": {f1_90: v + 0.1 * f}} for f in range(3) for meth, v in (("stock", 0.2), ("reiso", 0.4))]
    entry = summarize(rows, ["stock", "reiso"])["test"]["1"][f1_90]
    assert entry["paired"]["reiso - stock"]["mean_difference"] == pytest.approx(0.2)


def test_the_registry_says_how_each_measure_adds_up_across_blocks():
    """Counts and tables are sums over disjoint voxels; surface distances need the whole masks (null blockwise)."""
    assert ms.surface_fields() == ("hd95_nm", "assd_nm")
    a, b = ms.VoxelCounts(3, 4, 2), ms.VoxelCounts(1, 0, 0)
    assert a + b == ms.VoxelCounts(4, 4, 2)
    row = ms.measure_row(ms.ClassSummary(a + b, ms.ObjectView(_table())))
    assert row["dice"] == pytest.approx(2 * 2 / 8) and row["hd95_nm"] is None
    assert {m.name for m in ms.MEASURES.values() if not m.compared} == {"empty_prediction", "empty_reference"}
    with pytest.raises(ValueError, match="source must be one of"):
        ms.register(ms.Measure("x", "x", True, "pixels", lambda s: 0))


def _table():
    from nnunetv2_reisoseg.evaluation.objects import ContingencyTable

    ref = np.zeros((2, 4, 4), np.int64)
    ref[0, :2, :2] = 1
    return ContingencyTable.from_labels(ref, ref)

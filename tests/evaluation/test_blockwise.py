"""Block-by-block evaluation equals the in-memory evaluation of the whole volume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.evaluation import EvaluationError, evaluate_files
from nnunetv2_reisoseg.evaluation.blockwise import BlockwiseRun, evaluate_blockwise
from nnunetv2_reisoseg.evaluation.measures import surface_fields

SPACING = (40.0, 8.0, 8.0)


def _pair(shape=(14, 40, 44), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A reference of two classes of blobs and a prediction that splits, merges, misses and adds objects."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), (1.0, 2.5, 2.5))
    ref = np.zeros(shape, np.uint8)
    ref[field > 0.1] = 1
    ref[field < -0.14] = 2
    noisy = field + ndi.gaussian_filter(rng.normal(size=shape), (0.5, 1.5, 1.5)) * 0.3
    pred = np.zeros(shape, np.uint8)
    pred[noisy > 0.12] = 1
    pred[noisy < -0.16] = 2
    pred[rng.random(shape) < 0.004] = 1  # false specks
    pred[5] = np.where(pred[5] == 1, 0, pred[5])  # a missing section splits class-1 objects
    return pred, ref


def _write(path, data, spacing=SPACING) -> str:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", shape=data.shape, chunks=(7, 20, 22), dtype=data.dtype)[...] = data
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "nanometer"}
                                                             for a in "zyx"],
                                  "datasets": [{"path": "0", "coordinateTransformations":
                                                [{"type": "scale", "scale": list(spacing)}]}]}]
    return str(path)


def _same(blockwise: dict, memory: dict) -> None:
    assert blockwise.keys() == memory.keys()
    for c in memory:
        for k, v in memory[c].items():
            if k in surface_fields():
                assert blockwise[c][k] is None
            elif isinstance(v, float):
                assert blockwise[c][k] == pytest.approx(v, abs=1e-12), (c, k)
            else:
                assert blockwise[c][k] == v, (c, k)


@pytest.mark.parametrize("connectivity", [6, 26])
def test_blocks_give_the_in_memory_result(tmp_path, connectivity):
    pred, ref = _pair()
    p, r = _write(tmp_path / "pred.zarr", pred), _write(tmp_path / "ref.zarr", ref)
    memory = evaluate_files(p, r, connectivity=connectivity)
    blocks = evaluate_blockwise(p, r, connectivity=connectivity,
                                run=BlockwiseRun(block_shape=(5, 16, 13), progress=False))
    assert memory["1"]["split_objects"] > 0 and memory["1"]["false_objects"] > 0  # the pair has errors to find
    assert memory["1"]["ref_objects"] > 3
    _same(blocks, memory)


def test_two_dask_workers_give_the_in_memory_result(tmp_path):
    """The labelling passes and the tables on a LocalCluster of two processes, alone (not via predict-volume)."""
    pred, ref = _pair(seed=3)
    p, r = _write(tmp_path / "pred.zarr", pred), _write(tmp_path / "ref.zarr", ref)
    blocks = evaluate_blockwise(p, r, run=BlockwiseRun(block_shape=(5, 16, 13), workers=2, work_dir=str(tmp_path),
                                                       progress=False))
    _same(blocks, evaluate_files(p, r))
    assert sorted(q.name for q in tmp_path.iterdir()) == ["pred.zarr", "ref.zarr"]  # the scratch is gone


def test_ignore_label_and_classes(tmp_path):
    pred, ref = _pair(seed=1)
    ref[:, 10:14] = 7  # an unannotated band
    p, r = _write(tmp_path / "pred.zarr", pred), _write(tmp_path / "ref.zarr", ref)
    memory = evaluate_files(p, r, classes=[1], ignore_label=7)
    blocks = evaluate_blockwise(p, r, classes=[1], ignore_label=7,
                                run=BlockwiseRun(block_shape=(6, 12, 15), progress=False))
    _same(blocks, memory)
    with pytest.raises(EvaluationError, match=r"class(es)? \[3\] in neither volume"):
        evaluate_blockwise(p, r, classes=[3], run=BlockwiseRun(block_shape=(6, 12, 15), progress=False))


def test_cli_blockwise_and_its_refusals(tmp_path, capsys):
    pred, ref = _pair(seed=2)
    p, r = _write(tmp_path / "pred.zarr", pred), _write(tmp_path / "ref.zarr", ref)
    assert main(["evaluate", "-p", p, "-r", r, "--block-size", "7", "20", "22"]) == 0
    printed = json.loads(capsys.readouterr().out)
    _same(printed, evaluate_files(p, r))
    with pytest.raises(SystemExit, match="--probabilities ranks objects in memory only"):
        main(["evaluate", "-p", p, "-r", r, "--blockwise", "--probabilities", p])
    other = _write(tmp_path / "other.zarr", ref[:, :30])
    with pytest.raises(SystemExit, match="has shape"):
        main(["evaluate", "-p", p, "-r", other, "--blockwise"])

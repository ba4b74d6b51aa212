"""What the readers say about a store's completeness: chunks zarr would read as the fill value are named, and a
predict-volume output knows whether its run finished."""
import json

import numpy as np
import zarr

from nnunetv2_reisoseg.io.volumes import COMPLETE_ATTR, OUTPUT_ATTR, read_volume


def _store(path, attrs=None):
    z = zarr.open_group(str(path), mode="w", zarr_format=2)
    a = z.create_array("0", shape=(8, 16, 16), chunks=(4, 16, 16), dtype=np.uint8, fill_value=0)
    a[:4] = 1  # the second chunk is never written
    z.attrs.update(attrs or {})
    return path


def test_missing_chunks_are_said_not_hidden(tmp_path, capsys):
    vol = read_volume(f"{_store(tmp_path / 'copy.zarr')}:0")
    assert vol.unfinished is None and np.asarray(vol.array[...]).sum() == 4 * 16 * 16
    assert "1 of 2 chunks are not stored; zarr reads them as the fill value 0" in capsys.readouterr().err


def test_a_predict_volume_output_knows_whether_it_finished(tmp_path, capsys):
    running = read_volume(str(_store(tmp_path / "run.zarr", {OUTPUT_ATTR: {"input": "x"}})))
    assert "unfinished reisoseg predict-volume output" in running.unfinished
    done = _store(tmp_path / "done.zarr", {OUTPUT_ATTR: {"input": "x"}, COMPLETE_ATTR: {"blocks": 2}})
    assert read_volume(str(done)).unfinished is None
    assert "chunks are not stored" not in capsys.readouterr().err  # empty blocks are skipped on purpose there
    assert json.loads((done / ".zattrs").read_text())[COMPLETE_ATTR] == {"blocks": 2}

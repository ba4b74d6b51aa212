"""The blockwise engine's pieces: blocks with their halo, the one resume scheme (markers written after whole files),
and a pass run by the task runner that skips what is done."""
import numpy as np
import pytest

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.state import Markers, atomic_write, save_npz
from nnunetv2_reisoseg.blockwise.tasks import BlockTask, TaskRunner


def test_blocks_read_their_halo_inside_the_volume():
    blocks = roi.blocks((10, 20, 7), (4, 8, 7), halo=(1, 3, 2))
    assert [b.write for b in blocks] == roi.partition((10, 20, 7), (4, 8, 7)) and len(blocks) == 3 * 3
    first, inner, last = blocks[0], blocks[4], blocks[-1]
    assert first.read == ((0, 5), (0, 11), (0, 7))  # clipped at the volume's lower faces
    assert inner.write == ((4, 8), (8, 16), (0, 7)) and inner.read == ((3, 9), (5, 19), (0, 7))
    assert last.read == ((7, 10), (13, 20), (0, 7))
    data = np.arange(10 * 20 * 7).reshape(10, 20, 7)
    assert np.array_equal(data[roi.slices(inner.read)][inner.in_read], data[roi.slices(inner.write)])
    assert roi.blocks((10, 20, 7), (4, 8, 7))[4].read == inner.write  # no halo: it reads what it writes
    assert roi.block_grid((10, 20, 7), (4, 8, 7)) == (3, 3, 1)


def test_a_file_appears_whole_or_not_at_all(tmp_path):
    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "r" / "3.npz", broken)
    assert not (tmp_path / "r" / "3.npz").exists()
    save_npz(tmp_path / "r" / "3.npz", a=np.arange(3))
    with np.load(tmp_path / "r" / "3.npz") as z:
        assert z["a"].tolist() == [0, 1, 2]


def test_markers_say_which_blocks_are_done(tmp_path):
    m = Markers(tmp_path / "pass")
    assert m.done() == set() and m.todo(3) == [0, 1, 2]
    m.mark(1, {"objects": 4})
    (tmp_path / "pass" / "2").write_text("")  # a marker of an earlier version, which held nothing
    (tmp_path / "pass" / ".0.tmp").write_text("{")  # a killed write: not a marker
    (tmp_path / "pass" / "0.npz").write_text("")  # a block's result file: not a marker
    assert m.done() == {1, 2} and m.todo(4) == [0, 3] and m.todo([3, 1]) == [3]
    assert m.info(1) == {"objects": 4} and m.info(2) == {}


def _square(folder, i):
    m = Markers(folder)
    m.mark(i, {"value": i * i})
    return i * i


def test_a_pass_runs_only_the_blocks_without_markers(tmp_path):
    m = Markers(tmp_path)
    m.mark(2, {"value": 4})
    with TaskRunner(progress=False) as runner:
        got = runner.run(BlockTask("squares", _square, str(tmp_path), 5, m))
    assert sorted(got) == [0, 1, 9, 16] and m.done() == set(range(5))
    with TaskRunner(progress=False) as runner:
        assert runner.run(BlockTask("squares", _square, str(tmp_path), 5, m)) == []

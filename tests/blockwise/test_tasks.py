"""Two passes over blocks where a block's second pass waits only for the first passes it needs: the border sums
it reads are released as soon as it is done, so scratch grows with the blocks in flight, not with the volume."""
import os
import time
from pathlib import Path

import pytest

from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.blockwise.tasks import TaskRunner
from nnunetv2_reisoseg.volume import grid as g


def _chain(n):
    """Blocks on a line: each one's second pass needs the first passes of itself and its two neighbours."""
    return {t: {i for i in (t - 1, t, t + 1) if 0 <= i < n} for t in range(n)}


def test_a_second_pass_runs_as_soon_as_its_first_passes_are_done():
    calls = []
    with TaskRunner(progress=False) as runner:
        runner.two_passes(lambda f, i: calls.append(f"F{i}"), lambda f, t: calls.append(f"S{t}"), "", [0, 1, 2, 3],
                          _chain(4), "blocks", 4)
    assert calls == ["F0", "F1", "S0", "F2", "S1", "F3", "S2", "S3"]
    calls.clear()
    # after --c: block 5's first pass was done by the killed run, so its second runs at once
    with TaskRunner(progress=False) as runner:
        out = runner.two_passes(lambda f, i: calls.append(f"F{i}") or i, lambda f, t: calls.append(f"S{t}"), "",
                                [6], {5: {4, 5}, 6: {5, 6}}, "blocks", 7, 5)
    assert calls == ["S5", "F6", "S6"] and out == [6]


def test_scratch_in_flight_is_bounded_by_the_neighbourhood_not_the_volume():
    live, peak = set(), [0]

    def first(folder, i):  # hands a piece of its sums to every block that waits for it
        live.update((t, i) for t in (i - 1, i, i + 1) if 0 <= t < 40)
        peak[0] = max(peak[0], len(live))

    def second(folder, t):  # reads and releases the pieces handed to it
        live.difference_update({(t, i) for i in (t - 1, t, t + 1)})

    with TaskRunner(progress=False) as runner:
        runner.two_passes(first, second, "", list(range(40)), _chain(40), "blocks", 40)
    assert not live and peak[0] <= 6  # all 118 pieces at once when every first pass ran before any second


def test_finish_after_names_every_block_that_hands_sums_over(tmp_path):
    # a volume of 3 x 2 blocks smaller than the patch: tiles reach across several blocks
    grid = g.TileGrid(((0, 24), (0, 80), (0, 70)), (16, 48, 48), 0.5)
    layout = g.Layout(grid, (24, 80, 70), (8, 40, 35), (0, 1, 2))
    plans = [layout.plan(i) for i in range(len(layout.boxes))]
    after = g.finish_after(plans)
    # independently: block i hands sums to block j where the tiles i owns reach into j's part of the crop
    for j in range(len(plans)):
        target = layout.write_region(layout.boxes[j])
        reach = {p.index for p in plans if p.read is not None and target is not None
                 and roi.intersect(target, p.read) is not None}
        assert after[j] == reach | {j}
    assert sum(len(v) for v in after.values()) < len(plans) ** 2  # not every block waits for every other


def _stamp(folder: str, i: int) -> int:
    """A first pass on a dask worker: leaves the time it ended."""
    time.sleep(0.05)
    Path(folder, f"first_{i}").write_text(str(time.monotonic_ns()))
    return i


def _check(folder: str, t: int) -> int:
    """A second pass on a dask worker: every first pass it waits for has ended."""
    needed = [Path(folder, f"first_{i}") for i in (t - 1, t, t + 1) if 0 <= i < 12]
    assert all(p.is_file() for p in needed), t
    Path(folder, f"second_{t}").write_text(str(time.monotonic_ns()))
    return t


@pytest.mark.e2e
def test_two_passes_on_a_dask_cluster(tmp_path):
    with TaskRunner(workers=2, progress=False) as runner:
        out = runner.two_passes(_stamp, _check, str(tmp_path), list(range(12)), _chain(12), "blocks", 12)
    assert sorted(out) == list(range(12))
    names = [f"{kind}_{i}" for kind in ("first", "second") for i in range(12)]
    assert sorted(os.listdir(tmp_path)) == sorted(names)

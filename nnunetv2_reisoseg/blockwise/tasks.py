"""Running one function over many blocks: in this process, on a local dask cluster of processes, or on a
running dask scheduler. A pass is a ``BlockTask``, as daisy's Task: a top-level process function of (folder,
index) that finds its settings in the folder, so it pickles to any worker and returns something small, and the
markers that say which blocks are done. One ``TaskRunner`` serves every pass of a run, so a local cluster starts
once."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from nnunetv2_reisoseg.blockwise.state import Markers
from nnunetv2_reisoseg.progress import progress_bar


@dataclass(frozen=True)
class BlockTask:
    """One pass over the blocks of a volume: ``process(folder, index)`` for every block of ``range(n_blocks)``
    without its marker in ``markers`` (the process function writes it); ``folder`` is all a worker receives."""

    name: str  # the progress bar's description
    process: Callable[[str, int], Any]
    folder: str
    n_blocks: int
    markers: Markers


class TaskRunner:
    """Where the tasks run: ``workers`` > 0 starts a LocalCluster of that many processes, ``scheduler`` joins
    a running dask cluster, neither runs them here. Use it as a context manager."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, progress: bool = True,
                 release: Callable[[], None] | None = None, stream: IO[str] | None = None) -> None:
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self.stream = stream or sys.stderr  # where progress bars go (never stdout, which may carry a result)
        self.release = release  # called after serial passes: drops what tasks cached in this process
        self.client: Any = None
        self._cluster: Any = None

    def describe(self) -> str:
        """Where the tasks run, for progress lines: nothing when here."""
        return (f", {self.workers} dask workers" if self.workers else "") + \
            (f", dask scheduler {self.scheduler}" if self.scheduler else "")

    def __enter__(self) -> TaskRunner:
        if self.workers or self.scheduler:
            from dask.distributed import Client, LocalCluster

            if self.scheduler:
                self.client = Client(self.scheduler)
            else:
                threads = str(max(1, (os.cpu_count() or 1) // self.workers))  # torch's threads per worker process
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None,
                                             env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
                self.client = Client(self._cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        if self.release is not None:
            self.release()

    def two_passes(self, first: Callable[[str, int], Any], second: Callable[[str, int], Any], folder: str,
                   first_todo: Sequence[int], after: dict[int, set[int]], desc: str, total: int,
                   initial: int = 0) -> list:
        """``first(folder, i)`` for every ``i`` of ``first_todo`` in its order, and ``second(folder, t)`` for every
        key ``t`` of ``after`` as soon as every block of ``after[t]`` has had its first (those outside
        ``first_todo`` had it before), ahead of the remaining firsts: whatever a second releases (predict-volume's
        border sums) is released early. Returns the firsts' results; the bar counts seconds."""
        waiting = {t: set(deps) & set(first_todo) for t, deps in after.items()}
        unblocks: dict[int, list[int]] = {}
        for t, blockers in waiting.items():
            for i in blockers:
                unblocks.setdefault(i, []).append(t)
        bar = progress_bar(total, desc, "block", initial=initial, file=self.stream, show=self.progress)
        with bar:
            if self.client is None:
                return self._two_passes_here(first, second, folder, first_todo, waiting, unblocks, bar)
            return self._two_passes_dask(first, second, folder, first_todo, waiting, unblocks, bar)

    @staticmethod
    def _ready(i: int, waiting: dict[int, set[int]], unblocks: dict[int, list[int]]) -> list[int]:
        """The seconds whose last missing first was ``i``."""
        out = []
        for t in unblocks.get(i, []):
            waiting[t].discard(i)
            if not waiting[t]:
                out.append(t)
        return out

    def _two_passes_here(self, first, second, folder, first_todo, waiting, unblocks, bar) -> list:
        results = []
        for t in [t for t, w in waiting.items() if not w]:
            second(folder, t)
            bar.update()
        for i in first_todo:
            results.append(first(folder, i))
            for t in self._ready(i, waiting, unblocks):
                second(folder, t)
                bar.update()
        return results

    def _two_passes_dask(self, first, second, folder, first_todo, waiting, unblocks, bar) -> list:
        from dask.distributed import as_completed

        # seconds run ahead of the firsts still queued (higher priority), so that they release their scratch
        kind = {}
        queue = as_completed()
        for t in [t for t, w in waiting.items() if not w]:
            fut = self.client.submit(second, folder, t, pure=False, priority=1)
            kind[fut.key] = ("second", t)
            queue.add(fut)
        for i in first_todo:
            fut = self.client.submit(first, folder, i, pure=False, priority=0)
            kind[fut.key] = ("first", i)
            queue.add(fut)
        results = []
        for fut in queue:
            which, i = kind[fut.key]
            value = fut.result()
            if which == "second":
                bar.update()
                continue
            results.append(value)
            for t in self._ready(i, waiting, unblocks):
                nxt = self.client.submit(second, folder, t, pure=False, priority=1)
                kind[nxt.key] = ("second", t)
                queue.add(nxt)
        return results

    def run(self, task: BlockTask) -> list:
        """The blocks of ``task`` not yet done, with a progress bar that counts the done ones too; returns their
        results in completion order."""
        todo = task.markers.todo(task.n_blocks)
        return self.map(task.process, task.folder, todo, task.name, task.n_blocks, task.n_blocks - len(todo))

    def map(self, fn: Callable[[str, int], Any], folder: str, indices: Sequence[int], desc: str,
            total: int | None = None, initial: int = 0) -> list:
        """``fn(folder, i)`` for every ``i`` (results in completion order), with a progress bar of
        ``desc`` over ``total`` blocks of which ``initial`` were done before."""
        bar = progress_bar(total if total is not None else len(indices), desc, "block", initial=initial,
                           file=self.stream, show=self.progress)
        results = []
        with bar:
            if self.client is None:
                for i in indices:
                    results.append(fn(folder, i))
                    bar.update()
                return results
            from dask.distributed import as_completed

            futures = self.client.map(fn, [folder] * len(indices), list(indices), pure=False)
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update()
            return results

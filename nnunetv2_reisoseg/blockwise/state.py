"""What makes a blockwise pass resumable, in one scheme for every pass: a file appears whole or not at all
(``atomic_write``), and a block is done when its marker exists (``Markers``).

A pass writes a block's outputs first (chunks of a store, or its result files through ``atomic_write``), then its
marker, ``<pass folder>/<block index>``, which holds the block's small result as JSON. A killed run leaves blocks
without markers; ``--c`` runs exactly those again, and a block run twice writes the same outputs again.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` into a hidden sibling with ``path``'s suffix, then renamed to ``path``: readers (and a
    resumed run) see the whole file or none of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Arrays in one ``.npz``, atomically."""
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def save_npy(path: Path, array: np.ndarray) -> None:
    """One array in a ``.npy``, atomically."""
    atomic_write(path, lambda tmp: np.save(tmp, array))


def write_json(path: Path, data: object) -> None:
    """``data`` as JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data)))


class Markers:
    """The done markers of one pass: ``folder/<index>``, each holding the block's result (JSON, a small dict)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path(self, index: int) -> Path:
        return self.folder / str(int(index))

    def is_done(self, index: int) -> bool:
        return self.path(index).is_file()

    def info(self, index: int) -> dict:
        """What the block's pass returned (empty for a marker of an earlier version that held nothing)."""
        text = self.path(index).read_text()
        return json.loads(text) if text.strip() else {}

    def mark(self, index: int, info: dict | None = None) -> None:
        """Written after every output of the block: a block without its marker is done again."""
        write_json(self.path(index), info or {})

    def done(self) -> set[int]:
        """Every block with its marker."""
        if not self.folder.is_dir():
            return set()
        return {int(p.name) for p in self.folder.iterdir() if p.name.isdigit()}

    def todo(self, indices: int | Sequence[int]) -> list[int]:
        """The blocks of ``indices`` (or of ``range(indices)``) without their marker, in order."""
        done = self.done()
        return [i for i in (range(indices) if isinstance(indices, int) else indices) if i not in done]

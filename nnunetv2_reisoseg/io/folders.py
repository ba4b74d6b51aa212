"""Folders written in full or not at all: a failure leaves nothing behind and replaces nothing."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(target: Path, replaces: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success remove ``replaces`` (and an existing
    ``target``) and move the folder into place, on any error delete it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        for old in {*map(Path, replaces), *([target] if target.exists() else [])}:
            shutil.rmtree(old)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

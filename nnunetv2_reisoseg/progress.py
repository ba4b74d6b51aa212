"""Progress bars for every long command (convert, synth, predict-volume, evaluate --blockwise, the benchmark's
trainings): tqdm on stderr on a terminal, or when ``REISOSEG_PROGRESS=1`` asks for it. Where the stream is not a
terminal (a log file, a pipe, CI), tqdm's carriage returns would glue lines together, so work that runs longer
than ``LINE_EVERY_S`` says where it is in plain lines instead, one every ``LINE_EVERY_S`` seconds: a long pass
never looks hung, and a short one prints nothing."""
from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

PROGRESS_ENV = "REISOSEG_PROGRESS"
LINE_EVERY_S = 30.0


class LineProgress:
    """A progress bar for a log: ``update`` as tqdm's, a plain line at most every ``every`` seconds."""

    def __init__(self, total: int, desc: str, unit: str, initial: int, stream: IO[str], every: float) -> None:
        self.total, self.desc, self.unit, self.n, self.stream, self.every = total, desc, unit, initial, stream, every
        self._start = self._last = time.monotonic()
        self._said = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last, self._said = now, True
            self._line(now)

    def _line(self, now: float) -> None:
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}s{share}, {now - self._start:.0f} s",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._said:  # a pass that said where it was also says that it ended
            self._said = False
            self._line(time.monotonic())

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str, *, initial: int = 0, file: IO[str] | None = None,
                 show: bool = True) -> Any:
    """A tqdm bar of ``total`` ``unit``s where someone watches (``file``, stderr by default, is a terminal, or
    ``REISOSEG_PROGRESS`` is 1), else a ``LineProgress``; nothing at all when ``show`` is false."""
    from tqdm import tqdm

    stream = file or sys.stderr
    wanted = os.environ.get(PROGRESS_ENV) == "1" or (hasattr(stream, "isatty") and stream.isatty())
    if show and not wanted:
        return LineProgress(total, desc, unit, initial, stream, LINE_EVERY_S)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, disable=not show,
                dynamic_ncols=True, mininterval=1.0)


def say(message: str) -> None:
    """Print a line without breaking an active progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()

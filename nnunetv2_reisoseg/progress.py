"""Progress bars for every long command (convert, synth, predict-volume, evaluate --blockwise, the benchmark's
trainings): tqdm on stderr, silent when the stream is not a terminal (a log file, a pipe, CI), where its
carriage returns would glue lines together, unless ``REISOSEG_PROGRESS=1`` asks for them."""
from __future__ import annotations

import os
import sys
from typing import IO, Any

PROGRESS_ENV = "REISOSEG_PROGRESS"


def progress_bar(total: int, desc: str, unit: str, *, initial: int = 0, file: IO[str] | None = None,
                 show: bool = True) -> Any:
    """A tqdm bar of ``total`` ``unit``s; disabled (it then prints nothing) when ``show`` is false, or when
    ``file`` (stderr by default) is not a terminal and ``REISOSEG_PROGRESS`` is not 1."""
    from tqdm import tqdm

    stream = file or sys.stderr
    wanted = os.environ.get(PROGRESS_ENV) == "1" or (hasattr(stream, "isatty") and stream.isatty())
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, disable=not (show and wanted),
                dynamic_ncols=True, mininterval=1.0)


def say(message: str) -> None:
    """Print a line without breaking an active progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()

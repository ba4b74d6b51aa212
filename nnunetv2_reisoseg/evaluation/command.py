"""``reisoseg evaluate`` as a command: its options checked before any work, the choice between evaluating in memory
and block by block, the result printed, then written to ``-o`` with evaluate's mark."""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_reisoseg.evaluation import blockwise as bw
from nnunetv2_reisoseg.evaluation.evaluate import EvaluationError, ReadOptions, evaluate_files
from nnunetv2_reisoseg.io import checks, folders
from nnunetv2_reisoseg.io.labels import DEFAULT_BACKGROUND
from nnunetv2_reisoseg.io.volumes import input_path

EVALUATE_MARK = "reisoseg"  # the key of evaluate's mark in an -o file (class keys are numbers)


@dataclass(frozen=True, kw_only=True)
class EvaluateCommand:
    """Everything ``reisoseg evaluate`` was asked, named as its options."""

    prediction: str
    reference: str
    spacing: Sequence[float] | None = None
    classes: Sequence[int] | None = None
    probabilities: str | None = None
    connectivity: int = 26
    ignore_label: int | None = None
    background: Sequence[int] = DEFAULT_BACKGROUND
    binary: bool = False
    instances: bool = False
    allow_unfinished: bool = False
    output: str | None = None
    overwrite: bool = False
    blockwise: bool = False
    block_size: Sequence[int] | None = None
    workers: int = 0
    scheduler: str | None = None
    work_dir: str | None = None

    @property
    def reading(self) -> ReadOptions:
        return ReadOptions(background=tuple(self.background), allow_unfinished=self.allow_unfinished,
                           binary=self.binary, instances=self.instances)

    @property
    def run_options(self) -> bw.BlockwiseRun:
        return bw.BlockwiseRun(block_shape=self.block_size and tuple(self.block_size), workers=self.workers,
                               scheduler=self.scheduler, work_dir=self.work_dir)

    def check(self) -> None:
        """Refuse, before hours of blockwise work, what would fail or score nothing."""
        checks.dask_workers(self.workers, self.scheduler)
        self.reading  # noqa: B018 (its own checks: --binary against --instances)
        if self.output is not None and not self.output.strip():
            raise EvaluationError("-o is empty; give the file to write the JSON to, or leave -o out")
        if self.spacing is not None:
            checks.voxel_size(self.spacing, "--spacing")
        if self.block_size is not None:
            checks.whole_numbers(self.block_size, "--block-size")
        if self.ignore_label is not None and self.ignore_label < 0:
            raise EvaluationError(f"--ignore-label {self.ignore_label}: labels are non-negative integers, so no "
                                  "voxel can hold it; give the value that marks 'not annotated' in the reference")
        if self.output:
            folders.check_output(self.output, self.overwrite, evaluate_json,
                         [input_path(s) for s in (self.prediction, self.reference)])

    def wants_blockwise(self) -> bool:
        """Block by block when asked (or implied by a block size or workers), or when the volume is too large for
        memory, which is said."""
        if self.blockwise or self.block_size is not None or self.workers or self.scheduler:
            return True
        if self.prediction.lower().endswith(bw.ITK_SUFFIXES):
            return False
        shape = bw.volume_info(self.prediction, allow_unfinished=True, spacing_given=self.spacing is not None)[0]
        if math.prod(shape) <= bw.BLOCKWISE_ABOVE:
            return False
        print(f"evaluate: {'x'.join(map(str, shape))} voxels do not fit in memory comfortably; evaluating block by "
              "block (surface distances are null then)", file=sys.stderr)
        return True

    def evaluate(self) -> dict:
        """The result, in memory or block by block."""
        if not self.wants_blockwise():
            return evaluate_files(self.prediction, self.reference, self.spacing, self.classes, self.connectivity,
                                  self.ignore_label, self.reading, probabilities=self.probabilities)
        if self.probabilities:
            raise EvaluationError("--probabilities ranks objects in memory only; drop it (AP then ranks by size) "
                                  "or evaluate without --blockwise")
        return bw.evaluate_blockwise(self.prediction, self.reference, self.spacing, self.classes, self.connectivity,
                                     self.ignore_label, self.reading, run=self.run_options)

    def run(self) -> dict:
        """Check, evaluate, print the result as JSON (it reaches the user even if ``-o`` cannot be written), then
        write it to ``-o`` with evaluate's mark beside the classes: ``--overwrite`` replaces only a file with it."""
        self.check()
        result = self.evaluate()
        print(json.dumps(result, indent=1), flush=True)
        if self.output:
            marked = json.dumps({**result, EVALUATE_MARK: {"command": "evaluate", "prediction": self.prediction,
                                                           "reference": self.reference}}, indent=1)
            try:
                folders.write_file(self.output, lambda path: path.write_text(marked + "\n"))
            except OSError as e:
                raise EvaluationError(f"the result above could not be written to {self.output}: {e}") from None
        return result


def evaluate_json(path: Path) -> str | None:
    """None when ``path`` is a result evaluate wrote (it carries evaluate's mark), else why it is not."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return "it is not an evaluate result (not JSON)"
    mark = data.get(EVALUATE_MARK) if isinstance(data, dict) else None
    if isinstance(mark, dict) and mark.get("command") == "evaluate":
        return None
    return f"it is not an evaluate result (it has no {EVALUATE_MARK!r} mark of evaluate)"

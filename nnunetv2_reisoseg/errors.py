"""The one base of every error a reisoseg command reports to its user: bad input, or a step that failed, with a
message that names the problem and the fix. ``cli.main`` prints any of them as one line and exits non-zero, on
every code path (in memory, block by block, on dask workers, which send the same exception back)."""
from __future__ import annotations


class ReisosegError(Exception):
    """A failure the user can act on; its message names the problem and the fix."""


class InputError(ReisosegError, ValueError):
    """A value a command read (an option, a file's metadata, a JSON file) that is not what it must be."""

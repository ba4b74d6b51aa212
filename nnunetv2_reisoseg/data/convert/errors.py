"""The error of ``reisoseg convert``."""
from nnunetv2_reisoseg.errors import ReisosegError


class ConvertError(ReisosegError, ValueError):
    """Bad input for ``reisoseg convert``; the message names the problem and the fix. Nothing has been written."""

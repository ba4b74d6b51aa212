"""The error of ``reisoseg convert``."""


class ConvertError(ValueError):
    """Bad input for ``reisoseg convert``; the message names the problem and the fix. Nothing has been written."""

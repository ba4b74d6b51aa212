"""The one rule for every output a command writes (convert, synth, export-stock, import-stock, predict-volume,
evaluate -o, benchmark -o), as zarr and git keep it:

- check the output location before any work: it must be absent, or replaceable (below), and writable;
- write into a new sibling and swap it into place when it is complete; the old output is removed last;
- ``--overwrite`` replaces only an output this project wrote (recognised by its own marker, which lists every
  file it wrote), never a folder that holds other files, never through a symbolic link, and never a folder
  that holds the command's input, model, source or the working folder;
- outputs get the user's umask (``tempfile.mkdtemp`` would make them private).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nnunetv2_reisoseg.errors import ReisosegError

MARKER = ".reisoseg-output.json"  # in every folder output but zarr stores: the command and the files it wrote


class OutputError(ReisosegError, ValueError):
    """An output location that cannot be used as asked; the message says why and what to do."""


def umask() -> int:
    """The process's umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_like_umask(path: Path) -> None:
    """Give a folder made by ``mkdtemp`` (mode 0700) the permissions any new folder of the user gets."""
    os.chmod(path, 0o777 & ~umask())


def _inside(inner: Path, outer: Path) -> bool:
    try:
        inner.resolve().relative_to(outer.resolve())
        return True
    except ValueError:
        return False


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder``, as sorted POSIX paths relative to it (symbolic links count as files)."""
    out = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        out += [(base / f).as_posix() for f in files]
        out += [(base / d).as_posix() for d in dirs if (Path(root) / d).is_symlink()]
    return sorted(out)


def marker_owner(*commands: str) -> Callable[[Path], str | None]:
    """The ownership check of folder outputs with ``MARKER``: None when one of ``commands`` wrote the folder and it
    holds nothing else, otherwise the reason it is not replaceable."""

    def check(folder: Path) -> str | None:
        marker = folder / MARKER
        if not folder.is_dir() or not marker.is_file():
            return "it was not written by reisoseg (it has no " + MARKER + ")"
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            return f"its {MARKER} is unreadable"
        if not isinstance(info, dict) or not isinstance(info.get("files"), list) or \
                not all(isinstance(f, str) for f in info["files"]):
            return f"its {MARKER} is not one reisoseg wrote (no command and list of files)"
        if info.get("command") not in commands:
            return f"it was written by reisoseg {info.get('command')}, not {' or '.join(commands)}"
        foreign = sorted(set(files_under(folder)) - set(info.get("files", [])) - {MARKER})
        if foreign:
            return (f"it holds {len(foreign)} file(s) reisoseg did not write ({', '.join(foreign[:3])}"
                    + (", ..." if len(foreign) > 3 else "") + ")")
        return None

    return check


def check_output(target: str | os.PathLike, overwrite: bool, owner: Callable[[Path], str | None],
                 protected: Sequence[str | os.PathLike] = (), flag: str = "--overwrite", also: str = "") -> bool:
    """Refuse, before any work, an output location this command may not use; True when an existing output
    will be replaced. ``owner`` says why an existing ``target`` is not this command's own (None when it is);
    ``protected`` are the command's inputs, model and sources, which no replaced output may hold (the working
    folder is always protected). ``also`` names another way out for the refusal of an existing output."""
    target = Path(target)
    if target.is_symlink():
        raise OutputError(f"{target} is a symbolic link (to {os.readlink(target)}); reisoseg never writes or "
                          "deletes through one: give the real path, or remove the link")
    parent = target.absolute().parent
    existing = parent
    while not existing.exists():  # the folders a run will create must be creatable
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: {existing} is a file, not a folder; choose another output "
                          "location (or check the path, e.g. $nnUNet_raw)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: {existing} is not writable; choose another output location")
    if not target.exists():
        return False
    if target.is_dir() and not any(target.iterdir()):  # an empty folder made for the output holds nothing to lose
        return True
    if not overwrite:
        raise OutputError(f"{target} exists; {also}choose another output, or pass {flag} to replace it (only an "
                          "output reisoseg wrote is replaced)")
    for p in (*protected, Path.cwd()):
        if _inside(Path(p), target):
            raise OutputError(f"{flag} would delete {target}, which holds {p} (an input, the model or the working "
                              "folder); choose another output location")
    reason = owner(target)
    if reason is not None:
        raise OutputError(f"{flag} replaces only outputs of reisoseg, and {target} is not one: {reason}. Choose "
                          "another output location, or move it away yourself")
    return True


@contextmanager
def staged_folder(target: str | os.PathLike, command: str, replaces: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield a new folder beside ``target``; on success write ``MARKER`` into it, swap it into place and only
    then remove the old ``target`` and ``replaces`` (checked with ``check_output`` before any work); on any
    error delete the new folder and leave everything else as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    share_like_umask(tmp)
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"command": command, "files": files_under(tmp)}, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_into_place(tmp, target)
    for old in replaces:
        if Path(old).absolute() != target.absolute() and Path(old).exists():
            shutil.rmtree(old)


def swap_into_place(new: Path, target: Path) -> None:
    """Move the complete folder ``new`` to ``target``; an existing ``target`` is set aside first and removed once
    ``new`` is in place (put back if the move fails)."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old)


def write_file(target: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write a file output through a sibling (``write`` fills the path it is given) and swap it into place, so
    that a failure leaves the old file, or none, and never a partial one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.new-", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The rule of every output (io/folders.py): checked before any work, written beside the old one and swapped
in when complete, --overwrite only over what reisoseg wrote, never through a link, never over the input."""
import json
import os
import stat

import pytest

from nnunetv2_reisoseg.io.folders import (
    MARKER,
    OutputError,
    check_output,
    marker_owner,
    staged_folder,
    write_file,
)

OWNER = marker_owner("convert")


def _ours(folder, files=("a.txt",)):
    with staged_folder(folder, "convert") as tmp:
        for f in files:
            (tmp / f).write_text("ours")
    return folder


def test_a_folder_without_our_marker_is_never_replaced(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="not written by reisoseg"):
        check_output(d, True, OWNER)
    assert (d / "thesis.tex").read_text() == "years of work"
    with pytest.raises(OutputError, match="exists; choose another output, or pass --overwrite"):
        check_output(d, False, OWNER)


def test_our_output_is_replaceable_unless_it_holds_other_files(tmp_path):
    out = _ours(tmp_path / "out")
    assert json.loads((out / MARKER).read_text()) == {"command": "convert", "files": ["a.txt"]}
    assert check_output(out, True, OWNER) is True
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds 1 file\(s\) reisoseg did not write \(notes.txt\)"):
        check_output(out, True, OWNER)
    with pytest.raises(OutputError, match="written by reisoseg convert, not export-stock"):
        check_output(_ours(tmp_path / "other"), True, marker_owner("export-stock"))


def test_never_through_a_symbolic_link(tmp_path):
    data = _ours(tmp_path / "data")  # even an output of ours behind a link
    link = tmp_path / "out.zarr"
    link.symlink_to(data)
    with pytest.raises(OutputError, match="is a symbolic link"):
        check_output(link, True, OWNER)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")  # writing would go through it
    with pytest.raises(OutputError, match="is a symbolic link"):
        check_output(dangling, False, OWNER)
    assert (data / "a.txt").read_text() == "ours"


def test_never_a_folder_holding_the_input_or_the_working_folder(tmp_path, monkeypatch):
    out = _ours(tmp_path / "out", ("a.txt", "vol.h5"))
    with pytest.raises(OutputError, match=r"which holds .*vol.h5"):
        check_output(out, True, OWNER, protected=[out / "vol.h5"])
    monkeypatch.chdir(out)
    with pytest.raises(OutputError, match="the working folder"):
        check_output(".", True, OWNER)
    assert sorted(os.listdir(out)) == sorted([MARKER, "a.txt", "vol.h5"])


def test_an_unwritable_location_is_refused_before_any_work(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    # root may write anywhere; the check asks the operating system, here told that ro is read-only
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    with pytest.raises(OutputError, match="is not writable"):
        check_output(ro / "sub" / "out.zarr", False, OWNER)
    assert check_output(tmp_path / "new" / "deeper" / "out", False, OWNER) is False  # creatable: fine


def test_a_failure_leaves_the_old_output_and_no_staging(tmp_path):
    out = _ours(tmp_path / "out")
    with pytest.raises(RuntimeError, match="half way"), staged_folder(out, "convert") as tmp:
        (tmp / "b.txt").write_text("new")
        raise RuntimeError("half way")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert (out / "a.txt").read_text() == "ours"


def test_a_swap_replaces_the_old_output_and_the_clashes_last(tmp_path):
    out = _ours(tmp_path / "out")
    clash = _ours(tmp_path / "clash")
    with staged_folder(out, "convert", replaces=[clash]) as tmp:
        assert (out / "a.txt").is_file() and clash.is_dir()  # nothing removed while the new output is written
        (tmp / "b.txt").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert sorted(os.listdir(out)) == sorted([MARKER, "b.txt"])


def test_outputs_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = _ours(tmp_path / "shared")
        write_file(tmp_path / "m.json", lambda p: p.write_text("{}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # mkdtemp alone gives 0700: colleagues could not read it
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644


def test_a_failed_file_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")

    def broken(path):
        path.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file(target, broken)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["m.json"]

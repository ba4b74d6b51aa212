"""Progress bars: on a terminal, or when asked with REISOSEG_PROGRESS=1; never in a log or a pipe, where
carriage returns glue lines together."""
import io

from nnunetv2_reisoseg.progress import PROGRESS_ENV, progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _draw(stream, **kw):
    with progress_bar(3, "convert: blocks", "block", file=stream, **kw) as bar:
        for _ in range(3):
            bar.update()
    return stream.getvalue()


def test_bars_only_where_someone_watches(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert _draw(io.StringIO()) == ""  # a log file or a pipe
    shown = _draw(_Terminal())
    assert "convert: blocks" in shown and "3/3" in shown
    assert _draw(_Terminal(), show=False) == ""  # the command's own --quiet / progress=False
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert "3/3" in _draw(io.StringIO())  # asked for

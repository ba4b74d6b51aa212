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


def test_long_work_in_a_log_says_where_it_is_in_plain_lines(monkeypatch):
    """Not a terminal: no carriage returns, but a line every LINE_EVERY_S seconds, so a long pass never looks
    hung; a pass shorter than that stays silent (above)."""
    import nnunetv2_reisoseg.progress as progress

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    shown = _draw(io.StringIO())
    lines = shown.splitlines()
    assert "\r" not in shown and lines[0] == lines[0].strip() and "convert: blocks: 1/3 blocks (33%)" in lines[0]
    assert "3/3 blocks (100%)" in lines[-1] and len(lines) == 4  # three updates and the end
    assert _draw(io.StringIO(), show=False) == ""

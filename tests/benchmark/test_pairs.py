"""Which (seed, fold) trainings a benchmark runs: the grid --seeds x --folds, or --pairs named one by one."""
import pytest

from nnunetv2_reisoseg.benchmark import runner
from nnunetv2_reisoseg.benchmark.report import _pairs_text
from nnunetv2_reisoseg.cli import main


@pytest.fixture
def called(monkeypatch, tmp_path):
    calls = []

    def fake(dataset, preset, pairs, out, methods, device, command=""):
        calls.append(pairs)
        report = tmp_path / "report.md"
        report.write_text("report")
        return report

    monkeypatch.setattr(runner, "run_benchmark", fake)
    return calls


@pytest.mark.parametrize("args, pairs", [
    ([], [(0, 0)]),
    (["--seeds", "0", "1", "--folds", "2", "3"], [(0, 2), (0, 3), (1, 2), (1, 3)]),
    (["--folds", "0", "1"], [(0, 0), (0, 1)]),
    (["--pairs", "0:0", "0:1", "0:2", "0:3", "1:0"], [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]),
])
def test_cli_passes_the_grid_or_the_named_pairs(called, args, pairs):
    assert main(["benchmark", "--preset", "tiny", *args]) == 0
    assert called == [pairs]


def test_pairs_with_a_grid_or_malformed_are_refused(called, capsys):
    with pytest.raises(SystemExit, match="without --folds"):
        main(["benchmark", "--pairs", "0:0", "--folds", "1"])
    with pytest.raises(SystemExit):
        main(["benchmark", "--pairs", "0-1"])
    assert "is not SEED:FOLD" in capsys.readouterr().err
    assert called == []


def test_a_pair_twice_is_refused_before_any_work(tmp_path):
    with pytest.raises(runner.BenchmarkError, match="each \\(seed, fold\\) once"):
        runner.run_benchmark(None, "tiny", [(0, 0), (0, 0)], out=tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


def test_report_names_a_grid_as_a_grid_and_other_pairs_one_by_one():
    grid = {"seeds": [0, 1], "folds": [0], "pairs": [[0, 0], [1, 0]]}
    assert _pairs_text(grid) == "folds [0] x seeds [0, 1]"
    assert _pairs_text({"seeds": [0], "folds": [0, 1]}) == "folds [0, 1] x seeds [0]"  # results before pairs
    five = {"seeds": [0, 1], "folds": [0, 1, 2, 3], "pairs": [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]}
    assert _pairs_text(five) == "(seed, fold) pairs (0, 0), (0, 1), (0, 2), (0, 3), (1, 0)"


def test_o_must_be_new_empty_or_a_benchmarks_own_folder(tmp_path):
    """The benchmark writes records, report.md and plots into -o: never into someone's folder or through a link."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my report")
    (theirs / "paper.tex").write_text("x")
    with pytest.raises(runner.BenchmarkError, match=r"holds other files \(paper.tex\)"):
        runner.check_output_dir(theirs)
    (tmp_path / "link").symlink_to(theirs)
    with pytest.raises(runner.BenchmarkError, match="symbolic link"):
        runner.check_output_dir(tmp_path / "link")
    assert sorted(p.name for p in theirs.iterdir()) == ["paper.tex", "report.md"]
    runner.check_output_dir(tmp_path / "new")  # absent: fine
    ours = tmp_path / "study"
    (ours / runner.RECORDS).mkdir(parents=True)
    (ours / "README.md").write_text("the study")
    runner.check_output_dir(ours)  # a benchmark's own folder is continued

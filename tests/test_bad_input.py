"""Bad input, as a careless user gives it, on every command that reads it: one clear line and a non-zero exit,
before any work and with nothing left behind; or, where the input is fine, the right number. The causes are
tested once (``io.checks``), the commands over a table of bad values."""
import json
import math
import re

import h5py
import numpy as np
import pytest

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.errors import InputError
from nnunetv2_reisoseg.io import checks

SPACING = (40.0, 10.0, 10.0)
BAD_SPACINGS = [("nan", "10", "10"), ("inf", "10", "10"), ("0", "10", "10"), ("-40", "-10", "-10"),
                ("1e-300", "10", "10"), ("1e300", "10", "10")]


# ----------------------------------------------------------------------------------------------- the causes
@pytest.mark.parametrize("values", [(math.nan, 10, 10), (math.inf, 10, 10), (0, 10, 10), (-40, 10, 10), (10, 10),
                                    (40, 10, 10, 10), ("abc",), ("40", "x", "10"), (1e-300, 10, 10), (1e300, 1, 1),
                                    None, [True, 10, 10]])
def test_a_voxel_size_is_three_finite_positive_numbers_in_range(values):
    with pytest.raises(InputError, match=r"--spacing: .*give three positive numbers"):
        checks.voxel_size(values, "--spacing")


def test_good_values_pass_through():
    assert checks.voxel_size(np.array([40, 4.6, 4.6]), "x") == (40.0, 4.6, 4.6)
    assert checks.whole_numbers([8, 32, 32], "--block-size") == (8, 32, 32)
    assert checks.workers(0) == 0 and checks.workers(2) == 2
    assert checks.probability(0.5, "p") == 0.5 and checks.number(1.0, "s", 0, 1, low_open=True) == 1.0


@pytest.mark.parametrize("values", [(0, 4, 4), (-1, 4, 4), (4.5, 4, 4), (4, 4), (math.nan, 4, 4), ("a", 4, 4)])
def test_block_sizes_are_whole_numbers_of_at_least_one(values):
    with pytest.raises(InputError, match="--block-size"):
        checks.whole_numbers(values, "--block-size")


@pytest.mark.parametrize("value", [-2, -1, 1.5, math.nan, math.inf, "two", 10**9])
def test_worker_counts(value):
    with pytest.raises(InputError, match=r"--workers: .* is not a number of worker processes"):
        checks.workers(value)


@pytest.mark.parametrize("value", [-0.1, 1.1, math.nan, math.inf, None])
def test_probabilities(value):
    with pytest.raises(InputError, match=r"p: .* is not a probability in \[0, 1\]"):
        checks.probability(value, "p")


def test_json_files_are_checked_in_shape(tmp_path):
    fix = "give the plans file"
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
    (tmp_path / "bad_cfg.json").write_text(json.dumps({"configurations": {"3d_fullres": 3}}))
    for name, match in (("missing.json", "no such file"), ("list.json", "a JSON list, not an object"),
                        ("broken.json", "not valid JSON"), ("binary.json", "not text"),
                        ("dataset.json", "has no 'configurations'"), ("bad_cfg.json", "'3d_fullres' is not an object")):
        with pytest.raises(InputError, match=match) as e:
            checks.read_plans(tmp_path / name)
        assert fix in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------- the commands
@pytest.fixture
def ws(tmp_path, monkeypatch):
    """8x32x32 volumes at 40x10x10 nm, with the kinds of metadata a careless user meets."""
    rng = np.random.default_rng(0)
    img = (rng.random((8, 32, 32)) * 255).astype(np.uint8)
    lab = np.zeros((8, 32, 32), np.uint8)
    lab[2:6, 8:20, 8:20] = 1
    for name, res in (("a", SPACING), ("nan", (math.nan, 10, 10)), ("big", (1e300, 10, 10)), ("two", (10, 10)),
                      ("text", "abc"), ("neg", (-40, 10, 10))):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            for key, data in (("raw", img), ("lab", lab)):
                f.create_dataset(key, data=data).attrs["resolution"] = res
    with h5py.File(tmp_path / "mixed.h5", "w") as f:  # labels that say another voxel size than the image
        f.create_dataset("raw", data=img).attrs["resolution"] = SPACING
        f.create_dataset("lab", data=lab).attrs["resolution"] = (50, 10, 10)
    with h5py.File(tmp_path / "f16.h5", "w") as f:
        f.create_dataset("raw", data=img.astype(np.float16)).attrs["resolution"] = SPACING
        f.create_dataset("lab", data=lab).attrs["resolution"] = SPACING
    with h5py.File(tmp_path / "other.h5", "w") as f:  # a second volume at another voxel size
        f.create_dataset("raw", data=img).attrs["resolution"] = (50, 10, 10)
        f.create_dataset("lab", data=lab).attrs["resolution"] = (50, 10, 10)
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / k).mkdir()
        monkeypatch.setenv(k, str(tmp_path / k))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _refused(argv, match):
    """The command exits with one line that matches, and no traceback."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    message = str(e.value.code)
    assert e.value.code not in (0, None) and "\n" not in message and "Traceback" not in message, message
    assert re.search(match, message), message
    return message


def _convert(*args, dataset=7):
    return ["convert", "--dataset-id", str(dataset), "--name", "Bad", *args]


CONVERT_CASES = [
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--class-names", "background"), "'background' is not a name"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--spacing", "1e-300", "10", "10"), "--spacing: .* outside"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--spacing", "1e300", "10", "10"), "--spacing: .* outside"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--spacing", "nan", "10", "10"), "--spacing: .* not finite"),
    (("--image", "big.h5:raw", "--labels", "big.h5:lab"), "big.h5:raw: its voxel size .* outside.*pass --spacing"),
    (("--image", "nan.h5:raw", "--labels", "nan.h5:lab"), "nan.h5:raw: its voxel size .* not finite"),
    (("--image", "two.h5:raw", "--labels", "two.h5:lab"), "has 2 value\\(s\\), not three"),
    (("--image", "text.h5:raw", "--labels", "text.h5:lab"), "text.h5:raw: its voxel size"),
    (("--image", "neg.h5:raw", "--labels", "neg.h5:lab"), "zero or negative"),
    (("--image", "mixed.h5:raw", "--labels", "mixed.h5:lab"), "voxel sizes differ: image .* labels"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--ignore-value", "0"), "also a background value"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--ignore-value", "300"), "cannot occur in labels of dtype uint8"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--class-names", "mito", "mito"), "each class needs its own"),
    (("--image", "a.h5:raw", "--labels", "a.h5:lab", "--threshold", "nan"), "--threshold"),
]


@pytest.mark.parametrize("args,match", CONVERT_CASES)
def test_convert_refuses(ws, args, match):
    _refused(_convert(*args), match)
    assert not list((ws / "nnUNet_raw").iterdir())  # nothing written, no staging folder left


def test_convert_says_what_it_replaces_and_writes_the_right_numbers(ws, capsys):
    # a file's bad voxel size replaced by --spacing is said, not silent
    assert main(_convert("--image", "nan.h5:raw", "--labels", "nan.h5:lab", "--spacing", "40", "10", "10")) == 0
    assert "nan.h5:raw: its voxel size" in capsys.readouterr().err
    # float16 images (SimpleITK writes none) as float32, the same values
    assert main(_convert("--image", "f16.h5:raw", "--labels", "f16.h5:lab", dataset=8)) == 0
    import SimpleITK as sitk

    written = sitk.GetArrayFromImage(sitk.ReadImage(str(next((ws / "nnUNet_raw").glob("Dataset008_*/imagesTr/*")))))
    with h5py.File(ws / "f16.h5") as f:
        assert np.array_equal(written, f["raw"][:].astype(np.float32))
    # volumes at two voxel sizes: dataset.json lists each case's instead of one of them
    assert main(_convert("--image", "a.h5:raw", "--labels", "a.h5:lab", "--image", "other.h5:raw", "--labels",
                         "other.h5:lab", dataset=9)) == 0
    ds = json.loads(next((ws / "nnUNet_raw").glob("Dataset009_*/dataset.json")).read_text())
    assert "spacing_nm_zyx" not in ds and sorted(map(tuple, ds["spacing_nm_zyx_per_case"].values())) == \
        [SPACING, (50.0, 10.0, 10.0)]
    assert "2 voxel sizes" in capsys.readouterr().err
    # an ignore value no voxel holds declares no ignore label
    assert main(_convert("--image", "a.h5:raw", "--labels", "a.h5:lab", "--ignore-value", "7", dataset=10)) == 0
    ds = json.loads(next((ws / "nnUNet_raw").glob("Dataset010_*/dataset.json")).read_text())
    assert ds["labels"] == {"background": 0, "class_1": 1} and "no voxel holds" in capsys.readouterr().err


def test_convert_over_a_marker_of_the_wrong_shape_or_into_a_file(ws, monkeypatch):
    assert main(_convert("--image", "a.h5:raw", "--labels", "a.h5:lab")) == 0
    folder = next((ws / "nnUNet_raw").glob("Dataset007_*"))
    for text in ("[1, 2]", '{"command": "convert", "files": 3}', '"convert"'):
        (folder / ".reisoseg-output.json").write_text(text)
        _refused(_convert("--image", "a.h5:raw", "--labels", "a.h5:lab", "--overwrite"), "is not one reisoseg wrote")
    assert (folder / "dataset.json").is_file()
    (ws / "afile").write_text("")
    monkeypatch.setenv("nnUNet_raw", str(ws / "afile"))
    _refused(_convert("--image", "a.h5:raw", "--labels", "a.h5:lab"), "afile is a file, not a folder")


SYNTH_CASES = [(("--voxel-size", *s), "--voxel-size") for s in BAD_SPACINGS[:4]] + [
    (("--shape", "0", "32", "32"), "--shape: .*at least 1"), (("--shape", "-8", "32", "32"), "--shape"),
    (("--xy-nm", "nan"), "--xy-nm"), (("--xy-nm", "0"), "--xy-nm"), (("--anisotropy", "0"), "--anisotropy"),
    (("--missing-sections", "2"), "--missing-sections"), (("--cases", "0"), "--cases"),
    (("--missing-sections", "nan"), "--missing-sections"), (("--seed", "-1"), "--seed must be >= 0"),
]


@pytest.mark.parametrize("args,match", SYNTH_CASES)
def test_synth_refuses(ws, args, match):
    _refused(["synth", "--dataset-id", "20", "--cases", "2", "--shape", "8", "16", "16", *args], match)
    assert not list((ws / "nnUNet_raw").iterdir())


EVALUATE_CASES = [(("--spacing", *s), "--spacing: ") for s in BAD_SPACINGS] + [
    (("--blockwise", "--workers", "-2"), "--workers: -2"), (("--blockwise", "--block-size", "0", "4", "4"),
                                                           "--block-size"),
    (("-o", ""), "-o is empty"), (("-p", "nan.h5:lab", "-r", "nan.h5:lab"), "nan.h5:lab: its voxel size"),
    (("-p", "two.h5:lab", "-r", "two.h5:lab", "--blockwise"), "two.h5:lab: its voxel size"),
    (("--probabilities", "a.h5:raw"), "dtype uint8 holds no probabilities"),
    (("--probabilities", "logits.h5:p"), "are not probabilities in \\[0, 1\\]"),
    (("--ignore-label", "-5"), "--ignore-label -5: labels are non-negative"),
]


@pytest.mark.parametrize("args,match", EVALUATE_CASES)
def test_evaluate_refuses(ws, args, match, capsys):
    with h5py.File(ws / "logits.h5", "w") as f:
        f["p"] = np.full((2, 8, 32, 32), 3.5, np.float32)
    pair = [] if "-p" in args else ["-p", "a.h5:lab", "-r", "a.h5:lab"]
    _refused(["evaluate", *pair, *args], match)
    assert capsys.readouterr().out == ""  # refused before any number


def test_evaluate_overwrites_only_its_own_output_and_prints_no_negative_zero(ws, capsys):
    mine = ws / "mine.json"
    mine.write_text('{"1": {"dice": 1.0}}')  # a user's file with the shape of evaluate's
    _refused(["evaluate", "-p", "a.h5:lab", "-r", "a.h5:lab", "-o", str(mine), "--overwrite"], "not an evaluate result")
    assert mine.read_text() == '{"1": {"dice": 1.0}}'
    out = ws / "m.json"
    assert main(["evaluate", "-p", "a.h5:lab", "-r", "a.h5:lab", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "-0.0" not in printed and json.loads(printed)["1"]["voi_split"] == 0.0
    assert json.loads(out.read_text())["reisoseg"]["command"] == "evaluate"
    assert main(["evaluate", "-p", "a.h5:lab", "-r", "a.h5:lab", "-o", str(out), "--overwrite"]) == 0
    # --spacing replaces a file's bad voxel size, as in convert
    assert main(["evaluate", "-p", "nan.h5:lab", "-r", "nan.h5:lab", "--spacing", "40", "10", "10"]) == 0


def test_evaluate_blockwise_on_a_damaged_chunk_is_one_line(ws):
    import zarr

    z = zarr.open_array(str(ws / "d.zarr"), mode="w", shape=(8, 32, 32), chunks=(4, 16, 16), dtype="u1")
    z[:] = 1
    z.attrs["resolution"] = list(SPACING)
    next(p for p in (ws / "d.zarr").rglob("*") if p.is_file() and p.name != "zarr.json").write_text("garbage")
    for extra in ([], ["--blockwise"]):
        _refused(["evaluate", "-p", "d.zarr", "-r", "d.zarr", *extra], "damaged or incomplete")


def test_info_refuses_what_is_not_plans(ws):
    _refused(["info", "999"], "info: no dataset 999 in \\$nnUNet_preprocessed")
    _refused(["info", "Dataset999_Nope"], "info: no dataset Dataset999_Nope")
    (ws / "empty.json").write_text("{}")
    _refused(["info", str(ws / "empty.json")], "has no 'configurations'")
    (ws / "dataset.json").write_text(json.dumps({"labels": {"background": 0}, "channel_names": {"0": "EM"}}))
    _refused(["info", str(ws / "dataset.json")], "has no 'configurations'")
    from tests.fixtures import load_plans

    (ws / "plans.json").write_text(json.dumps(load_plans("tiny_40x10x10")))
    _refused(["info", str(ws / "plans.json"), "-c", "2d_nope"], "no configuration '2d_nope'")


def test_benchmark_refuses(ws):
    _refused(["benchmark", "Dataset999_Nope", "--preset", "tiny"], "no dataset Dataset999_Nope in \\$nnUNet_raw")
    _refused(["benchmark", "--preset", "tiny", "--folds", "-1"], "seeds and folds are numbers >= 0")
    assert not list((ws / "nnUNet_raw").iterdir())


def test_import_stock_refuses(ws):
    from tests.training.test_export import _stock_checkpoint

    _stock_checkpoint(ws / "stock.pth")
    base = ["import-stock", str(ws / "stock.pth"), "-o", str(ws / "x.pth")]
    _refused([*base, "-c", "3d_nope"], "no configuration '3d_nope'")
    _refused([*base, "--plans", str(ws / "missing.json")], "no such file")
    (ws / "broken.json").write_text("{")
    _refused([*base, "--plans", str(ws / "broken.json")], "not valid JSON")
    (ws / "notplans.json").write_text("[]")
    _refused([*base, "--plans", str(ws / "notplans.json")], "not an object")
    _refused([*base, "-tr", "nnUNetTrainer"], "builds no isotropic branch, so there is nothing to import")
    assert not (ws / "x.pth").exists()


PREDICT_CASES = [(("--spacing", *s), "--spacing: ") for s in BAD_SPACINGS] + [
    (("--workers", "-2"), "--workers: -2"), (("--block-size", "0", "8", "8"), "--block-size"),
    (("-step_size", "0"), "-step_size"), (("-step_size", "nan"), "-step_size"),
    (("--instances", "--min-size", "nan"), "--min-size"), (("--instances", "--min-size", "-1"), "--min-size"),
    (("--instances", "watershed", "--seed-threshold", "1.5"), "--seed-threshold"),
    (("--instances", "watershed", "--foreground-threshold", "nan"), "--foreground-threshold"),
    (("--instances", "watershed", "--halo-nm", "-5"), "--halo-nm"),
    (("--instances", "watershed", "--min-seed-nm3", "inf"), "--min-seed-nm3"),
    (("--min-seed-nm3", "10"), "add --instances"),
]


@pytest.mark.parametrize("args,match", PREDICT_CASES)
def test_predict_volume_refuses(ws, args, match):
    from tests.volume.test_predict_volume import make_model

    model = make_model(ws / "model", folds=(0,))
    _refused(["predict-volume", "-i", "a.h5:raw", "-o", str(ws / "out.zarr"), "-m", str(model), "-device", "cpu",
              *args], match)
    assert not (ws / "out.zarr").exists() and not list(ws.glob(".out.zarr*"))


def test_an_unexpected_error_is_one_line_that_says_how_to_see_more(ws, monkeypatch):
    import nnunetv2_reisoseg.cli as cli

    def broken(**options):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "_add_trainer_path", lambda sub: sub.add_parser("trainer-path").set_defaults(func=broken))
    _refused(["trainer-path"], "trainer-path: unexpected KeyError: 'a bug'.*REISOSEG_DEBUG=1")
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(KeyError):
        main(["trainer-path"])

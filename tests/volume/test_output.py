"""predict-volume's outputs under the rule of every output (issue 28), checked before any prediction runs:
--overwrite never deletes what predict-volume did not write, a replacement is written beside the old output,
bad input and bad models are refused before an output exists, and an early crash leaves none behind."""
import json
import os

import h5py
import numpy as np
import pytest
import torch

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.data.synth import generate_case
from nnunetv2_reisoseg.io.folders import OutputError
from nnunetv2_reisoseg.volume import output as store
from nnunetv2_reisoseg.volume import predict as pv
from nnunetv2_reisoseg.volume.settings import RunSettings
from tests.volume.test_predict_volume import SPACING, make_model


def _settings(shape=(8, 16, 16)):
    return RunSettings(input="vol.h5:raw", shape=shape, spacing_nm=SPACING, model="model", folds=(0,),
                       checkpoint="checkpoint_final.pth", step_size=0.5, tta=False, device="cpu", block_shape=shape,
                       chunks=shape, save_probabilities=False, transpose_forward=(0, 1, 2), trainer="nnUNetTrainer",
                       configuration="3d_fullres")


def _our_output(path):
    store.prepare(path, _settings(), {"background": 0, "mito": 1}, 2, None)
    return path


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_overwrite_never_deletes_what_predict_volume_did_not_write(tmp_path, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.tex").write_text("x")
    with pytest.raises(OutputError, match="not a reisoseg predict-volume output"):
        store.previous_run(d, False, True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep.h5").write_text("x")
    (tmp_path / "out.zarr").symlink_to(data)
    for cont in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            store.previous_run(tmp_path / "out.zarr", cont, True)
    ours = _our_output(tmp_path / "ours.zarr")
    (ours / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds 1 file\(s\) predict-volume did not write \(notes.txt\)"):
        store.previous_run(ours, False, True)
    (ours / "notes.txt").unlink()
    with pytest.raises(OutputError, match=r"which holds .*vol.h5"):  # -o over the folder of the input
        store.previous_run(ours, False, True, [ours / "vol.h5"])
    monkeypatch.chdir(ours)
    with pytest.raises(OutputError, match="the working folder"):  # -o .
        store.previous_run(ours, False, True)
    assert (d / "thesis.tex").is_file() and (data / "keep.h5").is_file()


def test_a_replacement_is_written_beside_and_continued_there(tmp_path):
    out = _our_output(tmp_path / "seg.zarr")
    dest = store.previous_run(out, False, True)
    assert dest.replaces and dest.work == tmp_path / ".seg.zarr.reisoseg-new" and dest.previous is None
    assert not dest.work.exists() and (out / ".zattrs").is_file()  # the old output stays until the new is complete
    _our_output(dest.work)  # a replacement killed half way ...
    again = store.previous_run(out, True, False)  # ... is what --c continues
    assert again.work == dest.work and again.previous is not None and not again.created
    store.finish(again, {"blocks": 1})
    assert not dest.work.exists() and json.loads((out / ".zattrs").read_text())["reisoseg_complete"] == {"blocks": 1}
    with pytest.raises(OutputError, match="exists; pass --c to continue the run that wrote it"):
        store.previous_run(out, False, False)


def test_a_read_only_output_is_refused_before_the_statistics_pass(tmp_path, monkeypatch):
    out = _our_output(tmp_path / "seg.zarr")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(out) else real(p, mode))
    with pytest.raises(OutputError, match="is not writable"):
        store.previous_run(out, True, False)
    with pytest.raises(OutputError, match="is not writable"):
        store.previous_run(out / "sub.zarr", False, False)


@pytest.fixture
def volume(tmp_path):
    vol = generate_case(np.random.default_rng(3), (16, 40, 40), 4).image.astype(np.float32)
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        f.create_dataset("raw", data=vol).attrs["resolution"] = SPACING
    return tmp_path / "vol.h5", vol


def _predict(args, tmp_path):
    return main(["predict-volume", "-o", str(tmp_path / "seg.zarr"), "-device", "cpu", "--disable_tta", *args])


def test_non_finite_voxels_are_refused_and_nothing_is_written(tmp_path, volume):
    _, vol = volume
    vol[5, 20, 20] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f.create_dataset("raw", data=vol).attrs["resolution"] = SPACING
    model = make_model(tmp_path / "model", folds=(0,))
    with pytest.raises(SystemExit, match=r"nan.h5:raw: 1 NaN or infinite voxel\(s\).*section 5.*nan_to_num"):
        _predict(["-i", f"{tmp_path}/nan.h5:raw", "-m", str(model), "-f", "0"], tmp_path)
    assert not (tmp_path / "seg.zarr").exists()


def test_checkpoints_that_cannot_be_used_are_refused_before_any_output(tmp_path, volume):
    path, _ = volume
    model = make_model(tmp_path / "model", folds=(0,))
    ckpt = model / "fold_0" / "checkpoint_final.pth"
    saved = torch.load(ckpt, weights_only=False)
    torch.save({**saved, "trainer_name": "nnUNetTrainerNobodyHas"}, ckpt)
    with pytest.raises(SystemExit, match="trainer nnUNetTrainerNobodyHas, which nnU-Net cannot find"):
        _predict(["-i", f"{path}:raw", "-m", str(model), "-f", "0"], tmp_path)
    ckpt.write_bytes(b"garbage")
    with pytest.raises(SystemExit, match="not a readable PyTorch checkpoint"):
        _predict(["-i", f"{path}:raw", "-m", str(model), "-f", "0"], tmp_path)
    assert not (tmp_path / "seg.zarr").exists()


def test_a_crash_before_the_first_block_leaves_no_output(tmp_path, volume, monkeypatch):
    path, _ = volume
    model = make_model(tmp_path / "model", folds=(0,))

    def crash(*args, **kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(pv, "predict_blocks", crash)
    with pytest.raises(SystemExit, match="unexpected RuntimeError: worker died"):  # one line, as every error
        _predict(["-i", f"{path}:raw", "-m", str(model), "-f", "0"], tmp_path)
    assert not (tmp_path / "seg.zarr").exists()
    # a replacement that crashes early leaves the old output as it was, and no staging folder
    old = _our_output(tmp_path / "seg.zarr")
    before = {f: (old / f).read_bytes() for f in _files(old) if (old / f).is_file()}
    with pytest.raises(SystemExit, match="worker died"):
        _predict(["-i", f"{path}:raw", "-m", str(model), "-f", "0", "--overwrite"], tmp_path)
    assert {f: (old / f).read_bytes() for f in _files(old) if (old / f).is_file()} == before
    assert not (tmp_path / ".seg.zarr.reisoseg-new").exists()


def test_a_damaged_input_is_a_clear_error_and_writes_nothing(tmp_path, volume):
    import zarr

    _, vol = volume
    z = zarr.open_group(str(tmp_path / "vol.zarr"), mode="w", zarr_format=2)
    arr = z.create_array("raw", shape=vol.shape, chunks=(8, 40, 40), dtype=vol.dtype)
    arr[:] = vol
    arr.attrs["resolution"] = list(SPACING)
    (tmp_path / "vol.zarr" / "raw" / "1.0.0").write_bytes(b"half a chunk")
    model = make_model(tmp_path / "model", folds=(0,))
    with pytest.raises(SystemExit, match=r"vol.zarr:raw: cannot read voxels \[0:.*damaged or incomplete"):
        _predict(["-i", f"{tmp_path}/vol.zarr:raw", "-m", str(model), "-f", "0"], tmp_path)
    assert not (tmp_path / "seg.zarr").exists()


def test_an_output_of_the_layout_before_issue_29_is_replaced_not_continued(tmp_path):
    """Before issue 29 the labels were at the root and the run state and objects.csv inside the store."""
    import zarr

    out = tmp_path / "old.zarr"
    root = zarr.open_group(str(out), mode="w", zarr_format=2)
    root.create_array("0", shape=(4, 8, 8), dtype=np.uint8)[...] = 1
    root.attrs.update({"reisoseg": _settings().to_json(), "reisoseg_complete": {"blocks": 1}})
    (out / ".reisoseg" / "done").mkdir(parents=True)
    (out / ".reisoseg" / "settings.json").write_text(json.dumps(_settings().to_json()))
    root.require_group("labels").require_group("instances").create_array("0", shape=(4, 8, 8), dtype=np.uint32)
    (out / "labels" / "instances" / "objects.csv").write_text("id,class\n")
    with pytest.raises(OutputError, match=r"earlier version of predict-volume.*--overwrite"):
        store.previous_run(out, True, False)
    assert store.previous_run(out, False, True).replaces
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"):
        store.previous_run(out, False, True)


def test_run_state_is_removed_only_when_predict_volume_wrote_it(tmp_path):
    out = tmp_path / "seg.zarr"
    state = store.run_dir(out)
    state.mkdir()
    (state / "settings.json").write_text("{}")
    (state / "thesis.tex").write_text("mine")  # a folder of that name holding something else stays
    store.drop_run_state(out)
    assert (state / "thesis.tex").is_file()
    (state / "thesis.tex").unlink()
    (state / "done").mkdir()
    store.drop_run_state(out)
    assert not state.exists()

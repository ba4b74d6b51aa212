"""reisoseg predict-volume against nnU-Net's own predictor, on model folders with random weights from a tiny
plan (they load without training), HDF5 and zarr input, blocks smaller and larger than the patch, a killed and
resumed run, a two-worker dask LocalCluster, the output's metadata and the errors."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import cc3d
import h5py
import numpy as np
import pytest
import torch
import zarr
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_reisoseg import our_trainers
from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.data.synth import generate_case
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso
from nnunetv2_reisoseg.volume import grid as g
from nnunetv2_reisoseg.volume import output as store
from nnunetv2_reisoseg.volume.intensity import nnunet_stats
from nnunetv2_reisoseg.volume.predict import predict_volume
from nnunetv2_reisoseg.volume.settings import PredictOptions, RunOptions
from tests.fixtures import load_plans

pytestmark = pytest.mark.e2e  # whole runs through nnU-Net: outside the fast lane (pytest -m "not e2e")

DATASET_JSON = {"channel_names": {"0": "EM"}, "labels": {"background": 0, "mitochondria": 1}, "numTraining": 5,
                "file_ending": ".nii.gz"}
SPACING = (40.0, 10.0, 10.0)  # the tiny plan's


def make_model(folder, trainer=nnUNetTrainer, folds=(0, 1), dataset_json=DATASET_JSON):
    """A model folder as nnU-Net writes one, with random weights (He init, as training starts)."""
    plans = load_plans("tiny_40x10x10")
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    for f in folds:
        torch.manual_seed(100 + f)
        net = trainer.build_network_architecture(pm, cm, 1, len(dataset_json["labels"]), False)
        (folder / f"fold_{f}").mkdir()
        torch.save({"network_weights": net.state_dict(), "trainer_name": trainer.__name__,
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": f,
                                  "dataset_json": dataset_json, "device": "cpu"},
                    "inference_allowed_mirroring_axes": (0, 1, 2), "current_epoch": 0},
                   folder / f"fold_{f}" / "checkpoint_final.pth")
    return folder


def nnunet_reference(model, volume, folds, tta, step_size=0.5):
    """nnU-Net's own predictor on the whole volume (preprocessing, sliding window, export)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    p = nnUNetPredictor(tile_step_size=step_size, use_mirroring=tta, device=torch.device("cpu"), verbose=False,
                        verbose_preprocessing=False, allow_tqdm=False)
    with our_trainers():  # a ReIsoSeg model's trainer is found through nnUNet_extTrainer
        p.initialize_from_trained_model_folder(str(model), use_folds=tuple(folds))
    return p.predict_single_npy_array(volume[None].astype(np.float32), {"spacing": list(SPACING)})


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("volume")
    case = generate_case(np.random.default_rng(3), (24, 80, 70), 4)  # 2 x 3 x 2 tiles of the 16x48x48 patch
    vol = case.image.astype(np.uint8)
    vol[:, :7, :] = 0  # an empty margin: nnU-Net crops to the nonzero box
    with h5py.File(root / "vol.h5", "w") as f:
        f.create_dataset("raw", data=vol, chunks=(8, 32, 32)).attrs["resolution"] = SPACING
    z = zarr.open_group(str(root / "vol.zarr"), mode="w", zarr_format=2)
    z.create_array("0", shape=vol.shape, chunks=(8, 40, 40), dtype=vol.dtype)[:] = vol
    z.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "nanometer"}
                                                          for a in "zyx"],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": list(SPACING)}]}]}]
    model = make_model(root / "model")
    return root, vol, model


def _labels(out):
    return zarr.open_array(str(out / "labels" / "semantic" / "0"), mode="r")[:]


def _settings(out):
    """The run's settings, kept in the store's attributes (the run state beside it is gone once finished)."""
    return zarr.open_group(str(out), mode="r").attrs["reisoseg"]


def _away_from_borders(out):
    """Voxels that only their own block's tiles reach, or outside nnU-Net's crop: there the labels are
    nnU-Net's to the bit."""
    st = _settings(out)
    tf = st["transpose_forward"]
    plans = load_plans("tiny_40x10x10")
    patch = tuple(plans["configurations"]["3d_fullres"]["patch_size"])
    bbox = tuple(map(tuple, st["statistics"]["bbox"]))
    grid = g.TileGrid(g.to_network(bbox, tf), patch, st["step_size"])
    layout = g.Layout(grid, tuple(st["shape"]), tuple(st["block_shape"]), tuple(tf))
    away = np.ones(st["shape"], bool)
    away[roi.slices(bbox)] = False
    for i in range(len(layout.boxes)):
        interior = layout.plan(i).interior
        if interior is not None:
            away[roi.slices(g.to_input(grid.network_from_padded(interior), tf))] = True
    return away


def _arrays(out):
    """Every array of a store, by path."""
    return {k: v[...] for k, v in zarr.open_group(str(out), mode="r").members(max_depth=None)
            if isinstance(v, zarr.Array)}


def _instances(out):
    return zarr.open_array(str(out / "labels" / "instances" / "0"), mode="r")[:]


@pytest.mark.parametrize("block", [(8, 32, 32), (32, 128, 128)])  # smaller than the patch; the whole volume
def test_same_labels_as_nnunet_with_its_statistics(ws, block, tmp_path):
    root, vol, model = ws
    ref = nnunet_reference(model, vol, (0, 1), tta=False)
    out = tmp_path / "seg.zarr"
    s = predict_volume(f"{root}/vol.h5:raw", out, model, PredictOptions(folds=(0, 1), tta=False, device="cpu",
                                                                        block_size=block),
                       RunOptions(progress=False), norm_stats=nnunet_stats(vol))
    ours = _labels(out)
    assert 0.05 < ref.mean() < 0.95  # both classes present: the comparison says something
    away = _away_from_borders(out)
    assert np.array_equal(ours[away], ref[away])
    assert (ours == ref).mean() >= 0.999
    used = _settings(out)["block_shape"]
    assert s.blocks == len(roi.partition(vol.shape, used)) and (s.blocks == 1) == (block == (32, 128, 128))
    assert away.all() == (s.blocks == 1) and away.mean() > 0.1
    assert s.tiles_run == s.tiles_whole_volume  # every tile predicted once, whatever the blocks
    assert not store.run_dir(out).exists()  # the border sums and markers were scratch
    assert np.array_equal(zarr.open_array(str(out / "0"), mode="r")[:], vol)  # the image under the labels


def test_same_labels_with_test_time_mirroring(ws, tmp_path):
    _, vol, model = ws
    small = vol[:20, 20:76, 10:60]
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f.create_dataset("raw", data=small).attrs["resolution"] = SPACING
    ref = nnunet_reference(model, small, (0,), tta=True)
    predict_volume(f"{tmp_path}/small.h5:raw", tmp_path / "tta.zarr", model,
                   PredictOptions(folds=(0,), tta=True, device="cpu", block_size=(16, 32, 32)),
                   RunOptions(progress=False), norm_stats=nnunet_stats(small))
    ours, away = _labels(tmp_path / "tta.zarr"), _away_from_borders(tmp_path / "tta.zarr")
    assert np.array_equal(ours[away], ref[away]) and (ours == ref).mean() >= 0.999


def test_own_statistics_from_zarr_and_metadata(ws, tmp_path):
    root, vol, model = ws
    ref = nnunet_reference(model, vol, (0, 1), tta=False)
    out = tmp_path / "seg.zarr"
    assert main(["predict-volume", "-i", str(root / "vol.zarr"), "-o", str(out), "-m", str(model), "-f", "0", "1",
                 "--disable_tta", "-device", "cpu", "--block-size", "16", "64", "64", "--save_probabilities"]) == 0
    ours = _labels(out)
    assert (ours == ref).mean() >= 0.999  # statistics of the whole volume in float64, nnU-Net's in float32
    attrs = zarr.open_group(str(out), mode="r").attrs.asdict()
    ms = attrs["multiscales"][0]  # the image's: 80 > 64 voxels laterally, so one level down (lateral only)
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"] and ms["axes"][0]["unit"] == "nanometer"
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [list(SPACING), [40, 20, 20]]
    label = zarr.open_group(str(out / "labels" / "semantic"), mode="r").attrs["image-label"]
    assert [p["name"] for p in label["properties"]] == ["background", "mitochondria"]
    assert label["source"]["image"] == "../../"
    prov = attrs["reisoseg"]
    assert prov["folds"] == [0, 1] and prov["tta"] is False and prov["step_size"] == 0.5
    assert prov["statistics"]["bbox"][1] == [7, 80] and prov["trainer"] == "nnUNetTrainer"
    probs = zarr.open_array(str(out / "probabilities" / "0"), mode="r")
    assert probs.shape == (2, *vol.shape) and probs.dtype == np.float16
    p = probs[:].astype(np.float32)
    assert np.allclose(p.sum(0), 1, atol=2e-3)
    # the labels are the argmax of the probabilities (which float16 storage may round into a tie)
    assert ((p[1] >= p[0]) == (ours == 1))[np.abs(p[1] - p[0]) > 1e-3].all()
    assert (p[0, :, :7] == 1).all()  # outside nnU-Net's crop: background


def test_reisoseg_model_and_a_two_worker_dask_cluster(ws, tmp_path, capsys):
    root, vol, _ = ws
    model = make_model(tmp_path / "reiso_model", nnUNetTrainerReIso, folds=(0,))
    ck = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False)
    assert any(k.startswith("isotropic.") for k in ck["network_weights"])
    common = ["-i", f"{root}/vol.h5:raw", "-m", str(model), "-f", "0", "--disable_tta", "-device", "cpu",
              "--block-size", "16", "40", "40"]
    instances = ["--instances", "--min-size", str(3 * np.prod(SPACING))]  # objects of at least 3 voxels
    assert main(["predict-volume", "-o", str(tmp_path / "serial.zarr"), *common, *instances]) == 0
    assert main(["predict-volume", "-o", str(tmp_path / "dask.zarr"), "--workers", "2", *common, *instances]) == 0
    serial = _labels(tmp_path / "serial.zarr")
    assert np.array_equal(serial, _labels(tmp_path / "dask.zarr"))
    ref = nnunet_reference(model, vol, (0,), tta=False)  # a ReIsoSeg model: the stock forward at inference
    assert (serial == ref).mean() >= 0.999
    # instances: cc3d of the whole semantic volume without its objects under 3 voxels, on both schedulers
    ids = _instances(tmp_path / "serial.zarr")
    assert np.array_equal(ids, _instances(tmp_path / "dask.zarr"))
    whole = cc3d.connected_components(serial, connectivity=26)
    small = np.bincount(whole.ravel())[whole] < 3
    expected = cc3d.connected_components(np.where(small, 0, serial), connectivity=26)
    assert ids.max() >= 1 and np.bincount(whole.ravel())[1:].max() > 16 * 40 * 40  # an object larger than a block
    assert np.array_equal(ids, expected)
    capsys.readouterr()
    assert main(["objects", str(tmp_path / "serial.zarr")]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == ids.max() and {r["class_name"] for r in rows} == {"mitochondria"}
    assert [int(r["voxels"]) for r in rows] == np.bincount(ids.ravel())[1:].tolist()
    root_attrs = zarr.open_group(str(tmp_path / "serial.zarr"), mode="r")
    assert root_attrs["labels"].attrs["labels"] == ["semantic", "instances"]
    scale = root_attrs["labels/instances"].attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert scale[0]["scale"] == list(SPACING)


def test_killed_run_continues_with_c(ws, tmp_path, capsys):
    root, vol, model = ws
    out = tmp_path / "seg.zarr"
    common = ["-i", f"{root}/vol.h5:raw", "-m", str(model), "-f", "0", "--disable_tta", "-device", "cpu",
              "--block-size", "8", "32", "32"]
    cli = [sys.executable, "-m", "nnunetv2_reisoseg", "predict-volume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cli, "-o", str(out), *common], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(store.done_blocks(out)) >= 3:
            os.kill(proc.pid, signal.SIGKILL)  # in the middle of the run, whatever it was writing
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    block = json.loads((store.run_dir(out) / "settings.json").read_text())["block_shape"]
    n_total, n_done = len(roi.partition(vol.shape, block)), len(store.done_blocks(out))
    assert 3 <= n_done < n_total
    # a chunk zarr was writing when the kill came (made here, so that every run checks it): ours, removed by --c
    partial = out / "labels" / "semantic" / "0" / f"0.1.{'ab' * 16}.partial"
    partial.write_bytes(b"half a chunk")
    # other settings are refused; an existing output without --c or --overwrite too
    with pytest.raises(SystemExit, match=r"other settings \(step_size: 0.5 -> 0.7"):
        main(["predict-volume", "-o", str(out), *common, "--c", "-step_size", "0.7"])
    with pytest.raises(SystemExit, match="exists; pass --c"):
        main(["predict-volume", "-o", str(out), *common])
    p = subprocess.run([*cli, "-o", str(out), *common, "--c", "--instances"], env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"{n_done} already done" in p.stdout
    assert not list(out.rglob("*.partial"))
    # the same as an uninterrupted run, labels and objects
    assert main(["predict-volume", "-o", str(tmp_path / "whole.zarr"), *common, "--instances"]) == 0
    resumed, whole = _arrays(out), _arrays(tmp_path / "whole.zarr")  # image, labels, instances, pyramids, table
    assert sorted(resumed) == sorted(whole) and "labels/semantic/1" in resumed and "objects/voxels" in resumed
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)
    assert np.array_equal(_instances(out), cc3d.connected_components(_labels(out), connectivity=26))
    with pytest.raises(SystemExit, match=r"other settings \(.*connectivity: 26 -> 6"):
        main(["predict-volume", "-o", str(out), *common, "--c", "--instances", "--connectivity", "6"])
    before = _arrays(out)
    capsys.readouterr()
    assert main(["predict-volume", "-o", str(out), *common, "--c", "--instances"]) == 0  # finished: nothing redone
    assert "is complete: nothing to continue" in capsys.readouterr().out
    after = _arrays(out)
    assert sorted(after) == sorted(before) and all(np.array_equal(after[k], before[k]) for k in before)


def test_bad_input_is_refused_and_writes_nothing(ws, tmp_path):
    root, vol, model = ws
    out = tmp_path / "never.zarr"

    def refused(match, *args):
        with pytest.raises(SystemExit, match=match):
            main(["predict-volume", "-o", str(out), "-device", "cpu", *args])
        assert not out.exists()

    refused("no such file", "-i", str(tmp_path / "missing.h5"), "-m", str(model))
    refused("has no dataset 'nope'; available: raw", "-i", f"{root}/vol.h5:nope", "-m", str(model))
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f.create_dataset("raw", data=vol[0]).attrs["resolution"] = SPACING[1:]
    refused("expected a 3D volume", "-i", f"{tmp_path}/flat.h5:raw", "-m", str(model))
    refused("no fold_3|fold\\(s\\) 3; folds with one: 0, 1", "-i", f"{root}/vol.h5:raw", "-m", str(model), "-f", "3")
    refused("not an nnU-Net model folder", "-i", f"{root}/vol.h5:raw", "-m", str(tmp_path))
    refused("voxels of 40x5x5 nm but the model was trained at 40x10x10 nm", "-i", f"{root}/vol.h5:raw", "-m",
            str(model), "--spacing", "40", "5", "5")
    two = make_model(tmp_path / "two_channels", folds=(0,), dataset_json={
        **DATASET_JSON, "channel_names": {"0": "EM", "1": "mask"}})
    refused("takes 2 input channels", "-i", f"{root}/vol.h5:raw", "-m", str(two))
    masked = make_model(tmp_path / "masked", folds=(0,))
    plans = json.loads((masked / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["use_mask_for_norm"] = [True]  # needs the whole image to fill holes
    (masked / "plans.json").write_text(json.dumps(plans))
    refused("normalises inside the nonzero mask", "-i", f"{root}/vol.h5:raw", "-m", str(masked))
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="exists; pass --c"):
        main(["predict-volume", "-o", str(out), "-device", "cpu", "-i", f"{root}/vol.h5:raw", "-m", str(model)])
    with pytest.raises(SystemExit, match="not a reisoseg predict-volume output"):
        main(["predict-volume", "-o", str(out), "-device", "cpu", "-i", f"{root}/vol.h5:raw", "-m", str(model),
              "--overwrite"])
    assert os.listdir(out) == ["notes.txt"]


def test_overwrite_swaps_in_a_complete_output(ws, tmp_path):
    """--overwrite writes the new output beside the old one and replaces it only once complete; evaluate accepts
    the result (it is marked complete) and there is no staging folder left."""
    root, _, model = ws
    out = tmp_path / "seg.zarr"
    common = ["-i", f"{root}/vol.h5:raw", "-m", str(model), "-f", "0", "--disable_tta", "-device", "cpu",
              "--block-size", "32", "128", "128"]
    assert main(["predict-volume", "-o", str(out), *common]) == 0
    first = _labels(out)
    zarr.open_group(str(out), mode="r+").attrs["marker"] = "old"
    assert main(["predict-volume", "-o", str(out), *common, "--overwrite"]) == 0
    attrs = zarr.open_group(str(out), mode="r").attrs
    assert "marker" not in attrs and "reisoseg_complete" in attrs
    assert np.array_equal(_labels(out), first) and sorted(os.listdir(tmp_path)) == ["seg.zarr"]


def test_viewers_open_the_image_with_its_labels_and_pyramids(ws, tmp_path):
    """Issue 29: ome-zarr-py finds the image first (the input's values), the semantic labels and the instances under
    it; the metadata validate with ome-zarr-models; zarr lists the store without a warning; the pyramid levels
    follow the rule and nothing but zarr's files is in the store."""
    import warnings

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader
    from ome_zarr_models.v04.image import Image
    from ome_zarr_models.v04.image_label import ImageLabel

    from nnunetv2_reisoseg.volume import pyramid as pyr

    root, vol, model = ws
    out = tmp_path / "seg.zarr"
    assert main(["predict-volume", "-i", f"{root}/vol.h5:raw", "-o", str(out), "-m", str(model), "-f", "0",
                 "--disable_tta", "-device", "cpu", "--block-size", "8", "32", "32", "--instances"]) == 0
    nodes = list(Reader(parse_url(str(out)))())
    assert nodes[0].specs[0].__class__ is Multiscales and nodes[0].visible
    assert np.array_equal(np.asarray(nodes[0].data[0]), vol)
    labels = {n.metadata["name"]: n for n in nodes if any(isinstance(sp, Label) for sp in n.specs)}
    assert sorted(labels) == ["instances", "semantic"]
    assert np.array_equal(np.asarray(labels["semantic"].data[0]), _labels(out))
    assert np.array_equal(np.asarray(labels["instances"].data[0]), _instances(out))
    group = zarr.open_group(str(out), mode="r")
    Image.from_zarr(group)  # raises on metadata that break NGFF 0.4
    for name in ("semantic", "instances"):
        ImageLabel.from_zarr(group[f"labels/{name}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        members = dict(group.members(max_depth=None))
    assert "labels/semantic/2" in members and not store.run_dir(out).exists()
    assert store.store_owner(out) is None  # only zarr's own files
    # the levels: 80x70 laterally at 10 nm, chunks of 32: 40x35 at 20 nm, then 20x18 at 40 nm (lateral only while
    # the 40 nm sections are thicker than sqrt(2) pixels); labels by their first voxel, the image by the mean
    levels = pyr.levels(vol.shape, SPACING, (8, 32, 32))
    assert [lv.shape for lv in levels] == [(24, 80, 70), (24, 40, 35), (24, 20, 18)]
    scales = [d["coordinateTransformations"][0]["scale"] for d in group["labels/semantic"].attrs["multiscales"][0]
              ["datasets"]]
    assert scales == [list(SPACING), [40, 20, 20], [40, 40, 40]]
    sem, img = _labels(out), vol
    for i in (1, 2):
        sem, img = sem[:, ::2, ::2], pyr.downsample(img, (1, 2, 2), pyr.MEAN)
        assert np.array_equal(group[f"labels/semantic/{i}"][...], sem)
        assert np.array_equal(group[str(i)][...], img)
    assert np.array_equal(group["labels/instances/1"][...], _instances(out)[:, ::2, ::2])


def test_watershed_instances_from_a_boundary_model(ws, tmp_path):
    """--instances watershed on a model with a boundary class: the objects are the blockwise watershed of the
    probabilities the run keeps, numbered and tabled; the knobs are recorded; a semantic model is refused first."""
    from nnunetv2_reisoseg.blockwise import watershed as bws
    from nnunetv2_reisoseg.blockwise.tasks import TaskRunner

    root, vol, semantic_model = ws
    labels = {"background": 0, "mitochondria": 1, "boundary": 2}
    model = make_model(tmp_path / "bmodel", folds=(0,), dataset_json={**DATASET_JSON, "labels": labels})
    common = ["-i", f"{root}/vol.h5:raw", "-f", "0", "--disable_tta", "-device", "cpu", "--block-size", "8", "32", "32"]
    # random weights: probabilities near a third each, so permissive thresholds give seeds to grow
    knobs = ["--seed-threshold", "0.3", "--boundary-threshold", "0.4", "--foreground-threshold", "0.6",
             "--halo-nm", "200", "--min-seed-nm3", "0"]
    out = tmp_path / "ws.zarr"
    assert main(["predict-volume", "-o", str(out), "-m", str(model), *common, "--instances", "watershed", *knobs]) == 0
    made = zarr.open_group(str(out), mode="r")["labels/instances"].attrs["reisoseg"]
    assert made["mode"] == "watershed" and made["halo_nm"] == 200 and made["seed_threshold"] == 0.3
    ids = _instances(out)
    assert ids.max() > 1  # several objects
    prob = zarr.open_array(str(out / "probabilities" / "0"), mode="r")  # kept: what the objects grew from
    s = bws.WatershedSettings(probabilities=str(out / "probabilities" / "0"), background=0, interior=(1,), boundary=2,
                              shape=ids.shape, block_shape=(8, 32, 32), chunks=(8, 32, 32), spacing_nm=SPACING,
                              seed_threshold=0.3, boundary_threshold=0.4, foreground_threshold=0.6, halo_nm=200,
                              min_seed_nm3=0)
    with TaskRunner(progress=False) as runner:
        path, key = bws.grow(tmp_path / "again", s, runner).rsplit(":", 1)
    grown = np.asarray(zarr.open_group(path, mode="r")[key][...])
    pairs = np.unique(np.stack([ids.ravel(), grown.ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(ids)) == len(np.unique(grown))  # the same objects, renumbered
    assert prob.shape == (3, *vol.shape)
    with pytest.raises(SystemExit, match="class named 'boundary'"):
        main(["predict-volume", "-o", str(tmp_path / "no.zarr"), "-m", str(semantic_model), *common, "--instances",
              "watershed"])
    assert not (tmp_path / "no.zarr").exists()
    with pytest.raises(SystemExit, match="pass --instances watershed"):
        main(["predict-volume", "-o", str(tmp_path / "no.zarr"), "-m", str(model), *common, "--instances",
              "--halo-nm", "10"])

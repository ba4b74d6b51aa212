"""`reisoseg convert`: every input kind, label rule and error, on small files made here."""
import json

import h5py
import mrcfile
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
import zarr
from PIL import Image

from nnunetv2_reisoseg.cli import main
from nnunetv2_reisoseg.data.convert import CREMI_BACKGROUND, choose_split_axis

SHAPE = (16, 40, 40)


@pytest.fixture
def raw(tmp_path, monkeypatch):
    d = tmp_path / "nnUNet_raw"
    d.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(d))
    return d


def _volume(seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    labels = np.zeros(shape, np.int64)
    labels[2:10, 5:20, 5:20] = 1
    labels[4:14, 22:35, 22:35] = 2
    return image, labels


def _read(path):
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img.GetSpacing()[::-1]


def _run(*args):
    return main(["convert", *map(str, args)])


def _fails(raw, match, *args):
    before = sorted(p.name for p in raw.iterdir())
    with pytest.raises(SystemExit, match=match):
        _run(*args)
    assert sorted(p.name for p in raw.iterdir()) == before  # nothing left behind, nothing replaced


def _cremi(path, image, labels):
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=image).attrs["resolution"] = (40.0, 4.0, 4.0)
        f.create_dataset("volumes/labels/clefts", data=labels).attrs["resolution"] = (40.0, 4.0, 4.0)


def test_cremi_hdf5_background_binary_split_and_test_volume(raw, tmp_path):
    image, labels = _volume(shape=(8, 80, 80))  # 320 nm in each direction
    clefts = np.full(image.shape, CREMI_BACKGROUND, np.uint64)
    clefts[labels == 1] = 17  # instance ids
    clefts[labels == 2] = 123456
    _cremi(tmp_path / "sample_A.h5", image, clefts)
    _cremi(tmp_path / "sample_B.h5", image[::-1].copy(), clefts[::-1].copy())
    assert _run("--image", f"{tmp_path}/sample_A.h5:volumes/raw", "--labels",
                f"{tmp_path}/sample_A.h5:/volumes/labels/clefts", "--test-image", f"{tmp_path}/sample_B.h5:volumes/raw",
                "--test-labels", f"{tmp_path}/sample_B.h5:volumes/labels/clefts", "--binary", "--split", "4",
                "--dataset-id", 5, "--name", "Cremi", "--class-names", "cleft") == 0
    out = raw / "Dataset005_Cremi"
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "cleft": 1} and ds["numTraining"] == 4
    # ties in physical extent are cut laterally: every block keeps all 8 sections
    blocks = [_read(out / "imagesTr" / f"cremi_{i:03d}_0000.nii.gz") for i in range(4)]
    assert [b[0].shape for b in blocks] == [(8, 20, 80)] * 4
    assert all(np.allclose(b[1], (40, 4, 4)) for b in blocks)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks], axis=1), image)
    lab = np.concatenate([_read(out / "labelsTr" / f"cremi_{i:03d}.nii.gz")[0] for i in range(4)], axis=1)
    np.testing.assert_array_equal(lab, (labels > 0).astype(np.uint8))
    test_img, _ = _read(out / "imagesTs" / "cremi_004_0000.nii.gz")
    np.testing.assert_array_equal(test_img, image[::-1])
    assert (out / "labelsTs" / "cremi_004.nii.gz").is_file()

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)  # nnU-Net accepts what we wrote


def test_tiff_stack_imagej_spacing_label_map_and_ignore(raw, tmp_path):
    image, labels = _volume(1)
    tifffile.imwrite(tmp_path / "img.tif", image, imagej=True, resolution=(1 / 0.006, 1 / 0.006),
                     metadata={"spacing": 0.045, "unit": "um"})
    raw_labels = labels.astype(np.int16) * 3  # classes stored as 3 and 6
    raw_labels[:, :, :4] = -1  # not annotated
    tifffile.imwrite(tmp_path / "lab.tif", raw_labels)
    assert _run("--image", tmp_path / "img.tif", "--labels", tmp_path / "lab.tif", "--label-map", "3:1", "6:2",
                "--ignore-value", "-1", "--dataset-id", 6, "--name", "Tif") == 0
    out = raw / "Dataset006_Tif"
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "class_1": 1, "class_2": 2, "ignore": 3}
    img, spacing = _read(out / "imagesTr" / "tif_000_0000.nii.gz")
    np.testing.assert_allclose(spacing, (45, 6, 6), rtol=1e-5)
    np.testing.assert_array_equal(img, image)
    lab, _ = _read(out / "labelsTr" / "tif_000.nii.gz")
    expected = labels.copy()
    expected[:, :, :4] = 3
    np.testing.assert_array_equal(lab, expected)

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_folder_of_slices_needs_spacing(raw, tmp_path, suffix):
    image, labels = _volume(2)
    for name, vol in (("img", image), ("lab", labels.astype(np.uint8))):
        (tmp_path / name).mkdir()
        for z in range(SHAPE[0]):  # natural order: slice_2 before slice_10
            path = tmp_path / name / f"slice_{z}{suffix}"
            Image.fromarray(vol[z]).save(path) if suffix == ".png" else tifffile.imwrite(path, vol[z])
    args = ["--image", tmp_path / "img", "--labels", tmp_path / "lab", "--dataset-id", 7, "--name", "Slices"]
    _fails(raw, "no voxel size.*--spacing Z Y X", *args)
    assert _run(*args, "--spacing", 30, 5, 5) == 0
    img, spacing = _read(raw / "Dataset007_Slices" / "imagesTr" / "slices_000_0000.nii.gz")
    np.testing.assert_array_equal(img, image)
    assert np.allclose(spacing, (30, 5, 5))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_voxel_size(raw, tmp_path, zarr_format):
    image, labels = _volume(3)
    ms = [{"version": "0.4" if zarr_format == 2 else "0.5",
           "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
           "datasets": [{"path": f"s{i}", "coordinateTransformations": [{"type": "scale", "scale": [0.05, xy, xy]}]}
                        for i, xy in enumerate((0.008, 0.016))]}]
    g = zarr.open_group(str(tmp_path / "em.zarr"), mode="w", zarr_format=zarr_format)
    g.attrs.update({"multiscales": ms} if zarr_format == 2 else {"ome": {"version": "0.5", "multiscales": ms}})
    g.create_array("s0", data=image)
    g.create_array("s1", data=image[:, ::2, ::2])
    lab = zarr.open_group(str(tmp_path / "labels.zarr"), mode="w", zarr_format=zarr_format)
    lab.create_array("mito", data=(labels == 1).astype(np.uint8))
    assert _run("--image", tmp_path / "em.zarr", "--labels", f"{tmp_path}/labels.zarr:mito", "--dataset-id", 8,
                "--name", "Zarr") == 0
    img, spacing = _read(raw / "Dataset008_Zarr" / "imagesTr" / "zarr_000_0000.nii.gz")
    np.testing.assert_array_equal(img, image)  # the full-resolution level
    np.testing.assert_allclose(spacing, (50, 8, 8), rtol=1e-5)


def test_mrc_voxel_size_from_header(raw, tmp_path):
    image, labels = _volume(4)
    with mrcfile.new(tmp_path / "tomo.mrc") as m:
        m.set_data(image)
        m.voxel_size = (40.0, 40.0, 400.0)  # x, y, z in Angstrom
    with mrcfile.new(tmp_path / "seg.mrc") as m:
        m.set_data(labels.astype(np.int8))
    assert _run("--image", tmp_path / "tomo.mrc", "--labels", tmp_path / "seg.mrc", "--dataset-id", 9,
                "--name", "Mrc") == 0
    img, spacing = _read(raw / "Dataset009_Mrc" / "imagesTr" / "mrc_000_0000.nii.gz")
    np.testing.assert_array_equal(img, image)
    np.testing.assert_allclose(spacing, (40, 4, 4), rtol=1e-5)


def test_errors_name_the_problem_and_leave_nothing(raw, tmp_path):
    image, labels = _volume(5)
    _cremi(tmp_path / "a.h5", image, labels)
    ok = ["--image", f"{tmp_path}/a.h5:volumes/raw", "--labels", f"{tmp_path}/a.h5:volumes/labels/clefts"]
    dest = ["--dataset-id", 10, "--name", "Err"]
    _fails(raw, "no such file", "--image", tmp_path / "missing.h5", "--labels", tmp_path / "missing.h5", *dest)
    _fails(raw, "no dataset 'volumes/nope'; available: volumes/labels/clefts, volumes/raw",
           "--image", f"{tmp_path}/a.h5:volumes/nope", "--labels", ok[3], *dest)
    _fails(raw, "holds 2 datasets", "--image", tmp_path / "a.h5", "--labels", ok[3], *dest)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["small"] = labels[:, :20]
        f["float"] = labels + 0.5
        f["neg"] = labels - 1
        f["ids"] = labels * 100
    _fails(raw, r"shape \(16, 40, 40\) but labels .* have \(16, 20, 40\)", "--image", ok[1], "--labels",
           f"{tmp_path}/bad.h5:small", *dest)
    _fails(raw, "not integers", "--image", ok[1], "--labels", f"{tmp_path}/bad.h5:float", *dest)
    _fails(raw, "negative label values", "--image", ok[1], "--labels", f"{tmp_path}/bad.h5:neg", *dest)
    _fails(raw, "look like instance ids.*--binary", "--image", ok[1], "--labels", f"{tmp_path}/bad.h5:ids", *dest)
    _fails(raw, r"not in --label-map", *ok, "--label-map", "1:1", *dest)
    _fails(raw, "blocks of 5 voxels", *ok, "--split", 3, "--split-axis", "z", *dest)
    _fails(raw, "one --labels per --image", *ok, "--image", ok[1], *dest)
    # a failure after some cases were written (second volume's labels are bad) leaves nothing either
    _fails(raw, "not integers", *ok, "--image", ok[1], "--labels", f"{tmp_path}/bad.h5:float", *dest)

    assert _run(*ok, *dest) == 0
    first = sorted(p.name for p in raw.iterdir())
    _fails(raw, "already exists.*--overwrite", *ok, "--dataset-id", 10, "--name", "Other")
    assert _run(*ok, "--dataset-id", 10, "--name", "Other", "--overwrite", "--binary") == 0
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset010_Other"] != first


def test_split_axis_choice():
    assert choose_split_axis((125, 1250, 1250), (40, 4, 4)) == 1  # CREMI: equal extents -> lateral
    assert choose_split_axis((400, 256, 256), (40, 4, 4)) == 0  # a long stack of sections -> z
    assert choose_split_axis((32, 256, 1024), (40, 4, 4)) == 2
    # the longest axis would give blocks too thin: the next one that works
    assert choose_split_axis((24, 80, 80), (40, 4, 4), 4) == 1
    assert choose_split_axis((24, 80, 80), (40, 4, 4), 2) == 0


def test_auto_split_never_picks_an_axis_it_then_refuses(raw, tmp_path):
    image, labels = _volume(shape=(24, 80, 80))  # 960 nm of sections, 320 nm laterally
    _cremi(tmp_path / "s.h5", image, labels.astype(np.uint64))
    assert _run("--image", f"{tmp_path}/s.h5:volumes/raw", "--labels", f"{tmp_path}/s.h5:volumes/labels/clefts",
                "--split", 4, "--dataset-id", 12, "--name", "Thin") == 0
    blocks = [_read(raw / "Dataset012_Thin" / "imagesTr" / f"thin_{i:03d}_0000.nii.gz")[0] for i in range(4)]
    assert [b.shape for b in blocks] == [(24, 20, 80)] * 4


def test_readers_read_only_what_is_indexed(tmp_path):
    """TIFF stacks, slice folders and arrays with leading singleton axes are read lazily."""
    from nnunetv2_reisoseg.io.volumes import read_volume

    image, _ = _volume()
    tifffile.imwrite(tmp_path / "stack.tif", image)
    (tmp_path / "slices").mkdir()
    for i, s in enumerate(image):
        Image.fromarray(s).save(tmp_path / "slices" / f"s{i}.png")
    with h5py.File(tmp_path / "five_d.h5", "w") as f:
        f.create_dataset("raw", data=image[None, None])
    for spec in (tmp_path / "stack.tif", tmp_path / "slices", f"{tmp_path}/five_d.h5:raw"):
        vol = read_volume(str(spec))
        assert not isinstance(vol.array, np.ndarray) and vol.shape == image.shape
        np.testing.assert_array_equal(vol.array[3:7, 5:9, 2:30], image[3:7, 5:9, 2:30])
        np.testing.assert_array_equal(vol.array[2], image[2])
        vol.close()
    reads = []
    vol = read_volume(str(tmp_path / "slices"))
    lazy = vol.array._array  # read_volume's CheckedArray wraps the reader's lazy array
    original = lazy._read
    lazy._read = lambda sl: reads.append(sl[0]) or original(sl)
    vol.array[4:6]
    assert reads == [slice(4, 6)]  # two of 16 slice files


def test_test_volume_without_labels_goes_to_imagests_only(raw, tmp_path):
    image, labels = _volume(6)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels.astype(np.uint8))
    tifffile.imwrite(tmp_path / "held_out.tif", image[::-1].copy())
    assert _run("--image", tmp_path / "img.tif", "--labels", tmp_path / "lab.tif", "--test-image",
                tmp_path / "held_out.tif", "--spacing", 40, 4, 4, "--split", 2, "--dataset-id", 11,
                "--name", "NoTs") == 0
    out = raw / "Dataset011_NoTs"
    assert sorted(p.name for p in out.iterdir()) == [".reisoseg-output.json", "dataset.json", "imagesTr", "imagesTs",
                                                     "labelsTr", "splits_final.json"]
    assert [p.name for p in (out / "imagesTs").iterdir()] == ["nots_002_0000.nii.gz"]
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2


def _vnc_stand_in(root, sections=6, size=64):
    """The layout and encodings of the ssTEM VNC stack 1: raw TIFF slices, mitochondria masks as 8-bit PNG
    (0/255 with anti-aliased edges, some sections left empty), merged labels (191 mitochondria, 223 synapse,
    0-128 membranes, 159 glia, 255 intracellular) and synapses as 1-bit PNG."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (sections, size, size), dtype=np.uint8)
    mito = np.zeros(image.shape, bool)
    mito[:, 10:30, 8:20] = True
    mito[1:5, 40:56, 30:50] = True
    merged = np.full(image.shape, 255, np.uint8)
    merged[:, :, 60:] = 159
    merged[:, 5, :] = 64
    merged[mito] = 191
    merged[2:4, 50:60, 5:9] = 223
    for d in ("raw", "mitochondria", "labels", "synapses"):
        (root / d).mkdir(parents=True)
    masks = []
    for s in range(sections):
        tifffile.imwrite(root / "raw" / f"{s:02d}.tif", image[s])
        mask = np.where(mito[s], 255, 0).astype(np.uint8)
        mask[:, 1:][mito[s, :, :-1] & ~mito[s, :, 1:]] = 100  # an anti-aliased edge below the threshold
        mask[:, :-1][mito[s, :, 1:] & ~mito[s, :, :-1]] = 200  # and one above
        if s == 1:
            mask[:] = 0  # as in the published stack, some mask sections are empty
        masks.append(mask)
        Image.fromarray(mask).save(root / "mitochondria" / f"{s:02d}.png")
        Image.fromarray(merged[s]).save(root / "labels" / f"labels{s:08d}.png")
        Image.fromarray(merged[s] == 223).convert("1").save(root / "synapses" / f"{s:02d}.png")
    return image, merged, np.stack(masks)


def test_sstem_vnc_folders_with_threshold_downsampling_and_held_out_region(raw, tmp_path):
    stack = tmp_path / "stack1"
    image, merged, masks = _vnc_stand_in(stack)
    common = ("--image", stack / "raw", "--spacing", 47.5, 4.6, 4.6, "--split", 3, "--hold-out", 0.25)
    assert _run(*common, "--labels", stack / "labels", "--label-map", "191:1", "223:2", "--unmapped-background",
                "--class-names", "mitochondria", "synapse", "--dataset-id", 20, "--name", "Vnc") == 0
    out = raw / "Dataset020_Vnc"
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "mitochondria": 1, "synapse": 2} and ds["numTraining"] == 3
    classes = np.select([merged == 191, merged == 223], [1, 2], 0)
    # lateral blocks of 16 rows for training, the last 16 rows held out as the test case
    for i in range(3):
        img, sp = _read(out / "imagesTr" / f"vnc_{i:03d}_0000.nii.gz")
        np.testing.assert_array_equal(img, image[:, 16 * i:16 * (i + 1)])
        np.testing.assert_array_equal(_read(out / "labelsTr" / f"vnc_{i:03d}.nii.gz")[0],
                                      classes[:, 16 * i:16 * (i + 1)])
        assert np.allclose(sp, (47.5, 4.6, 4.6))
    np.testing.assert_array_equal(_read(out / "imagesTs" / "vnc_003_0000.nii.gz")[0], image[:, 48:])
    # one fold per block: nnU-Net's own 5-fold split would fail on 3 cases
    assert json.loads((out / "splits_final.json").read_text()) == [
        {"train": [f"vnc_{j:03d}" for j in range(3) if j != k], "val": [f"vnc_{k:03d}"]} for k in range(3)]
    np.testing.assert_array_equal(_read(out / "labelsTs" / "vnc_003.nii.gz")[0], classes[:, 48:])

    # the anti-aliased binary masks, downsampled 2x laterally: images by block mean, labels by majority
    assert _run(*common, "--labels", stack / "mitochondria", "--threshold", 128, "--downsample", 1, 2, 2,
                "--dataset-id", 21, "--name", "VncHalf") == 0
    out = raw / "Dataset021_VncHalf"
    binary = (masks >= 128).astype(np.int64)
    coarse_img = image.astype(np.float32).reshape(6, 32, 2, 32, 2).mean((2, 4))
    votes = binary.reshape(6, 32, 2, 32, 2).sum((2, 4))
    coarse_lab = (votes >= 2).astype(np.uint8)  # a 2-2 tie goes to the foreground
    for i in range(3):
        img, sp = _read(out / "imagesTr" / f"vnchalf_{i:03d}_0000.nii.gz")
        np.testing.assert_allclose(img, coarse_img[:, 8 * i:8 * (i + 1)])
        np.testing.assert_array_equal(_read(out / "labelsTr" / f"vnchalf_{i:03d}.nii.gz")[0],
                                      coarse_lab[:, 8 * i:8 * (i + 1)])
        assert np.allclose(sp, (47.5, 9.2, 9.2))
    np.testing.assert_array_equal(_read(out / "labelsTs" / "vnchalf_003.nii.gz")[0], coarse_lab[:, 24:])
    assert not _read(out / "labelsTr" / "vnchalf_000.nii.gz")[0][1].any()  # the empty mask section stays empty

    _fails(raw, "--unmapped-background", *common, "--labels", stack / "labels", "--label-map", "191:1",
           "--dataset-id", 22, "--name", "Bad")
    _fails(raw, "test region of 4", "--image", stack / "raw", "--labels", stack / "mitochondria", "--threshold", 128,
           "--spacing", 47.5, 4.6, 4.6, "--hold-out", 0.07, "--dataset-id", 23, "--name", "Bad")


def test_overwrite_replaces_only_our_datasets_and_only_when_the_new_one_is_complete(raw, tmp_path):
    """Issue 28: --overwrite used to delete the old dataset before the new one was in place, and to remove
    whatever had the dataset id (a folder of someone else's, a link, a file)."""
    image, labels = _volume(5)
    _cremi(tmp_path / "a.h5", image, labels)
    ok = ["--image", f"{tmp_path}/a.h5:volumes/raw", "--labels", f"{tmp_path}/a.h5:volumes/labels/clefts"]
    assert _run(*ok, "--dataset-id", 20, "--name", "Mine") == 0
    mine = raw / "Dataset020_Mine"
    before = {p.relative_to(mine): p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["float"] = labels + 0.5
    # the new dataset fails half way (second volume): the old one is still there, byte for byte
    _fails(raw, "not integers", *ok, "--image", ok[1], "--labels", f"{tmp_path}/bad.h5:float", "--dataset-id", 20,
           "--name", "Mine", "--overwrite")
    assert {p.relative_to(mine): p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before
    # a folder with the id that reisoseg did not write, a link and a file with the id are never removed
    theirs = raw / "Dataset021_Theirs"
    theirs.mkdir()
    (theirs / "dataset.json").write_text("{}")
    _fails(raw, "not written by reisoseg", *ok, "--dataset-id", 21, "--name", "New", "--overwrite")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (raw / "Dataset022_Link").symlink_to(elsewhere)
    _fails(raw, "symbolic link", *ok, "--dataset-id", 22, "--name", "New", "--overwrite")
    (raw / "Dataset023_File").write_text("a file")
    _fails(raw, "not written by reisoseg", *ok, "--dataset-id", 23, "--name", "New", "--overwrite")
    assert (elsewhere / "keep.txt").read_text() == "keep" and (raw / "Dataset023_File").read_text() == "a file"
    # our own dataset with a file someone added is not replaced either
    (mine / "my_notes.txt").write_text("notes")
    _fails(raw, r"holds 1 file\(s\) reisoseg did not write \(my_notes.txt\)", *ok, "--dataset-id", 20, "--name",
           "Mine", "--overwrite")


def test_the_dataset_is_readable_by_colleagues(raw, tmp_path):
    import os
    import stat

    image, labels = _volume(5)
    _cremi(tmp_path / "a.h5", image, labels)
    old = os.umask(0o022)
    try:
        assert _run("--image", f"{tmp_path}/a.h5:volumes/raw", "--labels", f"{tmp_path}/a.h5:volumes/labels/clefts",
                    "--dataset-id", 24, "--name", "Shared") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((raw / "Dataset024_Shared").stat().st_mode) == 0o755


def test_non_finite_images_and_classes_with_gaps_are_refused(raw, tmp_path):
    image, labels = _volume(5)
    nan = image.astype(np.float32)
    nan[3, 4, 5] = np.nan
    nan[7, 1, 1] = np.inf
    sparse = labels.copy()
    sparse[labels == 2] = 7
    sparse[0, :3, :3] = 3
    with h5py.File(tmp_path / "v.h5", "w") as f:
        for key, data in (("raw", image), ("nan", nan), ("lab", labels), ("sparse", sparse)):
            f.create_dataset(key, data=data).attrs["resolution"] = (40.0, 4.0, 4.0)
    dest = ["--dataset-id", 25, "--name", "Bad"]
    _fails(raw, r"2 NaN or infinite voxel\(s\).*nan_to_num", "--image", f"{tmp_path}/v.h5:nan", "--labels",
           f"{tmp_path}/v.h5:lab", *dest)
    # labels 0, 1, 3, 7 would have made classes 1..7 with 2, 4, 5, 6 empty
    _fails(raw, r"classes \[1, 3, 7\].*classes \[2, 4, 5, 6\].*--label-map 1:1 3:2 7:3", "--image",
           f"{tmp_path}/v.h5:raw", "--labels", f"{tmp_path}/v.h5:sparse", *dest)
    assert _run("--image", f"{tmp_path}/v.h5:raw", "--labels", f"{tmp_path}/v.h5:sparse", "--label-map", "1:1", "3:2",
                "7:3", *dest) == 0
    assert json.loads((raw / "Dataset025_Bad" / "dataset.json").read_text())["labels"] == {
        "background": 0, "class_1": 1, "class_2": 2, "class_3": 3}


def test_damaged_inputs_are_clear_errors(raw, tmp_path):
    """Slices or pages of another size, a truncated HDF5, a corrupt zarr chunk, broken zarr metadata."""
    image, labels = _volume(5)
    lab = ["--labels", f"{tmp_path}/l.h5:lab", "--spacing", 40, 4, 4, "--dataset-id", 26, "--name", "Dmg"]
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f["lab"] = labels.astype(np.uint8)
    (tmp_path / "slices").mkdir()
    for i, s in enumerate(image):
        tifffile.imwrite(tmp_path / "slices" / f"s{i:02d}.tif", s if i != 9 else s[:30])
    _fails(raw, r"s09.tif: slice shape \(30, 40\) differs from s00.tif's \(40, 40\)", "--image",
           tmp_path / "slices", *lab)
    with tifffile.TiffWriter(tmp_path / "pages.tif") as w:
        for i, s in enumerate(image):
            w.write(s if i != 4 else s[:, :20])
    _fails(raw, r"pages.tif: page 4 has shape \(40, 20\) but page 0 has \(40, 40\)", "--image",
           tmp_path / "pages.tif", *lab)
    with h5py.File(tmp_path / "whole.h5", "w") as f:
        f["raw"] = image
    data = (tmp_path / "whole.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    _fails(raw, r"cut.h5: not a readable HDF5 file.*truncated", "--image", f"{tmp_path}/cut.h5:raw", *lab)
    z = zarr.open_group(str(tmp_path / "v.zarr"), mode="w", zarr_format=2)
    z.create_array("raw", shape=image.shape, chunks=(8, 40, 40), dtype=image.dtype)[:] = image
    (tmp_path / "v.zarr" / "raw" / "1.0.0").write_bytes(b"not a compressed chunk")
    _fails(raw, r"v.zarr:raw: cannot read voxels .*damaged or incomplete", "--image", f"{tmp_path}/v.zarr:raw",
           *lab)
    (tmp_path / "v.zarr" / "raw" / ".zarray").write_text("{ broken")
    _fails(raw, r"v.zarr:raw: not a readable zarr store or array", "--image", f"{tmp_path}/v.zarr:raw", *lab)


def test_instance_ids_are_kept_and_boundary_targets_trained(raw, tmp_path):
    """--boundary-nm: the ids kept beside the labels (downsampled by majority), labels of three classes whose
    interiors separate a touching pair; --instances alone trains one object class."""
    image = np.random.default_rng(0).integers(0, 255, (8, 80, 80), dtype=np.uint8)
    ids = np.full(image.shape, CREMI_BACKGROUND, np.uint64)
    ids[1:7, 10:50, 10:40], ids[1:7, 10:50, 40:70] = 2**33, 17  # touching along x, a 64-bit id
    _cremi(tmp_path / "a.h5", image, ids)
    assert _run("--dataset-id", 530, "--name", "Touch", "--image", f"{tmp_path}/a.h5:volumes/raw", "--labels",
                f"{tmp_path}/a.h5:volumes/labels/clefts", "--boundary-nm", 8, "--downsample", 1, 2, 2,
                "--class-names", "mitochondria") == 0
    ds = raw / "Dataset530_Touch"
    assert json.loads((ds / "dataset.json").read_text())["labels"] == {"background": 0, "mitochondria": 1,
                                                                        "boundary": 2}
    kept, spacing = _read(ds / "instancesTr" / "touch_000.nii.gz")
    assert kept.shape == (8, 40, 40) and spacing == (40.0, 8.0, 8.0) and kept.dtype == np.uint64
    assert set(np.unique(kept).tolist()) == {0, 17, 2**33} and (kept[3, 10, 5:20] == 2**33).all()
    labels, _ = _read(ds / "labelsTr" / "touch_000.nii.gz")
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    assert (labels[3, 10, 19:21] == 2).all() and labels[3, 10, 10] == 1  # the contact is boundary, inside interior
    import cc3d
    assert cc3d.connected_components(labels == 1, connectivity=26).max() == 2  # one seed per object
    assert _run("--dataset-id", 531, "--name", "Ids", "--image", f"{tmp_path}/a.h5:volumes/raw", "--labels",
                f"{tmp_path}/a.h5:volumes/labels/clefts", "--instances") == 0
    labels, _ = _read(raw / "Dataset531_Ids" / "labelsTr" / "ids_000.nii.gz")
    assert set(np.unique(labels).tolist()) == {0, 1}
    assert json.loads((raw / "Dataset531_Ids" / "dataset.json").read_text())["labels"] == {"background": 0,
                                                                                          "object": 1}
    _fails(raw, "would change them", "--dataset-id", 532, "--name", "X", "--image", f"{tmp_path}/a.h5:volumes/raw",
           "--labels", f"{tmp_path}/a.h5:volumes/labels/clefts", "--instances", "--binary")
    _fails(raw, "--boundary-nm", "--dataset-id", 532, "--name", "X", "--image", f"{tmp_path}/a.h5:volumes/raw",
           "--labels", f"{tmp_path}/a.h5:volumes/labels/clefts", "--boundary-nm", "0")

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_reisoseg.data import synth
from nnunetv2_reisoseg.data.synth import SynthSpec, generate_dataset


def _gen(root, name="Tiny", overwrite=False, **kw):
    args = dict(cases=2, shape=(8, 32, 32), anisotropy=4, xy_nm=10.0, seed=1)
    return generate_dataset(root, 950, name, SynthSpec(**{**args, **kw}), overwrite, progress=False)


def test_layout_spacing_and_determinism(tmp_path):
    a = _gen(tmp_path / "a", test_cases=1)
    b = _gen(tmp_path / "b", test_cases=1)
    files = sorted((p.relative_to(a) for p in a.rglob("*") if p.is_file()), key=str)
    assert [str(f) for f in files] == [
        ".reisoseg-output.json", "dataset.json", "imagesTr/tiny_000_0000.nii.gz", "imagesTr/tiny_001_0000.nii.gz",
        "imagesTs/tiny_002_0000.nii.gz", "isotropic_truth/tiny_000.nii.gz", "isotropic_truth/tiny_001.nii.gz",
        "isotropic_truth/tiny_002.nii.gz", "labelsTr/tiny_000.nii.gz", "labelsTr/tiny_001.nii.gz",
        "labelsTs/tiny_002.nii.gz", "preview.png"]
    for f in files[:-1]:  # the same seed gives the same bytes (the PNG embeds no data of its own)
        assert (a / f).read_bytes() == (b / f).read_bytes()
    img = sitk.ReadImage(str(a / "imagesTr/tiny_000_0000.nii.gz"))
    assert img.GetSpacing() == (10.0, 10.0, 40.0)  # x, y, z in nm: sections 4x the lateral pixel
    truth = sitk.ReadImage(str(a / "isotropic_truth/tiny_000.nii.gz"))
    assert sitk.GetArrayFromImage(truth).shape == (32, 32, 32)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(a / "labelsTr/tiny_000.nii.gz")))
    assert set(np.unique(labels)) <= {0, 1} and labels.any()
    assert json.loads((a / "dataset.json").read_text())["numTraining"] == 2


def test_existing_id_needs_overwrite_and_failures_leave_nothing(tmp_path, monkeypatch):
    first = _gen(tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        _gen(tmp_path, name="Other")
    calls = []

    def boom(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*a, **k)

    real = synth.generate_case
    monkeypatch.setattr(synth, "generate_case", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _gen(tmp_path, name="Other", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # old dataset kept, no temp folder
    monkeypatch.setattr(synth, "generate_case", real)
    replaced = _gen(tmp_path, name="Other", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [replaced.name]


def test_membranes_class_and_missing_sections(tmp_path):
    out = _gen(tmp_path, membranes_class=True, missing_sections=1.0, shape=(8, 48, 48))
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["labels"] == {"background": 0, "mitochondria": 1, "membranes": 2}
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr/tiny_000.nii.gz")))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "isotropic_truth/tiny_000.nii.gz")))
    assert set(np.unique(labels)) == {0, 1, 2} and set(np.unique(truth)) == {0, 1, 2}

    def flat_sections(path):  # a lost section is noise around its mean: no tissue contrast left
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        std = image.reshape(image.shape[0], -1).std(1)
        return int(np.sum(std < 0.6 * np.median(std)))

    assert flat_sections(out / "imagesTr/tiny_000_0000.nii.gz") == 1
    clean = _gen(tmp_path / "clean", shape=(8, 48, 48))
    assert flat_sections(clean / "imagesTr/tiny_000_0000.nii.gz") == 0
    with pytest.raises(ValueError, match="probability"):
        _gen(tmp_path / "bad", missing_sections=2.0)


def _spans(labels):
    import cc3d
    from scipy import ndimage as ndi

    objects = cc3d.connected_components(labels == 1, connectivity=26)
    return np.array([sl[0].stop - sl[0].start for sl in ndi.find_objects(objects) if sl is not None])


def test_physical_scale_objects_span_many_sections_and_none_vanishes(tmp_path, monkeypatch, capsys):
    import cc3d

    from nnunetv2_reisoseg.cli import main

    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert main(["synth", "--dataset-id", "960", "--name", "Phys", "--cases", "8", "--shape", "24", "96", "96",
                 "--voxel-size", "40", "10", "10"]) == 0
    out = tmp_path / "Dataset960_Phys"
    assert sitk.ReadImage(str(out / "imagesTr/phys_000_0000.nii.gz")).GetSpacing() == (10.0, 10.0, 40.0)
    spans = []
    for i in range(8):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"labelsTr/phys_{i:03d}.nii.gz")))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"isotropic_truth/phys_{i:03d}.nii.gz")))
        spans += list(_spans(labels))
        ids = cc3d.connected_components(truth == 1, connectivity=26).reshape(24, 4, 96, 96)
        for s in range(24):  # every truth object with a voxel in a section is labelled where it is
            for j in set(np.unique(ids[s]).tolist()) - {0}:
                assert (labels[s][(ids[s] == j).any(0)] == 1).any(), (i, s, j)
    spans = np.asarray(spans)
    assert len(spans) >= 8 and np.median(spans) >= 5 and np.mean(spans == 1) <= 0.1
    with pytest.raises(SystemExit, match="whole number of lateral pixels"):
        main(["synth", "--dataset-id", "961", "--voxel-size", "45", "10", "10"])


def test_objects_keep_their_size_in_nm_whatever_the_grid():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    for shape, xy_nm in (((12, 48, 48), 10.0), ((12, 96, 96), 10.0), ((12, 96, 96), 5.0)):
        widths = []  # the narrower lateral extent of each object in each section, in nm
        for _ in range(4):
            labels = synth.generate_case(rng, shape, 4, xy_nm).labels
            for section in labels:
                objects, _ = ndi.label(section == 1)
                widths += [min(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) * xy_nm
                           for sl in ndi.find_objects(objects) if sl is not None]
        assert 100 <= np.median(widths) <= 600, (shape, xy_nm, np.median(widths))  # mitochondria are 150-600 nm


def test_section_labels_keep_an_object_thinner_than_half_a_section():
    truth = np.zeros((8, 10, 10), bool)  # two sections of 4 fine slices
    truth[0:5, 2:5, 2:5] = True  # fills section 0, one slice of section 1
    truth[6, 7, 7] = True  # an object of its own, a quarter of section 1's thickness
    labels = synth.section_labels(truth, 4)
    assert labels[0, 2:5, 2:5].all() and labels[1, 7, 7]
    assert labels[1, 2:5, 2:5].all()  # the thin end touches its body in section 0: it stays one object
    assert labels.sum() == 9 + 9 + 1


def test_instances_keep_an_id_per_mitochondrion_with_its_own_membrane(tmp_path, monkeypatch):
    """--instances: ids kept beside the labels (every labelled voxel has its object's id), each object drawn with
    its own dark rim, so that a touching pair shows a dark line where the mask alone has none; --boundary-nm
    trains three classes from the ids; the default generator is unchanged by any of it."""
    from nnunetv2_reisoseg.benchmark.datacheck import check_instances
    from nnunetv2_reisoseg.cli import main
    from nnunetv2_reisoseg.data.instances import touching_ids

    rng = np.random.default_rng(3)
    plain = synth.generate_case(np.random.default_rng(3), (12, 64, 64), 8, 6.0)
    again = synth.generate_case(rng, (12, 64, 64), 8, 6.0, instances=True)  # no --touching: the same draws
    assert np.array_equal(plain.labels, again.labels) and plain.ids is None
    assert ((again.ids != 0) == (plain.labels == 1)).all()
    pair = np.zeros((8, 30, 40), np.int32)
    pair[2:6, 5:25, 5:20], pair[2:6, 5:25, 20:35] = 1, 2
    rim = ~synth._inner(pair) & (pair != 0)
    assert rim[3, 10, 19] and rim[3, 10, 20] and not rim[3, 10, 12]  # the contact is rim on both sides
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert main(["synth", "--dataset-id", "962", "--name", "Touch", "--cases", "3", "--test-cases", "1", "--shape",
                 "20", "96", "96", "--voxel-size", "48", "6", "6", "--touching", "0.5", "--boundary-nm", "12"]) == 0
    out = tmp_path / "Dataset962_Touch"
    ids = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "instancesTr/touch_000.nii.gz")))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr/touch_000.nii.gz")))
    assert ((ids != 0) == (labels != 0)).all() and set(np.unique(labels).tolist()) <= {0, 1, 2}
    assert (out / "instancesTs/touch_003.nii.gz").is_file()
    data = check_instances(out)
    assert data["training"]["cases"] == 3 and data["test"]["cases"] == 1
    assert data["training"]["objects"] > 0 and data["training"]["touching"] == sum(
        len(touching_ids(sitk.GetArrayFromImage(sitk.ReadImage(str(f))))) for f in sorted(out.glob("instancesTr/*")))
    with pytest.raises(SystemExit, match="add --instances"):
        main(["synth", "--dataset-id", "963", "--touching", "0.2"])

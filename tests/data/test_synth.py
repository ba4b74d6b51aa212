import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_reisoseg.data import synth
from nnunetv2_reisoseg.data.synth import generate_dataset


def _gen(root, **kw):
    args = dict(dataset_id=950, name="Tiny", cases=2, shape=(8, 32, 32), anisotropy=4, xy_nm=5.0, seed=1,
                progress=False)
    return generate_dataset(root, **{**args, **kw})


def test_layout_spacing_and_determinism(tmp_path):
    a = _gen(tmp_path / "a", test_cases=1)
    b = _gen(tmp_path / "b", test_cases=1)
    files = sorted((p.relative_to(a) for p in a.rglob("*") if p.is_file()), key=str)
    assert [str(f) for f in files] == [
        "dataset.json", "imagesTr/tiny_000_0000.nii.gz", "imagesTr/tiny_001_0000.nii.gz",
        "imagesTs/tiny_002_0000.nii.gz", "isotropic_truth/tiny_000.nii.gz", "isotropic_truth/tiny_001.nii.gz",
        "isotropic_truth/tiny_002.nii.gz", "labelsTr/tiny_000.nii.gz", "labelsTr/tiny_001.nii.gz",
        "labelsTs/tiny_002.nii.gz", "preview.png"]
    for f in files[:-1]:  # the same seed gives the same bytes (the PNG embeds no data of its own)
        assert (a / f).read_bytes() == (b / f).read_bytes()
    img = sitk.ReadImage(str(a / "imagesTr/tiny_000_0000.nii.gz"))
    assert img.GetSpacing() == (5.0, 5.0, 20.0)  # x, y, z in nm: sections 4x the lateral pixel
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

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_reisoseg import synth
from nnunetv2_reisoseg.synth import generate_dataset


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

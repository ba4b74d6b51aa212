"""A run's settings: one type that round-trips through settings.json and says which fields --c compares."""
import json

import pytest

from nnunetv2_reisoseg.volume import output as store
from nnunetv2_reisoseg.volume.settings import RESUME_KEYS, TILES, RunSettings


def _settings(**change):
    values = dict(input="/v.h5:raw", shape=(8, 32, 32), spacing_nm=(40.0, 10.0, 10.0), model="/m", folds=(0, 1),
                  checkpoint="checkpoint_final.pth", step_size=0.5, tta=False, device="cpu", block_shape=(8, 16, 16),
                  chunks=(8, 16, 16), save_probabilities=False, transpose_forward=(0, 1, 2), trainer="nnUNetTrainer",
                  configuration="3d_fullres",
                  statistics={"bbox": [[0, 8], [0, 32], [0, 32]], "count": 8192, "mean": 1.0, "std": 2.0,
                              "min": 0.0, "max": 9.0})
    return RunSettings(**{**values, **change})


def test_settings_round_trip_through_json_with_the_keys_runs_have_always_written():
    s = _settings()
    written = json.loads(json.dumps(s.to_json()))
    assert RunSettings.from_json(written) == s
    # the keys and their order of the settings.json that runs before this class wrote (outputs stay resumable),
    # then the image copy (issue 29), which an old run's settings lack: read as None, no image
    assert list(written) == ["input", "shape", "spacing_nm", "model", "folds", "checkpoint", "step_size", "tta",
                             "device", "block_shape", "chunks", "save_probabilities", "transpose_forward", "trainer",
                             "configuration", "tiles", "statistics", "image"]
    assert RunSettings.from_json({k: v for k, v in written.items() if k != "image"}).image is None
    assert written["tiles"] == TILES and written["shape"] == [8, 32, 32]
    assert s.volume_stats.bbox == ((0, 8), (0, 32), (0, 32))


def test_resume_compares_what_changes_the_labels_and_nothing_else():
    s = _settings()
    assert set(RESUME_KEYS) == set(s.to_json()) - {"device", "trainer", "configuration"}
    assert s.differences(s.to_json()) == []
    assert _settings(device="cuda").differences(s.to_json()) == []  # provenance only
    assert _settings(step_size=0.25, folds=(0,)).differences(s.to_json()) == ["folds", "step_size"]


def test_output_owns_the_rules_for_an_existing_folder(tmp_path):
    out = tmp_path / "seg.zarr"
    fresh = store.previous_run(out, cont=True, overwrite=False)  # nothing to continue: start
    assert (fresh.work, fresh.previous, fresh.created, fresh.replaces) == (out, None, True, False)
    out.mkdir()
    assert store.previous_run(out, cont=False, overwrite=False).work == out  # an empty folder holds nothing
    with pytest.raises(store.OutputError, match="not a reisoseg predict-volume output"):
        store.previous_run(out, cont=True, overwrite=False)
    s = _settings()
    assert store.prepare(out, s, {"background": 0, "mito": 1}, 2, None) == set()
    with pytest.raises(store.OutputError, match=r"pass --c to continue .* or pass --overwrite"):
        store.previous_run(out, cont=False, overwrite=False)
    assert store.previous_run(out, cont=True, overwrite=False).previous == s.to_json()
    assert store.previous_run(out, cont=False, overwrite=True).work == tmp_path / ".seg.zarr.reisoseg-new"
    with pytest.raises(store.OutputError, match=r"other settings \(tta: False -> True\)"):
        store.prepare(out, _settings(tta=True), {"background": 0, "mito": 1}, 2, s.to_json())

"""nnUNet_extTrainer: the plugin's folders first, each once, and the user's value back afterwards."""
import os
from pathlib import Path

import pytest

from nnunetv2_reisoseg import EXT_TRAINER, our_trainers, trainer_dir, trainer_path


def test_trainer_path_puts_ours_first_once():
    ours = str(trainer_dir())
    assert trainer_path() == ours
    assert trainer_path(existing=os.pathsep.join(["/a", ours, "", "/a"])).split(os.pathsep) == [ours, "/a"]
    assert trainer_path((Path("/b"),), "/a").split(os.pathsep) == ["/b", "/a"]


def test_our_trainers_restores_the_users_value_even_after_an_error(monkeypatch):
    users = os.pathsep.join(["/a", str(trainer_dir())])
    monkeypatch.setenv(EXT_TRAINER, users)
    with our_trainers():
        assert os.environ[EXT_TRAINER].split(os.pathsep) == [str(trainer_dir()), "/a"]
    assert os.environ[EXT_TRAINER] == users
    monkeypatch.delenv(EXT_TRAINER)
    with pytest.raises(RuntimeError, match="inside"), our_trainers(Path("/b")):
        assert os.environ[EXT_TRAINER] == "/b"
        raise RuntimeError("inside")
    assert EXT_TRAINER not in os.environ

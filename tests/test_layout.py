"""The users' trainer folder holds only the users' trainers, and looking them up never imports the benchmark."""
import os
import subprocess
import sys

from nnunetv2_reisoseg import trainer_dir
from nnunetv2_reisoseg.benchmark.environment import TRAINER_DIR, ext_trainer_path

PROBE = """
import sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
for name in ("nnUNetTrainerReIso", "nnUNetTrainerReIso_5epochs", "nnUNetTrainerReIsoSegNet"):
    assert recursive_find_trainer_class_by_name(name).__name__ == name
try:
    recursive_find_trainer_class_by_name("nnUNetTrainerReIsoBenchTiny")
    print("FOUND-BENCH")
except RuntimeError:
    print("no-bench")
print(sorted(m for m in sys.modules if m.startswith("nnunetv2_reisoseg.benchmark")))
"""


def test_user_trainer_path_has_no_benchmark(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}
    env.update(nnUNet_extTrainer=str(trainer_dir()), nnUNet_results=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[-2:] == ["no-bench", "[]"]
    assert not any("Bench" in f.name for f in trainer_dir().iterdir())


def test_benchmark_trainings_find_their_own_trainers(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}
    env.update(nnUNet_extTrainer=ext_trainer_path(str(tmp_path)), nnUNet_results=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", "from nnunetv2.utilities.find_objects import "
                        "recursive_find_trainer_class_by_name as f; print(f('nnUNetTrainerReIsoBenchTiny').__name__)"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == "nnUNetTrainerReIsoBenchTiny", p.stderr[-2000:]
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(TRAINER_DIR), str(tmp_path)]

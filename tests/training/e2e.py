"""What the end-to-end tests share: tiny trainers that nnU-Net finds through nnUNet_extTrainer, nnU-Net's CLIs
in subprocesses, and a tiny generated anisotropic dataset that nnU-Net plans.

The tests are split over modules by what they need (test_e2e.py the trained model, test_e2e_networks.py and
test_e2e_labels.py only the planned dataset): pytest-xdist runs each module on one worker (--dist loadfile), so
a module's fixture is built once and the modules run side by side."""
import os
import subprocess
import sys
from pathlib import Path

import SimpleITK as sitk

from nnunetv2_reisoseg import trainer_dir

TRAINER = "nnUNetTrainerReIsoTiny"
TINY_TRAINER = '''
import os
import signal
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2_reisoseg.training.budget import keep_omp_threads
from nnunetv2_reisoseg.training.paper import nnUNetTrainerReIsoSegNet
from nnunetv2_reisoseg.training.trainer import nnUNetTrainerReIso


class TinyBudget:
    """Put before a trainer in the bases: 2 iterations per epoch, REISO_TEST_EPOCHS epochs (1)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        keep_omp_threads(self.device)  # the suite's workers share the cores
        self.num_epochs = int(os.environ.get("REISO_TEST_EPOCHS", "1"))
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1


class nnUNetTrainerReIsoTiny(TinyBudget, nnUNetTrainerReIso):
    pass


class nnUNetTrainerReIsoSegNetTiny(TinyBudget, nnUNetTrainerReIsoSegNet):
    pass


class nnUNetTrainerStockTiny(TinyBudget, nnUNetTrainer):
    pass


class nnUNetTrainerReIsoCrashy(nnUNetTrainerReIsoTiny):
    """Saves every epoch; with REISO_TEST_CRASH set it is killed (SIGKILL) in the middle of epoch 1."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 3
        self.save_every = 1
        self._steps = 0

    def train_step(self, batch):
        self._steps += 1
        if os.environ.get("REISO_TEST_CRASH") and self.current_epoch == 1 and self._steps > 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().train_step(batch)
'''


def run(args, env, **kw):
    p = subprocess.run(args, env=env, capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, args))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def planned_dataset(root: Path) -> dict:
    """Dataset901_SynthEM generated and planned under root (raw/, pre/; results go to res/): the environment
    that runs nnU-Net on it, with the tiny trainers."""
    (root / "ext").mkdir()
    (root / "ext" / "tiny_trainers.py").write_text(TINY_TRAINER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               nnUNet_def_n_proc="1", nnUNet_n_proc_DA="1", nnUNet_compile="f",
               nnUNet_extTrainer=os.pathsep.join([str(trainer_dir()), str(root / "ext")]))
    run([sys.executable, "-m", "nnunetv2_reisoseg", "synth", "--dataset-id", "901", "--name", "SynthEM", "--cases",
         "5", "--test-cases", "1", "--shape", "8", "32", "32", "--anisotropy", "4", "--xy-nm", "10"], env)
    run(["nnUNetv2_plan_and_preprocess", "-d", "901", "-c", "3d_fullres", "-np", "1"], env)
    env["nnUNet_n_proc_DA"] = "0"  # single-threaded augmentation: fast and deterministic on 2 cores
    return env

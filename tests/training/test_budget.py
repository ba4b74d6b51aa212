"""The fixed-budget trainers' own bookkeeping: the wall time of a training continued with ``--c``."""
import torch
from nnunetv2.training.logging.nnunet_logger import MetaLogger

from nnunetv2_reisoseg.training.budget import BenchmarkBudgetMixin


class _Trainer:
    """Stands in for nnUNetTrainer: its logger is nnU-Net's own, restored from a checkpoint as nnU-Net does."""

    def __init__(self, plans, configuration, fold, dataset_json, device):
        self.device, self.logger, self.current_epoch = device, MetaLogger(None, False), 0

    def load_checkpoint(self, checkpoint: dict) -> None:
        self.logger.load_checkpoint(checkpoint["logging"])
        self.current_epoch = checkpoint["current_epoch"]


class _Budget(BenchmarkBudgetMixin, _Trainer):
    bench_epochs, bench_iterations, bench_val_iterations = 4, 2, 1


def test_continued_training_counts_the_time_before_the_cut():
    before = MetaLogger(None, False)
    for epoch, (start, end) in enumerate([(100.0, 130.0), (131.0, 160.0), (161.0, 190.5)]):
        before.log("epoch_start_timestamps", start, epoch)
        before.log("epoch_end_timestamps", end, epoch)
    trainer = _Budget({}, "3d_fullres", 0, {}, torch.device("cpu"))
    assert trainer._resumed_s == 0 and trainer._resumed_epoch is None
    trainer.load_checkpoint({"logging": before.get_checkpoint(), "current_epoch": 3})
    assert trainer._resumed_s == 90.5 and trainer._resumed_epoch == 3


def test_cpu_trainings_keep_omp_num_threads(monkeypatch):
    """nnUNetv2_train gives a CPU training every core; the fixed-budget and the tests' tiny trainers keep
    OMP_NUM_THREADS where it is set, and leave a GPU training's threads alone."""
    import torch

    from nnunetv2_reisoseg.training.budget import keep_omp_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        keep_omp_threads(torch.device("cuda"))
        assert torch.get_num_threads() == 3
        keep_omp_threads(torch.device("cpu"))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "")
        keep_omp_threads(torch.device("cpu"))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)

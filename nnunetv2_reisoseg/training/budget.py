"""Trainers with a fixed training budget that also measure themselves, for ``reisoseg benchmark``.

Stock and ReIsoSeg variants share the budget (epochs x iterations), the seed handling and the
measurements, so the two differ only in the method. Each writes ``benchmark_timing.json`` next to
its checkpoints: the time of every training step (forward, backward, optimizer; data loading is
outside), the peak memory, and the wall time of the training run.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

SEED_ENV = "REISOSEG_SEED"
EPOCHS_ENV = "REISOSEG_BENCH_EPOCHS"  # epochs of the equal-wall-time stock trainer, set by the benchmark
TIMING_FILE = "benchmark_timing.json"


def keep_omp_threads(device: torch.device) -> None:
    """Give torch OMP_NUM_THREADS threads on the CPU where it is set: nnUNetv2_train gives a CPU training every
    core whatever it says, and where other work shares the cores (the test suite's workers) threads spinning
    against each other are slower."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if device.type == "cpu" and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


class BenchmarkBudgetMixin:
    """Put before an nnU-Net trainer class in the bases; subclasses set the ``bench_*`` attributes."""

    bench_epochs: int = 1000
    bench_iterations: int = 250
    bench_val_iterations: int = 50
    bench_test_time_mirroring: bool = True
    bench_epochs_from_env: bool = False
    bench_save_every: int = 50

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        keep_omp_threads(self.device)
        self.num_epochs = self.bench_epochs
        if self.bench_epochs_from_env:
            if EPOCHS_ENV not in os.environ:
                raise RuntimeError(f"{type(self).__name__} takes its epochs from {EPOCHS_ENV}, which "
                                   "reisoseg benchmark --equal-time sets; run it through the benchmark")
            self.num_epochs = int(os.environ[EPOCHS_ENV])
        self.num_iterations_per_epoch = self.bench_iterations
        self.num_val_iterations_per_epoch = self.bench_val_iterations
        self.save_every = self.bench_save_every
        # seconds trained before a --c continuation (from the checkpoint's epoch times), and its first epoch
        self._resumed_s, self._resumed_epoch = 0.0, None
        seed = os.environ.get(SEED_ENV)
        if seed is not None:  # nnU-Net does not seed; network init and sampling then follow the seed
            torch.manual_seed(int(seed))
            np.random.seed(int(seed))
        self.bench_seed = None if seed is None else int(seed)
        self._step_times: list[float] = []
        self._run_start = time.perf_counter()

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):  # noqa: N802 (nnU-Net's name)
        out = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if not self.bench_test_time_mirroring:  # training augmentation keeps mirroring; inference does not
            self.inference_allowed_mirroring_axes = None
        return out

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        lg = self.logger.get_checkpoint()  # nnU-Net 2.8.1's MetaLogger hands out its local logger's curves
        starts, ends = lg.get("epoch_start_timestamps", []), lg.get("epoch_end_timestamps", [])
        if starts and ends:  # the wall time a continued training reports includes the part before the cut
            self._resumed_s, self._resumed_epoch = float(ends[-1] - starts[0]), self.current_epoch

    def train_step(self, batch: dict) -> dict:
        t0 = time.perf_counter()
        out = super().train_step(batch)  # returns the loss on the CPU, so the step has finished
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._step_times.append(time.perf_counter() - t0)
        return out

    def on_train_end(self):
        super().on_train_end()
        if self.local_rank != 0:
            return
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        timing = {
            "trainer": type(self).__name__,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "seed": self.bench_seed,
            "epochs": self.num_epochs,
            "iterations_per_epoch": self.num_iterations_per_epoch,
            "step_times_s": self._step_times,
            "training_wall_s": time.perf_counter() - self._run_start + self._resumed_s,
            "resumed_at_epoch": self._resumed_epoch,
            "peak_cpu_rss_bytes": rss,
            "peak_gpu_allocated_bytes": torch.cuda.max_memory_allocated(self.device)
            if self.device.type == "cuda" else None,
        }
        Path(self.output_folder, TIMING_FILE).write_text(json.dumps(timing, indent=1))

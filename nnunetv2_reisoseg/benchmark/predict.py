"""The test predictions of a finished training: nnU-Net's predictor in this process, timing every case, into
``OUT/predictions``; predictions already there are reused."""
from __future__ import annotations

import json
import time
from pathlib import Path

from nnunetv2_reisoseg import our_trainers
from nnunetv2_reisoseg.benchmark.environment import TRAINER_DIR
from nnunetv2_reisoseg.benchmark.trainings import Run


def predictions_folder(out: Path, run: Run) -> Path:
    """Where the test predictions of a training go."""
    return out / "predictions" / f"seed{run.seed}" / run.method.name / f"fold_{run.fold}"


def predict_test(run: Run, dataset_dir: Path, device: str, out: Path) -> dict | None:
    """Predict imagesTs with the run's model in this process; per-case seconds (preprocessing, sliding
    window, resampling; file input/output excluded). Existing predictions are reused."""
    images = sorted((dataset_dir / "imagesTs").glob("*_0000.*"))
    if not images:
        return None
    ending = json.loads((dataset_dir / "dataset.json").read_text())["file_ending"]
    dest = predictions_folder(out, run)
    timing_file = dest / "inference_timing.json"
    if timing_file.is_file() and all((dest / (p.name[: -len("_0000" + ending)] + ending)).is_file() for p in images):
        return json.loads(timing_file.read_text())
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    dev = torch.device(device)
    predictor = nnUNetPredictor(device=dev, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    with our_trainers(TRAINER_DIR):
        predictor.initialize_from_trained_model_folder(str(run.folder.parent), use_folds=(run.fold,),
                                                       checkpoint_name="checkpoint_final.pth")
    dest.mkdir(parents=True, exist_ok=True)
    io = SimpleITKIO()
    seconds = {}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for p in images:
        case = p.name[: -len("_0000" + ending)]
        img, props = io.read_images([str(p)])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        seg = predictor.predict_single_npy_array(img, props, None, None, False)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds[case] = time.perf_counter() - t0
        io.write_seg(seg, str(dest / (case + ending)), props)
    timing = {"seconds_per_case": seconds, "device": device,
              "peak_gpu_allocated_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None}
    timing_file.write_text(json.dumps(timing, indent=1))
    return timing

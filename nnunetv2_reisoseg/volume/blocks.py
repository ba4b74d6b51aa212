"""The workers' side of ``reisoseg predict-volume``: one nnU-Net predictor per process and the two process
functions, ``run_block`` (pass 1) and ``finish_block`` (pass 2), which receive only (output folder, block index)
and open the stores themselves. The driver (``predict.py``) plans the run and hands out block indices.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from nnunetv2_reisoseg import our_trainers
from nnunetv2_reisoseg.blockwise import roi
from nnunetv2_reisoseg.io.volumes import read_volume
from nnunetv2_reisoseg.volume import grid as g
from nnunetv2_reisoseg.volume import output as store
from nnunetv2_reisoseg.volume.intensity import Normalizer
from nnunetv2_reisoseg.volume.settings import RunSettings

BORDER_VOXELS = 2**25  # voxels per region of pass 2 (per class and fold: 128 MB of float32 sums)


class BlockPredictor:
    """One process's nnU-Net predictor for a run (network, every fold's weights), input and output stores."""

    def __init__(self, settings: RunSettings, out: Path) -> None:
        import torch
        import zarr
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.inference.sliding_window_prediction import compute_gaussian

        self.settings = settings
        self.device = torch.device(settings.device)
        p = nnUNetPredictor(tile_step_size=settings.step_size, use_gaussian=True, use_mirroring=settings.tta,
                            perform_everything_on_device=self.device.type == "cuda", device=self.device, verbose=False,
                            verbose_preprocessing=False, allow_tqdm=False)
        with our_trainers():  # nnU-Net finds nnUNetTrainerReIso and the paper network through nnUNet_extTrainer
            p.initialize_from_trained_model_folder(settings.model, use_folds=tuple(settings.folds),
                                                   checkpoint_name=settings.checkpoint)
        self.predictor = p
        self.network = p.network.to(self.device).eval()
        self._loaded = 0  # the fold whose weights the network holds (nnU-Net loads the first)
        cm, pm = p.configuration_manager, p.plans_manager
        self.tf = tuple(pm.transpose_forward)
        stats = settings.volume_stats
        self.normalize = Normalizer(cm.normalization_schemes[0], cm.use_mask_for_norm[0],
                                    pm.foreground_intensity_properties_per_channel["0"], stats)
        self.grid = g.TileGrid(g.to_network(stats.bbox, self.tf), tuple(cm.patch_size), settings.step_size)
        self.layout = g.Layout(self.grid, tuple(settings.shape), tuple(settings.block_shape), self.tf)
        self.gaussian = compute_gaussian(tuple(cm.patch_size), sigma_scale=1. / 8, value_scaling_factor=10,
                                         device=self.device)
        self.volume = read_volume(settings.input)
        root = zarr.open_group(str(out), mode="r+")
        self.labels = root[store.SEMANTIC]["0"]
        self.image = root["0"] if settings.image is not None else None
        self.probabilities = root["probabilities"]["0"] if settings.save_probabilities else None
        self.out = out

    def _autocast(self):
        import torch

        # as nnU-Net's predict_sliding_window_return_logits: autocast on CUDA only
        return torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else nullcontext()

    def input_region(self, region: roi.Box) -> np.ndarray:
        """Normalised data of a padded-space region, zero where nnU-Net pads (network axes, channel first)."""
        valid = tuple((pb, pb + n) for pb, n in zip(self.grid.pad_below, self.grid.cropped_shape))
        inner = roi.intersect(region, valid)
        data = np.zeros((1, *roi.size(region)), np.float32)
        if inner is not None:
            box_in = g.to_input(self.grid.network_from_padded(inner), self.tf)
            raw = np.asarray(self.volume.array[roi.slices(box_in)]).transpose(self.tf)
            rel = roi.shift(inner, [-lo for lo, _ in region])
            data[(0, *roi.slices(rel))] = self.normalize(raw)
        return data

    def sums(self, plan: g.BlockPlan):
        """The block's own tiles over their union (network axes), fold by fold: nnU-Net's Gaussian-weighted
        fp16 sums in its tile order. Hands each fold's sums over the border pieces to their blocks as soon
        as the fold is done (memory: one fold's sums), and returns the fold-averaged logits of the interior,
        nnU-Net's to the bit."""
        import torch

        p = self.predictor
        x = torch.from_numpy(self.input_region(plan.read))
        read_lo = [-v for v, _ in plan.read]
        size = roi.size(plan.read)
        heads = p.label_manager.num_segmentation_heads
        inner = None if plan.interior is None else roi.slices(roi.shift(plan.interior, read_lo))
        total = None
        with torch.inference_mode(), self._autocast():
            for f, params in enumerate(p.list_of_parameters):
                if self._loaded != f:  # as nnU-Net: a compiled network takes the weights through its original module
                    getattr(self.network, "_orig_mod", self.network).load_state_dict(params)
                    self._loaded = f
                acc = torch.zeros((heads, *size), dtype=torch.half, device=self.device)
                weight = torch.zeros(size, dtype=torch.half, device=self.device)
                for tile in plan.tiles:
                    sl = roi.slices(roi.shift(tile, read_lo))
                    work = torch.clone(x[(slice(None), *sl)][None], memory_format=torch.contiguous_format)
                    pred = p._internal_maybe_mirror_and_predict(work.to(self.device))[0].to(self.device)
                    pred *= self.gaussian
                    acc[(slice(None), *sl)] += pred
                    weight[sl] += self.gaussian
                for k, (j, box) in enumerate(plan.pieces):
                    sl = roi.slices(roi.shift(box, read_lo))
                    store.save_piece(self.out, j, plan.index, k, f, box, acc[(slice(None), *sl)].cpu().numpy(),
                                     weight[sl].cpu().numpy())
                if inner is not None:
                    logits = torch.div(acc[(slice(None), *inner)], weight[inner]).to("cpu")
                    total = logits if total is None else total.add_(logits)
                del acc
            if total is not None and len(p.list_of_parameters) > 1:
                total /= len(p.list_of_parameters)
        return total

    def _blank(self, plan: g.BlockPlan) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities of a block before any logits: background."""
        shape = roi.size(plan.box)
        probs = None
        if self.probabilities is not None:
            probs = np.zeros((self.probabilities.shape[0], *shape), np.float16)
            if not self.predictor.label_manager.has_regions:
                probs[0] = 1  # outside nnU-Net's crop: background, as its revert_cropping_on_probabilities
        return np.zeros(shape, dtype=self.labels.dtype), probs

    def _place(self, logits, region: roi.Box, plan: g.BlockPlan, labels: np.ndarray, probs: np.ndarray | None) -> None:
        """Labels (and probabilities) from the logits of a padded-space region, into the block's arrays."""
        lm = self.predictor.label_manager
        inside = g.to_input(self.grid.network_from_padded(region), self.tf)
        rel = roi.slices(roi.shift(inside, [-lo for lo, _ in plan.box]))
        tb = [self.tf.index(a) for a in range(3)]  # transpose_backward
        labels[rel] = np.asarray(lm.convert_logits_to_segmentation(logits.numpy())).transpose(tb)
        if probs is not None:
            pr = lm.apply_inference_nonlin(logits).numpy()
            probs[(slice(None), *rel)] = pr.transpose([0, *(a + 1 for a in tb)])

    def _write(self, plan: g.BlockPlan, labels: np.ndarray, probs: np.ndarray | None) -> None:
        self.labels[roi.slices(plan.box)] = labels
        if probs is not None:
            self.probabilities[(slice(None), *roi.slices(plan.box))] = probs

    def run(self, plan: g.BlockPlan) -> dict:
        """Pass 1: predict the block's own tiles, write the labels of its interior, and hand the sums over
        every border to the block it belongs to (``store.save_piece``)."""
        t0 = time.perf_counter()
        labels, probs = self._blank(plan)
        if plan.read is not None:
            total = self.sums(plan)
            if total is not None:
                self._place(total, plan.interior, plan, labels, probs)
        self._write(plan, labels, probs)
        if self.image is not None:  # the input as read, under the labels in a viewer
            self.image[roi.slices(plan.box)] = np.asarray(self.volume.array[roi.slices(plan.box)])
        info = {"seconds": time.perf_counter() - t0, "tiles": len(plan.tiles)}
        store.mark_summed(self.out, plan.index, info)
        return info

    def _border_logits(self, index: int, region: roi.Box):
        """Fold-averaged logits of a border region of block ``index`` from every block's pieces, with nnU-Net's
        float16 steps from each fold's logits on."""
        import torch

        heads = self.predictor.label_manager.num_segmentation_heads
        lo = [-v for v, _ in region]
        n_folds = len(self.predictor.list_of_parameters)
        total = None
        for f in range(n_folds):
            acc = torch.zeros((heads, *roi.size(region)), dtype=torch.float32)
            weight = torch.zeros(roi.size(region), dtype=torch.float32)
            for box, a, w in store.pieces_for(self.out, index, f, region):
                inter = roi.intersect(box, region)
                src = roi.slices(roi.shift(inter, [-v for v, _ in box]))
                dst = roi.slices(roi.shift(inter, lo))
                # np.array copies the memory-mapped piece: torch wants writable memory
                acc[(slice(None), *dst)] += torch.from_numpy(np.array(a[(slice(None), *src)])).float()
                weight[dst] += torch.from_numpy(np.array(w[src])).float()
            logits = torch.div(acc.half(), weight.half())
            total = logits if total is None else total.add_(logits)
        if n_folds > 1:
            total /= n_folds
        return total

    def finish(self, plan: g.BlockPlan) -> dict:
        """Pass 2: add up every block's sums over this block's border and write its labels there."""
        t0 = time.perf_counter()
        if plan.border:
            labels = np.asarray(self.labels[roi.slices(plan.box)])
            probs = (np.asarray(self.probabilities[(slice(None), *roi.slices(plan.box))])
                     if self.probabilities is not None else None)
            # region by region (bounded in size), fold by fold: memory stays near one fold's sums of one slab
            for region in (r for b in plan.border for r in roi.split_box(b, BORDER_VOXELS)):
                self._place(self._border_logits(plan.index, region), region, plan, labels, probs)
            self._write(plan, labels, probs)
        info = {"seconds": time.perf_counter() - t0}
        store.mark_done(self.out, plan.index, info)
        store.drop_pieces(self.out, plan.index)  # read by nobody else: scratch stays bounded by the blocks in flight
        return info


_PREDICTORS: dict[tuple[str, str], BlockPredictor] = {}


def _predictor(out: Path) -> BlockPredictor:
    """This process's predictor for the run in ``out`` (made once, then reused for every block)."""
    import json

    settings = RunSettings.from_json(store.settings_of(out))
    key = (str(out), json.dumps(settings.to_json(), sort_keys=True))
    if key not in _PREDICTORS:
        release_predictors()
        _PREDICTORS[key] = BlockPredictor(settings, out)
    return _PREDICTORS[key]


def release_predictors() -> None:
    """Drop this process's predictor and close its input (after a serial run)."""
    for bp in _PREDICTORS.values():
        bp.volume.close()
    _PREDICTORS.clear()


def run_block(out: str, index: int) -> dict:
    """Pass 1 on one block of the run whose output is ``out``: all a worker receives are these two values."""
    bp = _predictor(Path(out))
    return {"index": index, **bp.run(bp.layout.plan(index))}


def finish_block(out: str, index: int) -> dict:
    """Pass 2 on one block (after pass 1 on every block)."""
    bp = _predictor(Path(out))
    return {"index": index, **bp.finish(bp.layout.plan(index))}

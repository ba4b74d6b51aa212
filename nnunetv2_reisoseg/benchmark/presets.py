"""The benchmark's presets (training budget and the synthetic dataset each generates), its methods and
the names of the fixed-budget trainers that ``benchmark/trainers/`` defines for them."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    """Training budget of a preset, and the synthetic dataset it generates when none is named."""

    epochs: int
    iterations: int
    val_iterations: int
    test_time_mirroring: bool
    synth: dict = field(default_factory=dict)
    note: str = ""
    # the primary measures, named before anything trains: (split, metric) for every foreground class; a
    # dataset without test cases is judged on its validation cases instead
    primary: tuple[tuple[str, str], ...] = (("test", "dice"), ("test", "ap75"))
    # nnU-Net's plan with its features per stage scaled by this (at least 8): one narrower plan that both
    # methods train, where the default width does not fit a CPU budget
    width: float = 1.0
    # a smaller patch than nnU-Net planned (Z, Y, X), with the network's topology re-derived for it by
    # nnU-Net's own rule (get_pool_and_conv_props); None keeps nnU-Net's patch
    patch: tuple[int, int, int] | None = None
    # the classes (names in dataset.json) whose primary measures are primary; empty: every foreground class
    primary_classes: tuple[str, ...] = ()


# the synthetic dataset of the short and full presets (the same data for both)
_SYNTH_FULL = dict(dataset_id=953, name="SynthEM", cases=20, test_cases=5, shape=(32, 256, 256), anisotropy=8,
                   xy_nm=5.0)
# many small cases: an 8x32x32 patch (nnU-Net plans the patch from the case size) keeps a CPU step short
_SYNTH_SMALL = dict(dataset_id=954, name="SynthEMPlateau", cases=60, test_cases=20, shape=(8, 32, 32), anisotropy=8,
                    xy_nm=5.0)
# mitochondria at physical scale (objects 150-600 nm across, up to 2 um long) in 960x768x768 nm cases at
# 48x6x6 nm, like the ssTEM VNC stack: sections 8 pixels thick, so nnU-Net's plan has stage ratios 8, 4, 2, 1
# and the PI module acts on two anisotropic levels (4 and 2), as in the paper's ratio-8 setting
_SYNTH_PHANTOM = dict(dataset_id=955, name="SynthEMPhantom", cases=40, test_cases=20, shape=(20, 128, 128),
                      anisotropy=8, xy_nm=6.0)
PRESETS: dict[str, Budget] = {
    "tiny": Budget(1, 2, 1, False, dict(dataset_id=951, name="SynthEMTiny", cases=5, test_cases=1,
                                        shape=(8, 32, 32), anisotropy=4, xy_nm=10.0),
                   "for the test suite: shows that everything runs, measures nothing useful"),
    "smoke": Budget(5, 24, 2, False, dict(dataset_id=952, name="SynthEMSmoke", cases=15, test_cases=3,
                                          shape=(16, 64, 64), anisotropy=8, xy_nm=5.0),
                    "about 10 minutes on a 2-core CPU; too short to rank the methods"),
    # sized for a 2-core CPU so that stock nnU-Net's pseudo Dice levels off (the poly schedule anneals over
    # the whole budget): 2,500 iterations of an 8x32x32 patch, about 12 minutes per stock training there
    "plateau": Budget(100, 25, 10, False, _SYNTH_SMALL,
                      "2,500 iterations of an 8x32x32 patch, sized for stock nnU-Net to level off on a 2-core CPU "
                      "on the synthetic data before objects were drawn at physical scale"),
    # the same data on a GPU, for perf/gpu_run.py: a few minutes per training
    "gpu": Budget(40, 25, 10, False, _SYNTH_SMALL,
                  "1,000 iterations of the plateau preset's data, for a short GPU slot (perf/gpu_run.py)"),
    # the phantom study (docs/study_phantom): both methods on a quarter-width copy of nnU-Net's plan
    # steps of 1.1 s (stock) and 3.4 s (ReIsoSeg) on a 2-core CPU (perf/train_step.py on this plan): 5 training
    # pairs of 360 iterations fit in about 2.8 hours there
    "phantom": Budget(15, 24, 8, False, _SYNTH_PHANTOM,
                      "360 iterations of a 20x128x128 patch on a quarter-width plan, sized for 5 training pairs in "
                      "3 hours on a 2-core CPU", width=0.25),
    # the real-data study (docs/study_vnc) on the ssTEM VNC stack converted at 47.5x9.2x9.2 nm (README): both
    # methods on a quarter-width plan re-derived for a 20x64x64 patch (the whole stack's depth, 0.6 um
    # laterally), since nnU-Net's own 20x112x448 patch does not fit a CPU study; mitochondria are primary.
    # Median steps of 0.33 s (stock) and 0.71 s (ReIsoSeg) there, measured in the study's trainings; 500
    # iterations of a 20x96x96 patch left stock nnU-Net predicting no foreground at all, so this trains 3x as long
    "vnc": Budget(60, 25, 5, False, {}, "1,500 iterations of a 20x64x64 patch on a quarter-width plan, sized "
                  "for 3 training pairs in under 2 hours on a 2-core CPU", width=0.25, patch=(20, 64, 64),
                  primary_classes=("mitochondria",)),
    "short": Budget(100, 50, 10, True, _SYNTH_FULL, "5,000 iterations: an hour or two per training on a GPU"),
    "full": Budget(1000, 250, 50, True, _SYNTH_FULL, "nnU-Net's default budget (1000 epochs x 250 iterations)"),
}

# method -> trainer class name prefix; the preset's budget is appended (nnUNetTrainerReIsoBenchSmoke)
# aux and stock_half are the two controls of why ReIsoSeg trails (docs/study_why): the isotropic branch on top of
# stock's loss, and stock nnU-Net with the gradient scale the paper's loss leaves the deployed branch
METHODS = {"stock": "nnUNetTrainer", "reiso": "nnUNetTrainerReIso", "aux": "nnUNetTrainerReIsoAux",
           "stock_half": "nnUNetTrainerHalfLoss", "paper": "nnUNetTrainerReIsoSegNet"}
METHOD_TITLES = {"stock": "stock nnU-Net", "reiso": "ReIsoSeg", "aux": "ReIsoSeg aux (stock loss + isotropic)",
                 "stock_half": "stock nnU-Net, loss x a", "paper": "ReIsoSeg paper network",
                 "stock_time": "stock nnU-Net at ReIsoSeg's wall time"}
EQUAL_TIME_SUFFIX = "EqualTime"  # stock trainer whose epochs come from budget.EPOCHS_ENV
CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlans"


def plans_name(preset: str) -> str:
    """The plans identifier the preset trains: nnU-Net's own, or its narrower copy."""
    budget = PRESETS[preset]
    name = PLANS if budget.width == 1.0 else f"{PLANS}Width{round(budget.width * 100)}"
    return name if budget.patch is None else f"{name}Patch{'x'.join(map(str, budget.patch))}"


def trainer_name(method: str, preset: str) -> str:
    if method == "stock_time":
        return f"{METHODS['stock']}Bench{preset.capitalize()}{EQUAL_TIME_SUFFIX}"
    return f"{METHODS[method]}Bench{preset.capitalize()}"

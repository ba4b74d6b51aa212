"""The benchmark's presets: each a ``Budget`` (the training budget, the plan it trains, its primary measures and
the synthetic dataset it generates), named once in ``PRESETS`` and passed around whole."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from nnunetv2_reisoseg.data.synth import SynthSpec

CONFIGURATION = "3d_fullres"  # the configuration every preset trains
PLANS = "nnUNetPlans"  # nnU-Net's plans, which a preset trains or narrows


@dataclass(frozen=True, kw_only=True)
class SyntheticData:
    """The synthetic dataset a preset generates when no dataset is named (``reisoseg synth`` at seed 0)."""

    dataset_id: int
    name: str
    cases: int
    test_cases: int
    shape: tuple[int, int, int]
    anisotropy: int
    xy_nm: float

    @property
    def folder(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.name}"

    @property
    def description(self) -> str:
        """The dataset.json description that marks the dataset as this preset's (a rerun reuses it)."""
        return (f"reisoseg synth: anisotropy {self.anisotropy}, {self.xy_nm} nm lateral, objects at physical scale, "
                f"seed 0; {self.cases}+{self.test_cases} cases of {'x'.join(map(str, self.shape))}")

    def spec(self) -> SynthSpec:
        return SynthSpec(cases=self.cases, shape=self.shape, anisotropy=self.anisotropy, xy_nm=self.xy_nm, seed=0,
                         test_cases=self.test_cases)


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Training budget of a preset, and the synthetic dataset it generates when none is named."""

    name: str = ""  # the preset's name (PRESETS sets it)
    epochs: int
    iterations: int
    val_iterations: int
    test_time_mirroring: bool
    synth: SyntheticData | None = None
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
    # epochs between nnU-Net's checkpoint_latest.pth saves (its default 50): shorter for long CPU trainings,
    # so that one cut by a session's end and continued with --c on the same machine loses little
    save_every: int = 50

    @property
    def plans_name(self) -> str:
        """The plans identifier this budget trains: nnU-Net's own, or its narrower copy."""
        name = PLANS if self.width == 1.0 else f"{PLANS}Width{round(self.width * 100)}"
        return name if self.patch is None else f"{name}Patch{'x'.join(map(str, self.patch))}"

    def trainer_attrs(self) -> dict:
        """The class attributes of its fixed-budget trainers (``training/budget.py``'s ``bench_*``)."""
        return {"bench_epochs": self.epochs, "bench_iterations": self.iterations,
                "bench_val_iterations": self.val_iterations, "bench_test_time_mirroring": self.test_time_mirroring,
                "bench_save_every": self.save_every}

    def record(self) -> dict:
        """The budget as results.json keeps it (its name is the preset's, kept beside it)."""
        out = asdict(self)
        out.pop("name")
        return out


# the synthetic dataset of the short and full presets (the same data for both)
_SYNTH_FULL = SyntheticData(dataset_id=953, name="SynthEM", cases=20, test_cases=5, shape=(32, 256, 256),
                            anisotropy=8, xy_nm=5.0)
# many small cases: an 8x32x32 patch (nnU-Net plans the patch from the case size) keeps a CPU step short
_SYNTH_SMALL = SyntheticData(dataset_id=954, name="SynthEMPlateau", cases=60, test_cases=20, shape=(8, 32, 32),
                             anisotropy=8, xy_nm=5.0)
# mitochondria at physical scale (objects 150-600 nm across, up to 2 um long) in 960x768x768 nm cases at
# 48x6x6 nm, like the ssTEM VNC stack: sections 8 pixels thick, so nnU-Net's plan has stage ratios 8, 4, 2, 1
# and the PI module acts on two anisotropic levels (4 and 2), as in the paper's ratio-8 setting
_SYNTH_PHANTOM = SyntheticData(dataset_id=955, name="SynthEMPhantom", cases=40, test_cases=20, shape=(20, 128, 128),
                               anisotropy=8, xy_nm=6.0)
# one's own real dataset on a CPU (the VNC study's budget): both methods on a quarter-width plan re-derived for a
# 20x64x64 patch, since nnU-Net's own patch for real EM (20x112x448 on the VNC stack) does not fit a CPU study.
# Median steps of 0.33 s (stock) and 0.71 s (ReIsoSeg) on the VNC stack at 47.5x9.2x9.2 nm; 500 iterations of
# a 20x96x96 patch left stock nnU-Net predicting no foreground there, so this trains 3x as long
_REAL_CPU = Budget(epochs=60, iterations=25, val_iterations=5, test_time_mirroring=False,
                   note="1,500 iterations of a 20x64x64 patch on a quarter-width plan, sized for 3 training pairs in "
                        "under 2 hours on a 2-core CPU", width=0.25, patch=(20, 64, 64))
_BUDGETS: dict[str, Budget] = {
    "tiny": Budget(epochs=1, iterations=2, val_iterations=1, test_time_mirroring=False,
                   synth=SyntheticData(dataset_id=951, name="SynthEMTiny", cases=5, test_cases=1, shape=(8, 32, 32),
                                       anisotropy=4, xy_nm=10.0),
                   note="for the test suite: shows that everything runs, measures nothing useful"),
    "smoke": Budget(epochs=5, iterations=24, val_iterations=2, test_time_mirroring=False,
                    synth=SyntheticData(dataset_id=952, name="SynthEMSmoke", cases=15, test_cases=3,
                                        shape=(16, 64, 64), anisotropy=8, xy_nm=5.0),
                    note="about 10 minutes on a 2-core CPU; too short to rank the methods"),
    # sized for a 2-core CPU so that stock nnU-Net's pseudo Dice levels off (the poly schedule anneals over
    # the whole budget): 2,500 iterations of an 8x32x32 patch, about 12 minutes per stock training there
    "plateau": Budget(epochs=100, iterations=25, val_iterations=10, test_time_mirroring=False, synth=_SYNTH_SMALL,
                      note="2,500 iterations of an 8x32x32 patch, sized for stock nnU-Net to level off on a 2-core "
                           "CPU on the synthetic data before objects were drawn at physical scale"),
    # the same data on a GPU, for perf/gpu_run.py: a few minutes per training
    "gpu": Budget(epochs=40, iterations=25, val_iterations=10, test_time_mirroring=False, synth=_SYNTH_SMALL,
                  note="1,000 iterations of the plateau preset's data, for a short GPU slot (perf/gpu_run.py)"),
    # the phantom study (docs/study_phantom): both methods on a quarter-width copy of nnU-Net's plan
    # steps of 1.1 s (stock) and 3.4 s (ReIsoSeg) on a 2-core CPU (perf/train_step.py on this plan): 5 training
    # pairs of 360 iterations fit in about 2.8 hours there
    "phantom": Budget(epochs=15, iterations=24, val_iterations=8, test_time_mirroring=False, synth=_SYNTH_PHANTOM,
                      note="360 iterations of a 20x128x128 patch on a quarter-width plan, sized for 5 training pairs "
                           "in 3 hours on a 2-core CPU", width=0.25),
    # one's own real data on a CPU (every class primary); "vnc" is the same budget as the VNC study ran it, with
    # mitochondria primary
    "realcpu": _REAL_CPU,
    "vnc": replace(_REAL_CPU, primary_classes=("mitochondria",)),
    # the budget study (docs/study_budget): the vnc preset with 4x its iterations and nothing else changed
    "vnc4x": replace(_REAL_CPU, epochs=240, primary_classes=("mitochondria",), save_every=10,
                     note="6,000 iterations (4x the vnc preset) of a 20x64x64 patch on a quarter-width plan; a "
                          "checkpoint every 10 epochs"),
    "short": Budget(epochs=100, iterations=50, val_iterations=10, test_time_mirroring=True, synth=_SYNTH_FULL,
                    note="5,000 iterations: an hour or two per training on a GPU"),
    "full": Budget(epochs=1000, iterations=250, val_iterations=50, test_time_mirroring=True, synth=_SYNTH_FULL,
                   note="nnU-Net's default budget (1000 epochs x 250 iterations)"),
}
PRESETS: dict[str, Budget] = {name: replace(b, name=name) for name, b in _BUDGETS.items()}

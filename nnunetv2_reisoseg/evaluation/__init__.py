"""Evaluation of segmentations: voxel overlap, surface distances and EM object measures (``reisoseg evaluate``);
every measure is defined once in ``measures.py``."""
from nnunetv2_reisoseg.evaluation.evaluate import EvaluationError, evaluate_files, evaluate_labels
from nnunetv2_reisoseg.evaluation.measures import MEASURES, fields

__all__ = ["MEASURES", "EvaluationError", "evaluate_files", "evaluate_labels", "fields"]

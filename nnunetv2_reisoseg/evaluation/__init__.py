"""Evaluation of segmentations: voxel overlap, surface distances and EM object measures (``reisoseg evaluate``)."""
from nnunetv2_reisoseg.evaluation.evaluate import FIELDS, EvaluationError, evaluate_files, evaluate_labels

__all__ = ["FIELDS", "EvaluationError", "evaluate_files", "evaluate_labels"]

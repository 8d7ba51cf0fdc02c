"""COCO box evaluation for long-tailed detection: overall, per class, per class-rank range, LVIS
buckets, and fixed AP, on columns of numpy arrays so that Objects365-scale result sets fit.

- :func:`evaluate` — the one call chapters make; see :mod:`o365lib.evaluation.evaluator`.
- :func:`fixed_ap` — Dave et al. 2021's per-class top-K AP without a per-image cap.
- :func:`load_results` / :func:`detection_columns` — results as arrays (a results JSON file is
  read in blocks, never as one list of dicts).
- :func:`run_coco_eval` — faster-coco-eval's arrays, the maintained reference.
- :func:`evaluate_files` — the library entry of the command ``o365-eval`` (``python -m
  o365lib.evaluation``): text summary, JSON, offline HTML report, ``--compare`` with paired
  bootstrap intervals (:mod:`o365lib.evaluation.cli`).
- ``protocol="lvis"`` — lvis-api's federated protocol (:mod:`o365lib.evaluation.lvis`).
"""

from o365lib.evaluation.columns import DetectionColumns, detection_columns, load_results
from o365lib.evaluation.command import EvaluationReport, evaluate_files
from o365lib.evaluation.engine import coco_eval_columns
from o365lib.evaluation.evaluator import evaluate, evaluate_arrays, run_coco_eval
from o365lib.evaluation.fixed_ap import default_fixed_ap_k, fixed_ap, top_k_per_class
from o365lib.evaluation.lvis import LVIS_STAT_NAMES, is_lvis
from o365lib.evaluation.summary import (
    LVIS_BUCKETS,
    STAT_NAMES,
    ap_by_rank_range,
    compare_metrics,
    lvis_bucket,
    per_class_ap,
    per_class_table,
    summary_stats,
)

__all__ = [
    "LVIS_BUCKETS",
    "LVIS_STAT_NAMES",
    "STAT_NAMES",
    "DetectionColumns",
    "EvaluationReport",
    "ap_by_rank_range",
    "coco_eval_columns",
    "compare_metrics",
    "default_fixed_ap_k",
    "detection_columns",
    "evaluate",
    "evaluate_arrays",
    "evaluate_files",
    "fixed_ap",
    "is_lvis",
    "load_results",
    "lvis_bucket",
    "per_class_ap",
    "per_class_table",
    "run_coco_eval",
    "summary_stats",
    "top_k_per_class",
]

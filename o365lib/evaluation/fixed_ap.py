"""Fixed AP (Dave et al. 2021, "Evaluating Large-Vocabulary Object Detectors: The Devil is in the Details").

COCO's ``maxDets`` caps detections per image: with 365 classes (or experts merged into one
result list) the classes compete for those slots, and AP then depends on how a detector spends
its per-image budget rather than on how well it ranks each class. Fixed AP removes the per-image
cap and caps each *class* instead: per class, the top ``K`` detections by score over the whole
split are kept (ties: input order first), and AP is computed with the standard COCO matching
against the same ground truth, without any per-image limit.

``K`` = 10,000 for LVIS v1 val (19,809 images). For another split the default scales it with the
number of images, with a floor:

    K = max(FIXED_AP_MIN_K, ceil(10,000 * num_images / 19,809))

so Objects365 v2 val (80,000 images) gets 40,386 and a 500-image split gets the floor, 1,000.
Pass ``k=`` to choose another value; the output says which ``K`` and which rule were used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from o365lib.evaluation.columns import DetectionColumns, GroundTruthColumns
from o365lib.evaluation.engine import coco_eval_columns
from o365lib.evaluation.inputs import as_dataset, load_inputs, range_table, resolve_ranking
from o365lib.evaluation.summary import image_counts, lvis_buckets, pct, per_class_ap
from o365lib.ops.top_k import top_k_per_group

LVIS_V1_VAL_IMAGES = 19809
LVIS_V1_FIXED_AP_K = 10000
FIXED_AP_MIN_K = 1000


def default_fixed_ap_k(num_images: int) -> int:
    """K scaled from LVIS v1 val's 10,000 for 19,809 images, at least ``FIXED_AP_MIN_K``."""
    return max(FIXED_AP_MIN_K, math.ceil(LVIS_V1_FIXED_AP_K * int(num_images) / LVIS_V1_VAL_IMAGES))


def k_rule(num_images: int) -> str:
    """The default rule in words, with its numbers for this split."""
    return (f"max({FIXED_AP_MIN_K}, ceil({LVIS_V1_FIXED_AP_K} * {int(num_images)} images / "
            f"{LVIS_V1_VAL_IMAGES})) = {default_fixed_ap_k(num_images)}")


def top_k_per_class(dets: DetectionColumns, *, k: int) -> np.ndarray:
    """Indices (increasing) of the detections among the ``k`` highest-scoring of their class.

    Ties in score are broken by input order, the same order COCO's stable sort uses.
    """
    if int(k) < 1:
        raise ValueError(f"fixed AP needs k >= 1, got {k}")
    return np.sort(top_k_per_group(dets.score, dets.category_id, int(k)))


def fixed_ap_arrays(gt: GroundTruthColumns, dets: DetectionColumns, *, k: int, unmatched_ignored=None) -> dict:
    """COCO arrays (area "all", one uncapped max-detections setting) of the per-class top ``k``.

    ``unmatched_ignored`` (bool per detection, LVIS's not-exhaustive classes) is passed on to the engine.
    """
    kept = top_k_per_class(dets, k=k)
    free = None if unmatched_ignored is None else np.asarray(unmatched_ignored, bool)[kept]
    arrays = coco_eval_columns(gt, dets.take(kept), max_dets=None, areas=("all",), unmatched_ignored=free)
    counts = np.unique(dets.category_id, return_counts=True)[1]
    arrays["classes_truncated"] = int(np.sum(counts > int(k)))
    return arrays


def fixed_ap_metrics(gt: GroundTruthColumns, dets: DetectionColumns, *, k: int | None, ranking: Mapping[int, int],
                     ranges: Sequence[Any], train_image_counts: Mapping[int, int] | None = None,
                     unmatched_ignored=None) -> dict:
    """The ``"fixed_ap"`` block of ``evaluate``'s output from already loaded columns (APs 0-100)."""
    num_images = len(gt.image_ids)
    used_k = default_fixed_ap_k(num_images) if k is None else int(k)
    arrays = fixed_ap_arrays(gt, dets, k=used_k, unmatched_ignored=unmatched_ignored)
    precision = arrays["precision"]
    per_class = {c: pct(v) for c, v in per_class_ap(precision, arrays["category_ids"]).items()}
    present = [v for v in per_class.values() if v is not None]

    def mean_at(t: float) -> float | None:
        p = precision[np.isclose(arrays["iou_thrs"], t)]
        return pct(float(np.mean(p[p > -1]))) if (p > -1).any() else None

    out: dict[str, Any] = {
        "mAP": float(np.mean(present)) if present else None,
        "AP50": mean_at(0.5),
        "AP75": mean_at(0.75),
        "k": used_k,
        "k_rule": "given" if k is not None else k_rule(num_images),
        "per_class": {str(c): v for c, v in per_class.items()},
        "ranges": range_table(per_class, ranking, ranges, caller="fixed_ap"),
        "num_detections": len(dets),
        "num_detections_kept": arrays["num_detections_evaluated"],
        "classes_truncated": arrays["classes_truncated"],
    }
    if train_image_counts is not None:
        out["lvis"] = lvis_buckets(per_class, train_image_counts)
    return out


def fixed_ap(gt: Any, detections: Any, *, k: int | None = None, ranking: Mapping[int, int] | None = None,
             ranges: Sequence[Any] = ("1-150", "151-300", "301-365"), train_gt: Any = None) -> dict:
    """Fixed AP of ``detections`` (any form ``evaluate`` accepts) against ``gt``.

    Args:
        gt: evaluation ground truth (path, COCO dict or ``CocoData``).
        detections: list of COCO result dicts, dict of arrays, ``[N, 7]`` array, or a results path.
        k: detections kept per class over the whole split; default :func:`default_fixed_ap_k`.
        ranking: category id -> rank; default from ``train_gt``, else from ``gt``.
        ranges: class-rank ranges to report (as in ``evaluate``).
        train_gt: training set; enables the LVIS buckets.

    Returns ``{"mAP", "AP50", "AP75", "k", "k_rule", "per_class", "ranges", "num_detections",
    "num_detections_kept", "classes_truncated", "ranking_source"[, "lvis"]}``, APs on 0-100.
    Note the overall mAP is the mean of the per-class APs, the same as COCO's AP.
    """
    gt_data, gt_cols, dets = load_inputs(gt, detections)
    train_data = as_dataset(train_gt) if train_gt is not None else None
    ranking, source = resolve_ranking(ranking, train_data=train_data, gt_data=gt_data)
    out = fixed_ap_metrics(gt_cols, dets, k=k, ranking=ranking, ranges=ranges,
                           train_image_counts=image_counts(train_data) if train_data is not None else None)
    out["ranking_source"] = source
    return out

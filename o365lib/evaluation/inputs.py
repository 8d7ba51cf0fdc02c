"""The inputs of an evaluation: ground truth, detections checked against it, the class ranking.

Shared by :func:`o365lib.evaluation.evaluate` and :func:`o365lib.evaluation.fixed_ap`. Bad input
raises :class:`o365lib.data.DataValidationError` naming the file, the record (``result
index=7``) and the field, before anything is computed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from o365lib.data import DataValidationError, class_ranks
from o365lib.evaluation.columns import (
    DetectionColumns,
    GroundTruthColumns,
    detection_columns,
    gc_paused,
    gt_columns,
)
from o365lib.evaluation.summary import ap_by_rank_range


def as_dataset(gt: Any) -> dict:
    """A COCO dict from a path, a dict, or an object with a ``.dataset`` dict (``CocoData``)."""
    if isinstance(gt, (str, os.PathLike)):
        with open(gt) as f, gc_paused():
            text = f.read()
            if not text.strip():
                raise DataValidationError(str(gt), ["the file is empty (expected a COCO ground-truth JSON object)"])
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataValidationError(str(gt), [f"not valid JSON: {err}"]) from None
            del text
        if not isinstance(data, dict):
            raise DataValidationError(str(gt), [
                (f"the ground truth is a JSON {type(data).__name__}, expected a COCO object with "
                "'images', 'annotations' and 'categories'")])
        return data
    if hasattr(gt, "dataset") and isinstance(gt.dataset, dict):
        return gt.dataset
    if isinstance(gt, Mapping):
        return dict(gt)
    raise TypeError(f"ground truth must be a path, a COCO dict or CocoData, not {type(gt).__name__}")


def load_inputs(gt: Any, detections: Any) -> tuple[dict, GroundTruthColumns, DetectionColumns]:
    """Ground truth as a dict and as columns, and the detections as checked columns."""
    gt_data = as_dataset(gt)
    check_ground_truth(gt_data, source=str(gt) if isinstance(gt, (str, os.PathLike)) else "ground truth")
    gt_cols = gt_columns(gt_data)
    source = str(detections) if isinstance(detections, (str, os.PathLike)) else "detections"
    dets = detection_columns(detections, source=source)
    check_ids(dets, gt_cols, source=source)
    return gt_data, gt_cols, dets


def check_ground_truth(gt_data: Mapping, *, source: str) -> None:
    """A COCO ground truth needs lists of ``images`` and ``categories`` (``annotations`` may be absent)."""
    for key in ("images", "categories"):
        value = gt_data.get(key)
        if value is None:
            raise DataValidationError(source, [
                (f"the ground truth has no {key!r} list (a COCO ground truth has 'images', 'annotations' "
                "and 'categories'; is this a results file?)")])
        if not isinstance(value, list):
            raise DataValidationError(source, [f"field {key!r} is a {type(value).__name__}, expected a list"])
    if not gt_data["categories"]:
        raise DataValidationError(source, ["field 'categories' is an empty list: nothing to evaluate"])
    for index, cat in enumerate(gt_data["categories"]):
        if not isinstance(cat, Mapping) or "id" not in cat:
            raise DataValidationError(source, [f"categories index={index} has no field 'id'"])


def _first_unknown(values: np.ndarray, known: np.ndarray) -> int | None:
    if not values.size:
        return None
    pos = np.minimum(np.searchsorted(known, values), max(len(known) - 1, 0))
    bad = np.flatnonzero(known[pos] != values) if len(known) else np.arange(values.size)
    return int(bad[0]) if bad.size else None


def check_ids(dets: DetectionColumns, gt: GroundTruthColumns, *, source: str) -> None:
    """Every detection's category and image must exist in the ground truth (first offender named)."""
    bad_cat = _first_unknown(dets.category_id, gt.category_ids)
    bad_img = _first_unknown(dets.image_id, gt.image_ids)
    if bad_cat is not None and (bad_img is None or bad_cat <= bad_img):
        raise DataValidationError(source, [
            (f"result index={bad_cat} field 'category_id' = {int(dets.category_id[bad_cat])} "
             "is not a category of the ground truth")])
    if bad_img is not None:
        raise DataValidationError(source, [
            (f"result index={bad_img} field 'image_id' = {int(dets.image_id[bad_img])} "
             "is not an image of the ground truth")])


def resolve_ranking(ranking: Mapping | None, *, train_data: dict | None, gt_data: dict) -> tuple[dict, str]:
    """(category id -> rank, where it came from: "given", "train_gt" or "gt")."""
    if ranking is not None:
        source = "given"
    elif train_data is not None:
        ranking, source = class_ranks(train_data), "train_gt"
    else:
        ranking, source = class_ranks(gt_data), "gt"
    return {int(c): int(r) for c, r in ranking.items()}, source


def range_table(per_class: Mapping, ranking: Mapping[int, int], ranges: Sequence[Any], *, caller: str) -> dict:
    """``{spec: {"mAP", "num_classes", "num_evaluated", "zero_ap"}}`` for each rank range."""
    out = {}
    for spec in ranges:
        try:
            result = ap_by_rank_range(per_class, ranking, spec)
        except ValueError as err:
            raise ValueError(f"{caller}(ranges=...): {err}; the ranking has {len(ranking)} classes, "
                             "pass ranges that fit it") from err
        result.pop("category_ids")
        out[str(spec)] = result
    return out

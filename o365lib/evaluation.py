"""COCO box AP overall, per class, per class-rank range and per LVIS frequency bucket.

Why this module exists: the seed's whole argument ("39 of the 65 classes ranked 301-365 have zero
AP", "the expert lifts the tail from 18.4 to 29.5") is made with *per-class* and *per-range* AP,
numbers that the standard COCO summary does not print. We run one standard COCO evaluation and
read everything else off its precision array ``[T, R, K, A, M]`` (IoU thresholds, recall
thresholds, classes, area ranges, max-detection settings), exactly as the COCO summary does.

Engine: ``faster_coco_eval`` in *standard* mode (its C++ matching gives the same numbers as
``pycocotools``, several times faster; the tests pin the equality to 1e-9). Its LVIS mode is not
used: it drops the detections of classes absent from an image, which is right for federated LVIS
labels and wrong for exhaustively labelled Objects365 (false positives would go uncounted).

The 12 summary numbers are recomputed from the accumulated arrays with the last ``maxDets``
setting, so ``max_dets=300`` (the LVIS convention) is honoured everywhere (pycocotools' own
summary hard-codes 100 for the first number). Every AP is reported on the 0-100 scale; a value the
COCO summary marks ``-1`` (no ground truth, e.g. no small objects) is reported as ``None``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "STAT_NAMES",
    "ap_by_rank_range",
    "compare_metrics",
    "evaluate",
    "per_class_ap",
    "per_class_table",
    "run_coco_eval",
    "summary_stats",
]

#: Names of the 12 COCO summary numbers, in ``stats`` order (AR100 is AR at ``max_dets``).
STAT_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
LVIS_BUCKETS = (("rare", 0, 10), ("common", 10, 100), ("frequent", 100, None))

from o365lib.data import DataValidationError, class_ranks, parse_class_range, ranks_to_category_ids


def _as_dataset(gt: Any) -> dict:
    """A COCO dict from a path, a dict, or an object with a ``.dataset`` dict (``CocoData``)."""
    if isinstance(gt, (str, os.PathLike)):
        with open(gt) as f:
            return json.load(f)
    if hasattr(gt, "dataset") and isinstance(gt.dataset, dict):
        return gt.dataset
    if isinstance(gt, Mapping):
        return dict(gt)
    raise TypeError(f"ground truth must be a path, a COCO dict or CocoData, not {type(gt).__name__}")


def _load_detections(detections: Any, *, image_ids: set, category_ids: set) -> list[dict]:
    """Validated copies of the result dicts, completed as COCO's ``loadRes`` does for boxes
    (``area`` = w*h, ``id`` = index + 1, ``iscrowd`` = 0); the caller's dicts are not touched."""
    source = "detections"
    if isinstance(detections, (str, os.PathLike)):
        source = str(detections)
        with open(detections) as f:
            detections = json.load(f)
    if not isinstance(detections, list):
        raise DataValidationError(source, ["expected a list of COCO result dicts"])
    out = []
    append = out.append
    for index, det in enumerate(detections, start=1):
        try:
            image_id, cat_id, bbox, score = det["image_id"], det["category_id"], det["bbox"], det["score"]
            x, y, w, h = bbox
            area = w * h
        except KeyError as err:
            raise DataValidationError(source, [f"result index={index - 1} has no field {err.args[0]!r}"]) from None
        except (TypeError, ValueError):
            raise DataValidationError(source, [
                f"result index={index - 1} field 'bbox' = {det.get('bbox')!r} is not 4 numbers [x, y, w, h]"
            ]) from None
        if cat_id not in category_ids:
            raise DataValidationError(source, [
                f"result index={index - 1} field 'category_id' = {cat_id!r} is not a category of the ground truth"
            ])
        if image_id not in image_ids:
            raise DataValidationError(source, [
                f"result index={index - 1} field 'image_id' = {image_id!r} is not an image of the ground truth"
            ])
        append({"image_id": image_id, "category_id": cat_id, "bbox": [x, y, w, h], "score": score,
                "area": area, "id": index, "iscrowd": 0})
    return out


def run_coco_eval(gt: dict, detections: list[dict], *, max_dets: int = 100) -> dict:
    """Standard-mode COCO bbox evaluation with faster-coco-eval; returns its accumulated arrays.

    Returns ``{"precision": [T,R,K,A,M], "recall": [T,K,A,M], "category_ids": [K], "iou_thrs": [T],
    "max_dets": [M]}``. ``detections`` come from ``_load_detections`` (the fields ``loadRes`` would
    add are already there, so the result index is built directly; the evaluator writes into them).
    """
    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *a, **k: None
    gt = dict(gt)
    gt["annotations"] = [dict(a) for a in gt.get("annotations", [])]  # the evaluator writes into them
    coco_gt = COCO(gt, print_function=quiet)
    coco_dt = COCO({"images": gt.get("images", []), "categories": gt.get("categories", []),
                    "annotations": detections}, print_function=quiet)
    ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=quiet, separate_eval=False)
    ev.params.maxDets = [1, 10, int(max_dets)] if max_dets > 10 else sorted({1, int(max_dets)})
    ev.evaluate()  # with separate_eval=False this also accumulates (one C++ pass)
    return {"precision": np.asarray(ev.eval["precision"]), "recall": np.asarray(ev.eval["recall"]),
            "category_ids": [int(c) for c in ev.params.catIds], "iou_thrs": np.asarray(ev.params.iouThrs),
            "max_dets": list(ev.params.maxDets)}


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector while building many small containers.

    Evaluation allocates a few hundred thousand dicts and lists that live until it returns and
    hold no reference cycles; the collector would rescan them again and again (measured: the
    evaluation of 2000 images x 100 detections takes 7.6 s with it, 3.0 s without).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summary_stats(precision: np.ndarray, recall: np.ndarray, *, iou_thrs: Sequence[float]) -> list[float]:
    """The 12 COCO summary numbers (0-1 scale, -1 = undefined) from accumulated arrays.

    Same arithmetic as the COCO summary (mean over entries > -1) but AP and area AR always use the
    *last* max-detections setting; AR1/AR10 use the first two (the last one again if only two exist).
    Area index 0..3 = all, small, medium, large.
    """
    iou_thrs = np.asarray(iou_thrs)
    t50 = np.where(np.isclose(iou_thrs, 0.5))[0]
    t75 = np.where(np.isclose(iou_thrs, 0.75))[0]
    m_last = precision.shape[4] - 1
    m_ar = [0, min(1, m_last), m_last]
    stats = [
        _mean_valid(precision[:, :, :, 0, m_last]),
        _mean_valid(precision[t50, :, :, 0, m_last]),
        _mean_valid(precision[t75, :, :, 0, m_last]),
        *[_mean_valid(precision[:, :, :, a, m_last]) for a in (1, 2, 3)],
        *[_mean_valid(recall[:, :, 0, m]) for m in m_ar],
        *[_mean_valid(recall[:, :, a, m_last]) for a in (1, 2, 3)],
    ]
    return stats


def per_class_ap(precision: np.ndarray, category_ids: Sequence[int]) -> dict[int, float | None]:
    """AP (0-1) per category id: IoU 0.5:0.95, area all, last maxDets; None for a class with no gt."""
    p = precision[:, :, :, 0, -1]
    valid = p > -1
    count = valid.sum(axis=(0, 1))
    total = np.where(valid, p, 0.0).sum(axis=(0, 1))
    return {int(cat): (float(total[k] / count[k]) if count[k] else None) for k, cat in enumerate(category_ids)}


def ap_by_rank_range(per_class: Mapping, ranking: Mapping[int, int], spec: Any) -> dict:
    """Mean AP over the classes of a rank range that have ground truth, and its zero-AP count.

    ``per_class`` maps category id (int or str) -> AP or None; the mean uses the same scale as
    ``per_class``. Returns ``{"mAP", "num_classes" (classes in the range), "num_evaluated" (of them
    with ground truth), "zero_ap" (of them with AP exactly 0), "category_ids"}``.
    """
    ranks = parse_class_range(spec, len(ranking))
    cats = ranks_to_category_ids(ranks, ranking)
    values = [_lookup(per_class, c) for c in cats]
    present = [v for v in values if v is not None]
    return {
        "mAP": float(np.mean(present)) if present else None,
        "num_classes": len(cats),
        "num_evaluated": len(present),
        "zero_ap": int(sum(v == 0 for v in present)),
        "category_ids": cats,
    }


def _lookup(per_class: Mapping, cat: int):
    if cat in per_class:
        return per_class[cat]
    return per_class.get(str(cat))


def _image_counts(dataset: Mapping) -> dict[int, int]:
    images: dict[int, set] = {int(c["id"]): set() for c in dataset.get("categories", [])}
    for ann in dataset.get("annotations", []):
        images.setdefault(int(ann["category_id"]), set()).add(ann["image_id"])
    return {c: len(s) for c, s in images.items()}


def _lvis_buckets(per_class: Mapping, train: Mapping) -> dict:
    counts = _image_counts(train)
    out = {}
    for name, lo, hi in LVIS_BUCKETS:
        cats = [c for c in per_class if counts.get(c, 0) >= lo and (hi is None or counts.get(c, 0) < hi)]
        present = [per_class[c] for c in cats if per_class[c] is not None]
        out[name] = {"mAP": float(np.mean(present)) if present else None,
                     "num_classes": len(cats), "num_evaluated": len(present)}
    return out


def _pct(value: float | None) -> float | None:
    return None if value is None or value < 0 else 100.0 * float(value)


def _atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def evaluate(
    gt: Any,
    detections: Any,
    *,
    ranking: Mapping[int, int] | None = None,
    train_gt: Any = None,
    ranges: Sequence[Any] = ("1-150", "151-300", "301-365"),
    max_dets: int = 100,
    out_path: str | os.PathLike | None = None,
) -> dict:
    """Evaluate COCO results against ground truth; return (and optionally save) a JSON-able dict.

    Args:
        gt: evaluation ground truth (path, COCO dict or ``CocoData``).
        detections: path or list of COCO result dicts (an empty list gives zero AP, not an error).
        ranking: category id -> rank (1 = most training instances). Default: computed from
            ``train_gt``, else from ``gt`` itself (``"ranking_source"`` in the output says which).
        train_gt: training set (path / dict / ``CocoData``); enables the LVIS buckets
            (rare < 10 training images, common 10-99, frequent >= 100).
        ranges: class-rank range specs (``"301-365"``...) to report mean AP and zero-AP counts for.
        max_dets: the evaluator's ``maxDets`` (100 COCO, 300 LVIS). COCO applies it per image *and
            class*; the per-image cap of the detector itself is applied at inference time.
        out_path: if given, the dict is written there as JSON (atomically).

    Returns keys "mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100" (AR at
    ``max_dets``), "ARs", "ARm", "ARl", "stats" (those 12, same order), "per_class"
    {str(cat_id): AP or None}, "ranges" {spec: {"mAP", "num_classes", "num_evaluated", "zero_ap"}},
    "lvis" (only with ``train_gt``), "ranking_source", "max_dets", "num_images", "num_detections".
    """
    if int(max_dets) < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    gt_data = _as_dataset(gt)
    image_ids = {img["id"] for img in gt_data.get("images", [])}
    cat_ids = {c["id"] for c in gt_data.get("categories", [])}
    with _gc_paused():
        dets = _load_detections(detections, image_ids=image_ids, category_ids=cat_ids)
        arrays = run_coco_eval(gt_data, dets, max_dets=int(max_dets))
        num_dets = len(dets)
        del dets
    stats = [_pct(v) for v in summary_stats(arrays["precision"], arrays["recall"], iou_thrs=arrays["iou_thrs"])]
    per_class = per_class_ap(arrays["precision"], arrays["category_ids"])
    per_class_pct = {c: _pct(v) for c, v in per_class.items()}

    train_data = _as_dataset(train_gt) if train_gt is not None else None
    if ranking is not None:
        ranking_source = "given"
    elif train_data is not None:
        ranking, ranking_source = class_ranks(train_data), "train_gt"
    else:
        ranking, ranking_source = class_ranks(gt_data), "gt"
    ranking = {int(c): int(r) for c, r in ranking.items()}

    metrics: dict[str, Any] = dict(zip(STAT_NAMES, stats))
    metrics["stats"] = stats
    metrics["per_class"] = {str(c): v for c, v in per_class_pct.items()}
    metrics["ranges"] = {}
    for spec in ranges:
        try:
            result = ap_by_rank_range(per_class_pct, ranking, spec)
        except ValueError as err:
            raise ValueError(f"evaluate(ranges=...): {err}; the ranking has {len(ranking)} classes, "
                             "pass ranges that fit it") from err
        result.pop("category_ids")
        metrics["ranges"][str(spec)] = result
    if train_data is not None:
        metrics["lvis"] = _lvis_buckets(per_class_pct, train_data)
    metrics.update(ranking_source=ranking_source, max_dets=int(max_dets),
                   num_images=len(image_ids), num_detections=num_dets)
    if out_path is not None:
        _atomic_write_json(metrics, out_path)
    return metrics


def per_class_table(metrics: Mapping, ranking: Mapping[int, int], names: Mapping[int, str] | None = None):
    """A pandas DataFrame (category_id, name, rank, ap) sorted by rank from ``evaluate``'s output.

    ``names`` maps category id -> name (e.g. ``{c["id"]: c["name"] for c in gt["categories"]}``).
    """
    import pandas as pd

    names = names or {}
    rows = []
    for key, ap in metrics["per_class"].items():
        cat = int(key)
        rows.append({"category_id": cat, "name": names.get(cat, str(cat)),
                     "rank": ranking.get(cat), "ap": np.nan if ap is None else float(ap)})
    df = pd.DataFrame(rows, columns=["category_id", "name", "rank", "ap"])
    return df.sort_values(["rank", "category_id"], na_position="last").reset_index(drop=True)


def compare_metrics(before: Mapping, after: Mapping, ranks: Mapping[int, int], *,
                    spec: Any = None, tolerance: float = 1e-9) -> dict:
    """Per-class AP changes between two ``evaluate`` outputs (e.g. baseline vs expert).

    ``ranks`` is the ranking (category id -> rank); ``spec`` restricts to a class-rank range
    (``"301-365"``), default all ranked classes. Classes without ground truth are skipped.
    Returns ``{"deltas": DataFrame(category_id, rank, before, after, delta), "improved", "worse",
    "unchanged", "mean_before", "mean_after", "mean_delta"}`` (|delta| <= tolerance = unchanged).
    """
    import pandas as pd

    ranks = {int(c): int(r) for c, r in ranks.items()}
    if spec is None:
        cats = sorted(ranks, key=ranks.get)
    else:
        cats = ranks_to_category_ids(parse_class_range(spec, len(ranks)), ranks)
    rows = []
    for cat in cats:
        b, a = _lookup(before["per_class"], cat), _lookup(after["per_class"], cat)
        if b is None or a is None:
            continue
        rows.append({"category_id": cat, "rank": ranks[cat], "before": b, "after": a, "delta": a - b})
    df = pd.DataFrame(rows, columns=["category_id", "rank", "before", "after", "delta"])
    delta = df["delta"].to_numpy(dtype=float)
    return {
        "deltas": df,
        "improved": int(np.sum(delta > tolerance)),
        "worse": int(np.sum(delta < -tolerance)),
        "unchanged": int(np.sum(np.abs(delta) <= tolerance)),
        "mean_before": float(df["before"].mean()) if len(df) else None,
        "mean_after": float(df["after"].mean()) if len(df) else None,
        "mean_delta": float(delta.mean()) if len(df) else None,
    }

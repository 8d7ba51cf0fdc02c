"""What is read off the accumulated COCO arrays: summary numbers, per-class AP, rank ranges, LVIS buckets.

The talk's argument ("39 of the 65 classes ranked 301-365 have zero AP") is made with per-class
and per-rank-range AP, which the standard COCO summary does not print. Everything here reads the
precision array ``[T, R, K, A, M]`` (IoU thresholds, recall thresholds, classes, area ranges,
max-detection settings) the way the COCO summary does: mean over entries > -1.

LVIS frequency buckets (Gupta et al. 2019) count *training images* per class: rare 1-10, common
11-100, frequent > 100. A class without training images is in none of them and is counted
separately (``"no_train_images"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from o365lib.data import parse_class_range, ranks_to_category_ids

#: Names of the 12 COCO summary numbers, in ``stats`` order (AR100 is AR at ``max_dets``).
STAT_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
#: LVIS buckets as (name, lowest, highest) training-image counts, both inclusive; None = no bound.
LVIS_BUCKETS = (("rare", 1, 10), ("common", 11, 100), ("frequent", 101, None))


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
    rows = np.ascontiguousarray(np.moveaxis(precision[:, :, :, 0, -1], 2, 0)).reshape(len(category_ids), -1)
    out = {}
    for k, cat in enumerate(category_ids):  # np.mean of the valid entries, as the COCO and LVIS summaries do
        valid = rows[k][rows[k] > -1]
        out[int(cat)] = float(np.mean(valid)) if valid.size else None
    return out


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


def image_counts(dataset: Mapping) -> dict[int, int]:
    """Number of distinct images per category id (every listed category, 0 if it has none)."""
    images: dict[int, set] = {int(c["id"]): set() for c in dataset.get("categories", [])}
    for ann in dataset.get("annotations", []):
        images.setdefault(int(ann["category_id"]), set()).add(ann["image_id"])
    return {c: len(s) for c, s in images.items()}


def lvis_bucket(num_images: int) -> str | None:
    """"rare", "common" or "frequent" for a training-image count; None for 0 images."""
    for name, lo, hi in LVIS_BUCKETS:
        if num_images >= lo and (hi is None or num_images <= hi):
            return name
    return None


def lvis_buckets(per_class: Mapping, train_image_counts: Mapping[int, int]) -> dict:
    """Mean AP per LVIS bucket over the classes of ``per_class`` (category id -> AP or None).

    Returns ``{"rare"|"common"|"frequent": {"mAP", "num_classes", "num_evaluated"},
    "no_train_images": {"num_classes", "num_evaluated", "category_ids"}}``: classes with no
    training image are left out of the three buckets and listed there instead.
    """
    groups: dict[str, list] = {name: [] for name, _, _ in LVIS_BUCKETS}
    unseen = []
    for key in per_class:
        bucket = lvis_bucket(int(train_image_counts.get(int(key), 0)))
        (groups[bucket] if bucket else unseen).append(key)
    out: dict[str, Any] = {}
    for name, cats in groups.items():
        present = [per_class[c] for c in cats if per_class[c] is not None]
        out[name] = {"mAP": float(np.mean(present)) if present else None,
                     "num_classes": len(cats), "num_evaluated": len(present)}
    out["no_train_images"] = {"num_classes": len(unseen),
                              "num_evaluated": sum(per_class[c] is not None for c in unseen),
                              "category_ids": sorted(int(c) for c in unseen)}
    return out


def pct(value: float | None) -> float | None:
    """0-1 -> 0-100; None for None or a negative value (COCO's -1 = undefined)."""
    return None if value is None or value < 0 else 100.0 * float(value)


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

"""Two detectors on the same ground truth: per-class and per-range AP differences with paired
bootstrap intervals over images.

A bootstrap sample draws the evaluation images with replacement; **both** detectors are scored on
the *same* drawn images (paired), so the interval is that of the difference, not of two
independent numbers. Matching is per image, so it does not change when images are resampled:
the engine's per-detection outcomes (true positive / false positive / ignored at each IoU
threshold, :func:`o365lib.evaluation.engine.coco_eval_columns` with ``outcomes=True``) are
computed once, and a sample only re-weights them by how often it drew each image. Per class and
IoU threshold, precision and recall become weighted cumulative sums in the detections' score
order, read at COCO's 101 recall points as the engine reads them. A class whose counted ground
truth was not drawn has no AP in that sample and is left out of that sample's means.

Approximation (stated, not hidden): copies of one image are consecutive in the score order
instead of interleaved by image id; with weights this changes nothing but ties in score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from o365lib.data import parse_class_range, ranks_to_category_ids
from o365lib.evaluation.engine import RECALL_THRESHOLDS

_BLOCK = 32  # bootstrap samples evaluated together (memory: block x detections of one class)


def _weighted_ap(outcome: Mapping, weights: np.ndarray) -> np.ndarray:
    """AP (0-1) of one class for each row of ``weights`` [B, images]; NaN where no ground truth was drawn."""
    B = weights.shape[0]
    npig = weights[:, outcome["gt_image"]].sum(axis=1)  # [B]
    w_det = weights[:, outcome["det_image"]]  # [B, n]
    tp, fp = outcome["tp"], outcome["fp"]
    R = RECALL_THRESHOLDS
    ap = np.zeros(B)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(tp.shape[0]):
            pos = np.flatnonzero(tp[t])
            if pos.size == 0:
                continue
            end = pos[-1] + 1
            fp_cum = np.cumsum(w_det[:, :end] * fp[t, :end], axis=1)[:, pos]
            tp_cum = np.cumsum(w_det[:, pos], axis=1)
            rc = tp_cum / npig[:, None]
            pr = tp_cum / (fp_cum + tp_cum + np.spacing(1))
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            p = pos.size
            idx = np.stack([np.searchsorted(row, R, side="left") for row in rc])  # exact, row by row
            inside = idx < p
            values = np.where(inside, pr[np.arange(B)[:, None], np.minimum(idx, p - 1)], 0.0)
            ap += values.mean(axis=1)
    ap /= tp.shape[0]
    ap[npig <= 0] = np.nan
    return ap


def bootstrap_per_class(outcomes: Sequence[Mapping | None], weights: np.ndarray) -> np.ndarray:
    """[B, K] per-class AP (0-100) of each bootstrap sample; NaN for a class without drawn ground truth."""
    out = np.full((weights.shape[0], len(outcomes)), np.nan)
    for k, outcome in enumerate(outcomes):
        if outcome is None:
            continue
        for lo in range(0, weights.shape[0], _BLOCK):
            out[lo:lo + _BLOCK, k] = 100.0 * _weighted_ap(outcome, weights[lo:lo + _BLOCK])
    return out


def image_weights(num_images: int, *, samples: int, seed: int) -> np.ndarray:
    """[samples, num_images] draw counts: each row resamples the images with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=samples).astype(np.float64)


def _interval(values: np.ndarray, level: float) -> list[float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [None, None]
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    count = np.isfinite(values).sum(axis=1)
    total = np.where(np.isfinite(values), values, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def paired_bootstrap(metrics_a: Mapping, metrics_b: Mapping, arrays_a: Mapping, arrays_b: Mapping, *,
                     ranking: Mapping[int, int], ranges: Sequence[Any], names: Mapping[int, str] | None = None,
                     samples: int = 200, seed: int = 0, level: float = 0.95, top: int = 10) -> dict:
    """Differences B - A (AP points, 0-100) with paired bootstrap intervals over images.

    ``metrics_*`` are ``evaluate`` outputs and ``arrays_*`` the arrays of
    :func:`o365lib.evaluation.evaluate_arrays` with ``outcomes=True``, on the same ground truth.
    Returns ``{"samples", "seed", "level", "overall": {"a", "b", "delta", "interval"},
    "ranges": {spec: {...}}, "per_class": {str(cat): {"a", "b", "delta", "interval", "rank",
    "name"}}, "most_changed": [up to ``top`` of those, largest |delta| first, with "category_id"],
    "improved", "worse", "significant_improved", "significant_worse"}``.
    """
    cats = [int(c) for c in arrays_a["category_ids"]]
    if cats != [int(c) for c in arrays_b["category_ids"]]:
        raise ValueError("the two evaluations are on different categories: compare on the same ground truth")
    num_images = int(metrics_a["num_images"])
    weights = image_weights(num_images, samples=samples, seed=seed)
    boot_a = bootstrap_per_class(arrays_a["outcomes"], weights)
    boot_b = bootstrap_per_class(arrays_b["outcomes"], weights)
    diff = boot_b - boot_a
    names = names or {}
    per_class, column = {}, {c: k for k, c in enumerate(cats)}
    for k, cat in enumerate(cats):
        a, b = metrics_a["per_class"][str(cat)], metrics_b["per_class"][str(cat)]
        if a is None or b is None:
            continue
        per_class[str(cat)] = {"a": a, "b": b, "delta": b - a, "interval": _interval(diff[:, k], level),
                               "rank": ranking.get(cat), "name": names.get(cat, str(cat))}

    def group(members: list[int], a_value, b_value) -> dict:
        ks = [column[c] for c in members if str(c) in per_class]
        delta = _nanmean_rows(boot_b[:, ks]) - _nanmean_rows(boot_a[:, ks]) if ks else np.full(samples, np.nan)
        return {"a": a_value, "b": b_value, "delta": None if a_value is None or b_value is None else b_value - a_value,
                "interval": _interval(delta, level), "num_classes": len(ks)}

    range_out = {}
    for spec in ranges:
        members = ranks_to_category_ids(parse_class_range(spec, len(ranking)), ranking)
        range_out[str(spec)] = group(members, metrics_a["ranges"][str(spec)]["mAP"], metrics_b["ranges"][str(spec)]["mAP"])
    moved = sorted(per_class.items(), key=lambda item: -abs(item[1]["delta"]))[:top]
    excludes_zero = lambda iv, sign: iv[0] is not None and (iv[0] > 0 if sign > 0 else iv[1] < 0)
    return {
        "samples": int(samples), "seed": int(seed), "level": float(level),
        "overall": group(cats, metrics_a["AP"], metrics_b["AP"]),
        "ranges": range_out,
        "per_class": per_class,
        "most_changed": [{"category_id": int(c), **v} for c, v in moved],
        "improved": sum(v["delta"] > 0 for v in per_class.values()),
        "worse": sum(v["delta"] < 0 for v in per_class.values()),
        "significant_improved": sum(excludes_zero(v["interval"], 1) for v in per_class.values()),
        "significant_worse": sum(excludes_zero(v["interval"], -1) for v in per_class.values()),
    }

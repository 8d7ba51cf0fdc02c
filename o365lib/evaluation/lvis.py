"""The LVIS protocol (Gupta et al. 2019) on the column engine, equal to lvis-api 0.5.3's ``LVISEval``.

LVIS labels are federated: an image is exhaustively labelled only for some classes. The protocol
differs from COCO's in what it feeds the same matching and accumulation:

- **per-image cap, across classes**: an image keeps its ``max_dets`` (300) highest-scoring
  detections over all classes (ties: input order); there is no per-(image, class) cap;
- **boxes of zero area are skipped**, detections and ground truth alike (area must be > 0 and
  finite); detection area is ``w * h``;
- **which detections count**: a detection of class ``c`` in image ``i`` is evaluated only if ``c``
  has ground truth in ``i`` or is in ``i``'s ``neg_category_ids`` (verified absent); otherwise
  nobody knows whether it is right, and it is dropped;
- **not exhaustively labelled classes** (``not_exhaustive_category_ids`` of an image): an
  unmatched detection of such a class is ignored, not a false positive;
- **ground truth**: ``iscrowd`` plays no part (no crowd IoU, no crowd ignore); an annotation with
  a true ``ignore`` field is ignored;
- **summary**: AP, AP50, AP75, APs/m/l, APr/c/f (over the classes whose category ``frequency`` is
  ``r``, ``c`` or ``f``), and AR at 300 overall and per area, all means over the valid entries of
  the precision and recall arrays, as the COCO summary computes them.

Everything else (IoU, greedy matching, 101-point interpolated precision, classes without ground
truth left out) is the COCO arithmetic of :mod:`o365lib.evaluation.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from o365lib.evaluation.columns import DetectionColumns, GroundTruthColumns
from o365lib.ops.top_k import top_k_per_group

LVIS_MAX_DETS = 300
FREQUENCY_CODES = ("r", "c", "f")
#: Names of the 13 LVIS summary numbers, in ``stats`` order.
LVIS_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf",
                   "AR@300", "ARs@300", "ARm@300", "ARl@300")


def is_lvis(gt_data: Mapping) -> bool:
    """True when the images carry LVIS's ``neg_category_ids`` or ``not_exhaustive_category_ids``."""
    return any(isinstance(img, Mapping) and ("neg_category_ids" in img or "not_exhaustive_category_ids" in img)
               for img in gt_data.get("images", []))


def category_frequency(gt_data: Mapping) -> dict[int, str] | None:
    """Category id -> ``"r"|"c"|"f"`` from the categories' ``frequency`` field; None if any lacks it."""
    cats = gt_data.get("categories", [])
    if not cats or any(c.get("frequency") not in FREQUENCY_CODES for c in cats):
        return None
    return {int(c["id"]): c["frequency"] for c in cats}


def _pair_keys(image_ids: np.ndarray, cat_ids: np.ndarray, gt: GroundTruthColumns) -> np.ndarray:
    """One int64 key per (image, category), -1 where either id is not in the ground truth."""
    n_img, n_cat = len(gt.image_ids), len(gt.category_ids)
    i = np.minimum(np.searchsorted(gt.image_ids, image_ids), max(n_img - 1, 0))
    c = np.minimum(np.searchsorted(gt.category_ids, cat_ids), max(n_cat - 1, 0))
    known = (gt.image_ids[i] == image_ids) & (gt.category_ids[c] == cat_ids) if n_img and n_cat else \
        np.zeros(len(image_ids), bool)
    return np.where(known, i.astype(np.int64) * n_cat + c, -1)


def _image_lists(gt_data: Mapping, field: str, gt: GroundTruthColumns) -> np.ndarray:
    """Sorted pair keys of every (image, category) listed in the images' ``field``."""
    img, cat = [], []
    for record in gt_data.get("images", []):
        ids = record.get(field) or []
        img.extend([record["id"]] * len(ids))
        cat.extend(ids)
    keys = _pair_keys(np.asarray(img, np.int64), np.asarray(cat, np.int64), gt)
    return np.unique(keys[keys >= 0])


def cap_per_image(dets: DetectionColumns, *, max_dets: int) -> np.ndarray:
    """Indices (increasing) of each image's ``max_dets`` highest-scoring detections (ties: input order)."""
    n = len(dets)
    _, counts = np.unique(dets.image_id, return_counts=True)
    if not counts.size or counts.max() <= int(max_dets):
        return np.arange(n)  # no image over the cap: nothing to sort
    return np.sort(top_k_per_group(dets.score, dets.image_id, int(max_dets)))


def lvis_inputs(gt_data: Mapping, gt: GroundTruthColumns, dets: DetectionColumns, *,
                max_dets: int = LVIS_MAX_DETS) -> tuple[GroundTruthColumns, DetectionColumns, np.ndarray]:
    """The ground truth, detections and ``unmatched_ignored`` flags that the LVIS protocol evaluates.

    Feed the three to :func:`o365lib.evaluation.engine.coco_eval_columns` with ``max_dets=None``.
    """
    anns = gt_data.get("annotations", [])
    ignore = np.array([bool(a.get("ignore", 0)) for a in anns], dtype=bool)
    keep_gt = (gt.area > 0) & (gt.area < np.inf)
    gt_lvis = GroundTruthColumns(
        image_ids=gt.image_ids, category_ids=gt.category_ids, ann_id=gt.ann_id[keep_gt],
        image_id=gt.image_id[keep_gt], category_id=gt.category_id[keep_gt], bbox=gt.bbox[keep_gt],
        area=gt.area[keep_gt], iscrowd=np.zeros(int(keep_gt.sum()), bool), ignore=ignore[keep_gt])

    dets = dets.take(cap_per_image(dets, max_dets=max_dets))
    area = dets.bbox[:, 2] * dets.bbox[:, 3]
    keys = _pair_keys(dets.image_id, dets.category_id, gt)
    positive = np.unique(_pair_keys(gt_lvis.image_id, gt_lvis.category_id, gt))
    negative = _image_lists(gt_data, "neg_category_ids", gt)
    known = np.isin(keys, positive) | np.isin(keys, negative)
    dets = dets.take(np.flatnonzero((area > 0) & (area < np.inf) & known & (keys >= 0)))
    keys = _pair_keys(dets.image_id, dets.category_id, gt)
    unmatched_ignored = np.isin(keys, _image_lists(gt_data, "not_exhaustive_category_ids", gt))
    return gt_lvis, dets, unmatched_ignored


def frequency_indices(category_ids, frequency: Mapping[int, str]) -> dict[str, list[int]]:
    """``{"r"|"c"|"f": [positions in category_ids]}`` (a class without a code is in none)."""
    out: dict[str, list[int]] = {code: [] for code in FREQUENCY_CODES}
    for k, cat in enumerate(category_ids):
        code = frequency.get(int(cat))
        if code in out:
            out[code].append(k)
    return out


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def frequency_stats(precision: np.ndarray, category_ids, frequency: Mapping[int, str]) -> list[float]:
    """[APr, APc, APf] (0-1, -1 = undefined): mean valid precision over each group's classes, area all."""
    groups = frequency_indices(category_ids, frequency)
    return [_mean_valid(precision[:, :, groups[code], 0, -1]) for code in FREQUENCY_CODES]


def lvis_stats(precision: np.ndarray, recall: np.ndarray, *, iou_thrs, category_ids,
               frequency: Mapping[int, str] | None) -> list[float]:
    """The 13 LVIS summary numbers (0-1, -1 = undefined), ``LVIS_STAT_NAMES`` order."""
    iou_thrs = np.asarray(iou_thrs)
    p, r = precision[..., -1], recall[..., -1]
    at = lambda t: p[np.flatnonzero(np.isclose(iou_thrs, t))]
    freq = frequency_stats(precision, category_ids, frequency) if frequency else [-1.0] * 3
    return [_mean_valid(p[:, :, :, 0]), _mean_valid(at(0.5)[:, :, :, 0]), _mean_valid(at(0.75)[:, :, :, 0]),
            *[_mean_valid(p[:, :, :, a]) for a in (1, 2, 3)], *freq,
            *[_mean_valid(r[:, :, a]) for a in (0, 1, 2, 3)]]

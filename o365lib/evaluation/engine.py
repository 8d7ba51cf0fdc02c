"""COCO bbox evaluation on columns of numpy arrays, with pycocotools' arithmetic.

pycocotools' ``COCOeval`` (and faster-coco-eval, which copies it in C++) needs one Python dict per
detection; at Objects365 scale that alone is gigabytes. This module computes the same
``precision [T, R, K, A, M]`` and ``recall [T, K, A, M]`` arrays from arrays, and is pinned to
pycocotools in the tests (equal to 1e-12, in practice bit-equal). What it reproduces:

- per image and class, detections sorted by score (stable: ties keep input order) and cut at the
  last ``maxDets`` value; ``max_dets=None`` means no cut (fixed AP);
- IoU as ``maskApi.bbIou``: ``w = min(x1+w1, x2+w2) - max(x1, x2)`` etc., union = det area for a
  crowd ground truth;
- greedy matching per IoU threshold ``t`` in score order: a detection takes the unmatched
  ground truth with IoU >= t, preferring ground truth that is not ignored (crowd, or area outside
  the range); among equals the highest IoU, and on a tie the later annotation (pycocotools' ``>=``
  scan); crowd ground truth can be taken again;
- unmatched detections outside the area range are ignored, matched ones inherit the ignore flag
  of their ground truth; a match to an annotation with id 0 counts as unmatched (pycocotools
  tests ``dtm`` for truth);
- accumulation per class over all images, detections in stable score order (image order, then
  per-image order on ties), precision made monotone from the right and read at the 101 recall
  thresholds with ``searchsorted(side="left")``, -1 where a class has no non-ignored ground truth.

Matching is sequential only among detections of the same (image, class) pair, so it runs as a
wavefront: step ``j`` matches the ``j``-th detection of *every* pair at once, for all IoU
thresholds and area ranges together. Only (detection, ground truth) pairs with IoU >= the lowest
threshold are kept; the others can never match.
"""

from __future__ import annotations

import numpy as np

from o365lib.evaluation.columns import DetectionColumns, GroundTruthColumns

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e5 ** 2)}
_ENTRY_CHUNK = 1 << 22  # (detection, ground truth) IoUs computed per chunk


def bbox_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``[N, 4]`` xywh boxes, in ``maskApi.bbIou``'s operation order."""
    w = np.minimum(det[:, 2] + det[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(det[:, 0], gt[:, 0])
    h = np.minimum(det[:, 3] + det[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(det[:, 1], gt[:, 1])
    inter = w * h
    det_area = det[:, 2] * det[:, 3]
    union = np.where(crowd, det_area, det_area + gt[:, 2] * gt[:, 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else np.zeros(0, np.int64)


def _rank_in_group(keys: np.ndarray) -> np.ndarray:
    starts = _group_starts(keys)
    sizes = np.diff(np.r_[starts, keys.size])
    return np.arange(keys.size) - np.repeat(starts, sizes)


def coco_eval_columns(gt: GroundTruthColumns, dets: DetectionColumns, *, max_dets=(1, 10, 100),
                      areas=("all", "small", "medium", "large"), unmatched_ignored=None,
                      outcomes: bool = False) -> dict:
    """Standard COCO bbox evaluation of ``dets`` (image and category ids must be in ``gt``).

    Args:
        gt: ground truth columns (annotations of unknown images or categories are skipped, as
            pycocotools' ``getAnnIds`` does).
        dets: detections.
        max_dets: increasing per-image-and-class caps (COCO ``maxDets``), or ``None`` for one
            setting without any cap.
        areas: names from ``AREA_RANGES`` (index ``A`` of the arrays, in this order).
        unmatched_ignored: optional bool per detection (input order): if unmatched, the detection
            is ignored rather than a false positive (LVIS's not-exhaustively labelled classes).
        outcomes: also return ``"outcomes"``: per class (None for a class without counted ground
            truth), at area index 0 and the last cap, ``{"det_image" [n] (image positions),
            "tp" [T, n], "fp" [T, n]`` (bool, in accumulation order), ``"gt_image"`` [G']}`` (the
            image positions of its counted ground truth): what a bootstrap over images re-weights.

    Returns ``{"precision", "recall", "category_ids", "iou_thrs", "max_dets", "areas",
    "num_detections_evaluated"}``, same layout as pycocotools' ``eval`` arrays.
    """
    caps = [None] if max_dets is None else sorted(int(m) for m in max_dets)
    cap_last = caps[-1]
    T, R, K, A, M = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(gt.category_ids), len(areas), len(caps)
    num_images = len(gt.image_ids)
    ranges = np.array([AREA_RANGES[a] for a in areas])

    # ground truth sorted by (class, image), annotation order kept inside a pair
    g_img = np.searchsorted(gt.image_ids, gt.image_id)
    g_cls = np.searchsorted(gt.category_ids, gt.category_id)
    known = (g_img < num_images) & (g_cls < K)
    known &= gt.image_ids[np.minimum(g_img, num_images - 1)] == gt.image_id if num_images else known
    known &= gt.category_ids[np.minimum(g_cls, K - 1)] == gt.category_id if K else known
    g_order = np.flatnonzero(known)
    g_order = g_order[np.lexsort((g_order, g_img[g_order], g_cls[g_order]))]
    g_pair = g_cls[g_order] * num_images + g_img[g_order]
    g_box, g_crowd, g_area, g_id = (gt.bbox[g_order], gt.iscrowd[g_order], gt.area[g_order], gt.ann_id[g_order])
    g_flag = g_crowd if gt.ignore is None else g_crowd | gt.ignore[g_order]
    g_ignore = g_flag[None, :] | (g_area[None, :] < ranges[:, :1]) | (g_area[None, :] > ranges[:, 1:])  # [A, G]

    # detections sorted by (class, image, score desc, input order), cut per pair
    d_img = np.searchsorted(gt.image_ids, dets.image_id)
    d_cls = np.searchsorted(gt.category_ids, dets.category_id)
    order = np.lexsort((np.arange(len(dets)), -dets.score, d_img, d_cls))
    pair = d_cls[order] * num_images + d_img[order]
    rank = _rank_in_group(pair)
    if cap_last is not None:
        kept = rank < cap_last
        order, pair, rank = order[kept], pair[kept], rank[kept]
    d_box, d_score = dets.bbox[order], dets.score[order]
    d_free = np.zeros(len(order), bool) if unmatched_ignored is None else np.asarray(unmatched_ignored, bool)[order]
    d_cls_sorted, d_img_sorted = d_cls[order], d_img[order]
    del d_img, d_cls

    ent_det, ent_gt, ent_iou = _overlaps(pair, d_box, g_pair, g_box, g_crowd, IOU_THRESHOLDS.min())
    status, status_det = _match(ent_det, ent_gt, ent_iou, rank=rank, g_ignore=g_ignore, g_crowd=g_crowd,
                                g_id=g_id, num_gt=len(g_order), num_areas=A)
    del ent_det, ent_gt, ent_iou

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    det_area = d_box[:, 2] * d_box[:, 3]
    d_bounds = np.searchsorted(d_cls_sorted, np.arange(K + 1))
    g_cls_sorted = g_cls[g_order]
    g_bounds = np.searchsorted(g_cls_sorted, np.arange(K + 1))
    slot = np.full(len(order), -1, np.int64)
    slot[status_det] = np.arange(len(status_det))
    per_class_outcomes: list = [None] * K
    g_img_sorted = g_img[g_order]
    for k in range(K):
        lo, hi = d_bounds[k], d_bounds[k + 1]
        npig = (~g_ignore[:, g_bounds[k]:g_bounds[k + 1]]).sum(axis=1)  # [A]
        if not npig.any():
            continue
        o = lo + np.argsort(-d_score[lo:hi], kind="stable")
        st = np.zeros((A * T, o.size), np.int8)
        where = slot[o] >= 0
        st[:, where] = status[:, slot[o][where]]
        area, free = det_area[o], d_free[o]
        kept_by_cap = [None if cap is None or cap == cap_last else np.flatnonzero(rank[o] < cap) for cap in caps]
        for a in range(A):
            if npig[a] == 0:
                continue
            st_a = st[a * T:(a + 1) * T]
            counted = ~((area < ranges[a, 0]) | (area > ranges[a, 1]) | free)  # unmatched and ignored
            for m, keep in enumerate(kept_by_cap):
                st_m, counted_m = (st_a, counted) if keep is None else (st_a[:, keep], counted[keep])
                precision[:, :, k, a, m], recall[:, k, a, m] = _pr_curve(
                    st_m == 1, (st_m == 0) & counted_m[None, :], npig=int(npig[a]))
            if outcomes and a == 0:
                gk = slice(g_bounds[k], g_bounds[k + 1])
                per_class_outcomes[k] = {"det_image": d_img_sorted[o], "tp": st_a == 1,
                                         "fp": (st_a == 0) & counted[None, :],
                                         "gt_image": g_img_sorted[gk][~g_ignore[0, gk]]}
    return {"precision": precision, "recall": recall, "category_ids": [int(c) for c in gt.category_ids],
            "iou_thrs": IOU_THRESHOLDS.copy(), "max_dets": caps, "areas": list(areas),
            "num_detections_evaluated": len(order), **({"outcomes": per_class_outcomes} if outcomes else {})}


def _pr_curve(tp: np.ndarray, fp: np.ndarray, *, npig: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision at the recall thresholds [rows, R] and final recall [rows] (pycocotools).

    pycocotools builds recall and precision at every detection; both only change value at a true
    positive (recall is flat elsewhere and precision only falls), so the first detection reaching
    a recall threshold is a true positive and the precision envelope is its maximum over later
    true positives. Evaluating at the true positives alone gives the same numbers with the same
    arithmetic (``tp / (fp + tp + eps)`` in float64) on far shorter arrays. At its ``j``-th true
    positive every row has recall ``j / npig``, so one ``searchsorted`` serves all rows, and the
    envelope of all rows is one right-to-left running maximum over a zero-padded matrix.
    """
    rows, n = tp.shape
    q = np.zeros((rows, len(RECALL_THRESHOLDS)))
    recall = np.zeros(rows)
    if n == 0:
        return q, recall
    row_of, pos = np.nonzero(tp)
    counts = np.bincount(row_of, minlength=rows)
    k_max = int(counts.max()) if row_of.size else 0
    if k_max == 0:
        return q, recall
    fp_sum = np.cumsum(fp, axis=1, dtype=np.int64)[row_of, pos]
    col = np.arange(row_of.size) - np.repeat(np.cumsum(counts) - counts, counts)
    tp_sum = (col + 1).astype(float)
    envelope = np.zeros((rows, k_max))  # precision >= 0: the zero padding never raises a maximum
    envelope[row_of, col] = tp_sum / (fp_sum.astype(float) + tp_sum + np.spacing(1))
    envelope = np.maximum.accumulate(envelope[:, ::-1], axis=1)[:, ::-1]
    rc = np.arange(1, k_max + 1, dtype=float) / npig
    inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
    inside = inds[None, :] < counts[:, None]
    q[:] = np.where(inside, envelope[:, np.minimum(inds, k_max - 1)], 0.0)
    recall = np.where(counts > 0, counts.astype(float) / npig, 0.0)
    return q, recall


def _overlaps(pair, d_box, g_pair, g_box, g_crowd, min_iou):
    """(detection, ground truth, IoU) for every same-pair couple with IoU >= ``min_iou``."""
    lo = np.searchsorted(g_pair, pair, side="left")
    count = np.searchsorted(g_pair, pair, side="right") - lo
    candidates = np.flatnonzero(count)
    out_det, out_gt, out_iou = [], [], []
    ends = np.cumsum(count[candidates])
    start = 0
    while start < candidates.size:
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _ENTRY_CHUNK, side="right"))
        stop = max(stop, start + 1)
        dets = candidates[start:stop]
        n = count[dets]
        det_rep = np.repeat(dets, n)
        offset = np.arange(det_rep.size) - np.repeat(np.cumsum(n) - n, n)
        gts = np.repeat(lo[dets], n) + offset
        iou = bbox_iou(d_box[det_rep], g_box[gts], g_crowd[gts])
        keep = iou >= min_iou
        out_det.append(det_rep[keep]), out_gt.append(gts[keep]), out_iou.append(iou[keep])
        start = stop
    if not out_det:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_det), np.concatenate(out_gt), np.concatenate(out_iou)


def _match(ent_det, ent_gt, ent_iou, *, rank, g_ignore, g_crowd, g_id, num_gt, num_areas):
    """Greedy COCO matching as a wavefront over per-pair detection rank.

    Returns ``status [A*T, D']`` (0 unmatched, 1 matched to counted ground truth, 2 matched to
    ignored ground truth) for the detections ``status_det [D']`` that overlap any ground truth;
    row ``a * T + t`` is area range ``a`` at IoU threshold ``t``.
    """
    T = len(IOU_THRESHOLDS)
    thr = np.tile(np.minimum(IOU_THRESHOLDS, 1 - 1e-10), num_areas)[:, None]  # [AT, 1]
    status_det, ent_slot = np.unique(ent_det, return_inverse=True)
    status = np.zeros((num_areas * T, status_det.size), np.int8)
    taken = np.zeros((num_areas * T, num_gt), bool)
    steps = np.argsort(rank[ent_det], kind="stable")  # by rank, then detection, then ground truth
    step_rank = rank[ent_det[steps]]
    bounds = np.searchsorted(step_rank, np.arange(int(step_rank[-1]) + 2)) if steps.size else [0]
    for j in range(len(bounds) - 1):
        sel = steps[bounds[j]:bounds[j + 1]]
        if sel.size == 0:
            continue
        e_gt, e_iou, e_slot = ent_gt[sel], ent_iou[sel], ent_slot[sel]
        ignore = np.repeat(g_ignore[:, e_gt], T, axis=0)  # [AT, E]
        group = ((e_iou[None, :] >= thr) & ~taken[:, e_gt]).astype(np.int8) * (2 - ignore.astype(np.int8))
        starts = _group_starts(e_slot)
        seg = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, e_slot.size]))
        best_group = np.maximum.reduceat(group, starts, axis=1)
        in_group = (group == best_group[:, seg]) & (group > 0)
        value = np.where(in_group, e_iou[None, :], -1.0)
        best = in_group & (value == np.maximum.reduceat(value, starts, axis=1)[:, seg])
        pick = np.maximum.reduceat(np.where(best, np.arange(sel.size), -1), starts, axis=1)  # last best
        rows, segs = np.nonzero(pick >= 0)
        chosen = pick[rows, segs]
        g = e_gt[chosen]
        was_ignored = ignore[rows, chosen]
        status[rows, e_slot[starts[segs]]] = np.where(was_ignored, 2, np.where(g_id[g] != 0, 1, 0))
        reusable = g_crowd[g]
        taken[rows[~reusable], g[~reusable]] = True
    return status, status_det

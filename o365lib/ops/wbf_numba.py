"""Weighted boxes fusion as one compiled loop (numba): the fast CPU path of WBF.

One call does the whole fusion of flat arrays (many models and, optionally, many images):
NaN check, ensemble-boxes' pre-filter (skip ``score < skip_box_threshold``, order corners,
clip to [0, 1], skip zero-area boxes), a stable sort into (image, label) groups by
``score * weight`` descending, the sequential cluster visit, the ``conf_type`` rescaling and
the final ordering.  A group of ``n`` boxes with ``k`` clusters costs ``O(n * k)``.

Arithmetic replays ensemble-boxes 1.0.9 ``weighted_boxes_fusion`` operation by operation:
its fused box is a *float32* accumulator of ``s * w * coordinate`` (numpy adds in float64,
then rounds into the float32 array) divided by the float64 score sum and rounded to float32;
a merged cluster stores its score and weight sum as float32, a singleton keeps float64
values.  IoU against the current fused box uses its expression order.  Even its NaN case is
replayed: a cluster whose members all score 0 has a 0 / 0 = NaN fused box, and numpy's
``argmax`` then matches the label's next box to it whatever the overlap.  The torch backend
(:mod:`o365lib.ops.wbf_torch`) does the same roundings, so the backends agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from o365lib.ops.soft_nms_numba import _has_nan

__all__ = ["CONF_CODES", "wbf_arrays"]

CONF_CODES = {"avg": 0, "max": 1, "box_and_model_avg": 2, "absent_model_aware_avg": 3}


@njit(cache=True, nogil=True)
def _prefilter(boxes, scores, skip_box_threshold):
    """Indices of the boxes ensemble-boxes keeps, and all boxes ordered, clipped, with areas."""
    n = scores.shape[0]
    b = np.empty((n, 5))
    kept = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        x1 = min(max(min(boxes[i, 0], boxes[i, 2]), 0.0), 1.0)
        y1 = min(max(min(boxes[i, 1], boxes[i, 3]), 0.0), 1.0)
        x2 = min(max(max(boxes[i, 0], boxes[i, 2]), 0.0), 1.0)
        y2 = min(max(max(boxes[i, 1], boxes[i, 3]), 0.0), 1.0)
        area = (x2 - x1) * (y2 - y1)
        b[i, 0], b[i, 1], b[i, 2], b[i, 3], b[i, 4] = x1, y1, x2, y2, area
        if scores[i] >= skip_box_threshold and area != 0.0:
            kept[k] = i
            k += 1
    return kept[:k], b


@njit(cache=True, nogil=True)
def _group_order(sw, labels, image_ids):
    """Visit order: by (image, label) group, then ``sw`` descending, ties in input order."""
    k = sw.shape[0]
    if k == 0:
        return np.empty(0, np.int64)
    lab_lo, lab_hi, img_lo, img_hi = labels.min(), labels.max(), image_ids.min(), image_ids.max()
    lab_span, img_span = lab_hi - lab_lo + 1, img_hi - img_lo + 1
    if lab_span <= 0 or img_span <= 0 or img_span > (1 << 62) // lab_span:  # no composite key
        order = np.argsort(-sw, kind="mergesort")
        order = order[np.argsort(labels[order], kind="mergesort")]
        return order[np.argsort(image_ids[order], kind="mergesort")]
    key = (image_ids - img_lo) * lab_span + (labels - lab_lo)
    order = np.argsort(key, kind="mergesort")  # one stable integer sort makes the groups
    start = 0
    while start < k:  # then each (small) group by sw descending, stable
        end = start + 1
        while end < k and key[order[end]] == key[order[start]]:
            end += 1
        if end - start > 32:
            seg = order[start:end]
            order[start:end] = seg[np.argsort(-sw[seg], kind="mergesort")]
        else:
            for a in range(start + 1, end):  # insertion sort
                item, b = order[a], a
                while b > start and sw[order[b - 1]] < sw[item]:
                    order[b] = order[b - 1]
                    b -= 1
                order[b] = item
        start = end
    return order


@njit(cache=True, nogil=True, error_model="numpy")  # 0 / 0 is NaN, as in numpy
def _kernel(boxes, scores, labels, model_ids, image_ids, weights, iou_threshold, skip_box_threshold,
            conf_code, allow_overflow, clip_scores):  # fmt: skip
    num_models = weights.shape[0]
    kept, b = _prefilter(boxes, scores, skip_box_threshold)
    k = kept.shape[0]
    sw = np.empty(k)
    for j in range(k):
        sw[j] = scores[kept[j]] * weights[model_ids[kept[j]]]
    order = _group_order(sw, labels[kept], image_ids[kept])

    acc = np.zeros((k, 4), np.float32)  # ensemble-boxes' float32 accumulator of s*w*box
    rep = np.empty((k, 5))  # current fused box and its area
    conf, w_sum, max_sw = np.empty(k), np.empty(k), np.empty(k)
    count = np.zeros(k, np.int64)
    present = np.zeros((k, num_models), np.bool_)
    c_label, c_image = np.empty(k, np.int64), np.empty(k, np.int64)
    nc, first = 0, 0  # clusters so far, first cluster of the current group
    for j in range(k):
        i = kept[order[j]]
        s, w, m = sw[order[j]], weights[model_ids[i]], model_ids[i]
        if j == 0 or labels[i] != c_label[nc - 1] or image_ids[i] != c_image[nc - 1]:
            first = nc
        best, best_iou = -1, -np.inf
        for c in range(first, nc):  # np.argmax of IoU with the current fused boxes
            if np.isnan(rep[c, 4]):  # np.argmax takes the first NaN, and NaN <= thr is False
                best, best_iou = c, np.inf
                break
            xa = max(rep[c, 0], b[i, 0])
            ya = max(rep[c, 1], b[i, 1])
            xb = min(rep[c, 2], b[i, 2])
            yb = min(rep[c, 3], b[i, 3])
            inter = max(xb - xa, 0.0) * max(yb - ya, 0.0)
            iou = inter / (rep[c, 4] + b[i, 4] - inter)
            if iou > best_iou:
                best, best_iou = c, iou
        if best >= 0 and best_iou > iou_threshold:
            c = best
            for d in range(4):
                acc[c, d] = np.float32(np.float64(acc[c, d]) + s * b[i, d])
            conf[c] += s
            w_sum[c] += w
            max_sw[c] = max(max_sw[c], s)
            count[c] += 1
            for d in range(4):
                rep[c, d] = np.float64(np.float32(np.float64(acc[c, d]) / conf[c]))
            rep[c, 4] = (rep[c, 2] - rep[c, 0]) * (rep[c, 3] - rep[c, 1])
        else:
            c = nc
            nc += 1
            for d in range(4):
                acc[c, d] = np.float32(s * b[i, d])
                rep[c, d] = b[i, d]
            rep[c, 4] = b[i, 4]
            conf[c], w_sum[c], max_sw[c], count[c] = s, w, s, 1
            c_label[c], c_image[c] = labels[i], image_ids[i]
        present[c, m] = True

    total, w_max = 0.0, -np.inf
    for m in range(num_models):
        total += weights[m]
        w_max = max(w_max, weights[m])
    out_scores = np.empty(nc)
    for c in range(nc):
        n = count[c]
        merged = n > 1
        if conf_code == 1:
            score = np.float64(np.float32(max_sw[c])) if merged else max_sw[c]
        else:
            score = np.float64(np.float32(conf[c] / n)) if merged else conf[c]
        w_c = np.float64(np.float32(w_sum[c])) if merged else w_sum[c]
        if conf_code == 0:
            score = score * (n if allow_overflow else min(num_models, n)) / total
        elif conf_code == 1:
            score = score / w_max
        else:
            in_sum, out_sum = 0.0, 0.0
            for m in range(num_models):
                if present[c, m]:
                    in_sum += weights[m]
                else:
                    out_sum += weights[m]
            if conf_code == 2:
                score = score * n / w_c * in_sum / total
            else:
                score = score * n / (w_c + out_sum)
        out_scores[c] = min(score, 1.0) if clip_scores else score
    # by image, then score descending; ties keep (label, cluster creation) order
    final = np.argsort(-out_scores, kind="mergesort")
    final = final[np.argsort(c_image[:nc][final], kind="mergesort")]
    return (rep[final, :4].astype(np.float32), out_scores[final].astype(np.float32),
            c_label[final], c_image[final])  # fmt: skip


def wbf_arrays(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    model_ids: np.ndarray,
    image_ids: np.ndarray,
    weights: np.ndarray,
    iou_threshold: float,
    skip_box_threshold: float,
    conf_type: str,
    clip_scores: bool,
    allow_overflow: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """WBF of flat numpy arrays (arguments already checked by the public functions).

    Args:
        boxes ``[N, 4]``, scores, labels, model_ids, image_ids ``[N]``; weights ``[num_models]``.
        Other arguments as :func:`o365lib.tta.batched_weighted_boxes_fusion`.

    Returns:
        ``(boxes float32 [K, 4], scores float32, labels int64, image_ids int64)`` sorted by image,
        then score descending (ties: label, then cluster creation order).

    Raises:
        ValueError: boxes or scores contain NaN.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    if _has_nan(boxes, scores):
        raise ValueError("weighted_boxes_fusion: boxes or scores contain NaN")
    return _kernel(
        boxes,
        scores,
        np.ascontiguousarray(labels, dtype=np.int64),
        np.ascontiguousarray(model_ids, dtype=np.int64),
        np.ascontiguousarray(image_ids, dtype=np.int64),
        np.ascontiguousarray(weights, dtype=np.float64),
        float(iou_threshold),
        float(skip_box_threshold),
        CONF_CODES[conf_type],
        bool(allow_overflow),
        bool(clip_scores),
    )

"""Soft-NMS as one compiled loop (numba) over numpy arrays: the fast CPU path of :func:`soft_nms`.

One call does everything after argument checks: NaN check, the ``score > score_threshold``
pre-filter, corner ordering, a stable grouping by label, the sequential soft-NMS of every
group and the final ordering.  Each group costs ``O(n**2)`` scalar operations and ``O(n)``
memory (IoUs are computed on the fly), so a single huge class needs no ``n x n`` matrix.

Arithmetic follows the torch path (:func:`o365lib.ops.soft_nms.box_iou_matrix` and its decay)
expression by expression in float64, so both give the same kept boxes and, up to the last bit
of ``exp``, the same scores.  Compiled functions are cached on disk (``cache=True``): the
first call in a fresh environment compiles for about a second, later processes load the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["METHOD_CODES", "soft_nms_arrays"]

METHOD_CODES = {"linear": 1, "gaussian": 2}


@njit(cache=True, nogil=True)
def _has_nan(boxes, scores):
    for i in range(scores.shape[0]):
        if np.isnan(scores[i]):
            return True
        for d in range(4):
            if np.isnan(boxes[i, d]):
                return True
    return False


@njit(cache=True, nogil=True)
def _kernel(boxes, scores, labels, method, iou_threshold, sigma, score_threshold, candidate_threshold):
    n = scores.shape[0]
    cand = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if scores[i] > candidate_threshold:
            cand[m] = i
            m += 1
    cand = cand[:m]
    order = cand[np.argsort(labels[cand], kind="mergesort")]  # stable: input order within a label
    x1, y1 = np.empty(m), np.empty(m)
    x2, y2 = np.empty(m), np.empty(m)
    area, cur = np.empty(m), np.empty(m)
    for k in range(m):
        i = order[k]
        x1[k] = min(boxes[i, 0], boxes[i, 2])
        y1[k] = min(boxes[i, 1], boxes[i, 3])
        x2[k] = max(boxes[i, 0], boxes[i, 2])
        y2[k] = max(boxes[i, 1], boxes[i, 3])
        area[k] = (x2[k] - x1[k]) * (y2[k] - y1[k])
        cur[k] = scores[i]
    alive = np.empty(m, np.int64)  # the group's boxes still above the threshold, in input order
    keep = np.empty(m, np.int64)
    new = np.empty(m)
    nk = 0
    start = 0
    while start < m:
        end = start + 1
        while end < m and labels[order[end]] == labels[order[start]]:
            end += 1
        n_alive = end - start
        for j in range(n_alive):
            alive[j] = start + j
        while n_alive > 0:
            best, best_val = -1, -np.inf
            for a in range(n_alive):  # arg-max, lowest input index among ties
                if cur[alive[a]] > best_val:
                    best, best_val = alive[a], cur[alive[a]]
            keep[nk] = order[best]
            new[nk] = best_val
            nk += 1
            # decay the others; drop those at or below the threshold (scores only decay, and a
            # dropped box would be selected only after every kept one, and not kept)
            w = 0
            for a in range(n_alive):
                j = alive[a]
                if j == best:
                    continue
                iw = min(x2[best], x2[j]) - max(x1[best], x1[j])
                ih = min(y2[best], y2[j]) - max(y1[best], y1[j])
                if iw > 0.0 and ih > 0.0:  # else IoU 0: both decays are exactly 1
                    inter = iw * ih
                    union = area[best] + area[j] - inter
                    iou = inter / union if union > 0 else 0.0
                    if method == 2:
                        cur[j] = cur[j] * np.exp(-(iou * iou) / sigma)
                    elif iou > iou_threshold:
                        cur[j] = cur[j] * (1.0 - iou)
                if cur[j] > score_threshold:
                    alive[w] = j
                    w += 1
            n_alive = w
        start = end
    keep, new = keep[:nk], new[:nk]
    by_index = np.argsort(keep)  # ties in score: lowest input index first
    keep, new = keep[by_index], new[by_index]
    by_score = np.argsort(-new, kind="mergesort")
    return keep[by_score], new[by_score]


def soft_nms_arrays(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    method: str,
    iou_threshold: float,
    sigma: float,
    score_threshold: float,
    candidate_threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS on numpy arrays (already shape-checked by :func:`soft_nms`).

    Args:
        boxes: ``[N, 4]`` xyxy, any float dtype; scores ``[N]``; labels ``[N]`` integers.
        method, iou_threshold, sigma, score_threshold: as :func:`o365lib.ops.soft_nms`.
        candidate_threshold: the up-front filter ``score > candidate_threshold`` on the input
            scores (default ``score_threshold``); :func:`soft_nms` passes ``score_threshold``
            rounded to the scores' dtype, the comparison torch makes (float32 0.001 is not kept).

    Returns:
        ``(keep int64, new_scores float64)`` sorted by new score descending, ties by index.

    Raises:
        ValueError: boxes or scores contain NaN.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float64)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if _has_nan(boxes, scores):
        raise ValueError("soft_nms: boxes or scores contain NaN")
    return _kernel(
        boxes,
        scores,
        labels,
        METHOD_CODES[method],
        float(iou_threshold),
        float(sigma),
        float(score_threshold),
        float(score_threshold if candidate_threshold is None else candidate_threshold),
    )

"""``top_k_per_group``: keep the K highest-scoring detections of each image (or of each class).

The one implementation of the per-image cap, used by test-time augmentation and ensembles
(:func:`o365lib.tta.fuse_detections`), the expert merge, the book's stored results, the LVIS
protocol (per image) and fixed AP (per class). NumPy only, so evaluation stays free of torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_k_per_group"]


def top_k_per_group(scores, groups, k: int) -> np.ndarray:
    """Indices of each group's ``k`` highest ``scores``, ordered by group, then score descending.

    Ties in score keep their input order (a stable sort, the order COCO's evaluation uses).
    ``groups`` holds one sortable id per score (an image id, a category id).
    """
    scores, groups = np.asarray(scores), np.asarray(groups)
    n = len(scores)
    order = np.lexsort((-scores, groups))  # stable: the last key sorts first
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) if n else np.zeros(0, np.int64)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    return order[rank < int(k)]

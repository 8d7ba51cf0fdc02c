"""Fusion of two models' detections of the same classes: the expert merge's ``fuse`` strategy.

Detections are column arrays (``image_id``, ``category_id``, ``bbox`` as ``[x, y, w, h]``,
``score``), as :mod:`o365lib.experts` holds them. Beside soft-NMS and WBF, this is the third box
fusion of the project: it weighs a specialist (the expert) against a generalist per matched pair.
"""

from __future__ import annotations

import numpy as np


def select_rows(arrays: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in arrays.items()}


def concat_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in ("image_id", "category_id", "bbox", "score")}


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of [x, y, w, h] boxes, shape [len(a), len(b)]."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def fuse_pair(general: dict[str, np.ndarray], expert: dict[str, np.ndarray], *, iou_threshold: float,
               expert_weight: float) -> dict[str, np.ndarray]:
    """Fuse two models' detections of the same classes, image by image (``o365lib.experts.merge_experts``).

    Same-class pairs with IoU >= ``iou_threshold`` are matched greedily, strongest ``expert`` box
    first; a pair becomes one box, the score-weighted mean of the two (the expert's weight times
    ``expert_weight``), scored ``(w * s_expert + s_general) / (1 + w)``; unmatched boxes keep their
    own box with the score scaled the same way.
    """
    w = float(expert_weight)
    general = select_rows(general, np.argsort(general["image_id"], kind="stable"))
    expert = select_rows(expert, np.argsort(expert["image_id"], kind="stable"))
    parts = []
    for img in np.union1d(general["image_id"], expert["image_id"]):
        g_lo, g_hi = np.searchsorted(general["image_id"], [img, img + 1])
        e_lo, e_hi = np.searchsorted(expert["image_id"], [img, img + 1])
        g = {k: v[g_lo:g_hi] for k, v in general.items()}
        e = {k: v[e_lo:e_hi] for k, v in expert.items()}
        iou = iou_xywh(e["bbox"], g["bbox"])
        iou[e["category_id"][:, None] != g["category_id"][None]] = -1.0  # only same-class pairs match
        g_taken = np.zeros(len(g["score"]), dtype=bool)
        partner = np.full(len(e["score"]), -1)
        for i in np.argsort(-e["score"], kind="stable"):  # greedy: strongest expert boxes choose first
            row = np.where(g_taken, -1.0, iou[i])
            j = int(np.argmax(row)) if row.size else -1
            if j >= 0 and row[j] >= iou_threshold:
                partner[i], g_taken[j] = j, True
        matched = partner >= 0
        se, sg = e["score"][matched], g["score"][partner[matched]]
        we, wg = w * se, sg.copy()
        zero = (we + wg) <= 0  # both weights 0: plain mean of the two boxes
        we[zero], wg[zero] = 1.0, 1.0
        fused_box = (we[:, None] * e["bbox"][matched] + wg[:, None] * g["bbox"][partner[matched]]) \
            / (we + wg)[:, None]
        parts.append({"image_id": e["image_id"][matched], "category_id": e["category_id"][matched],
                      "bbox": fused_box, "score": (w * se + sg) / (1 + w)})
        parts.append({**select_rows(e, ~matched), "score": w * e["score"][~matched] / (1 + w)})
        parts.append({**select_rows(g, ~g_taken), "score": g["score"][~g_taken] / (1 + w)})
    if not parts:
        return select_rows(general, np.zeros(len(general["score"]), dtype=bool))
    return concat_rows(parts)

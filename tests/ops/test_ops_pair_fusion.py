"""o365lib.ops.pair_fusion: the expert merge's pairwise fusion, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from o365lib.ops.pair_fusion import fuse_pair, iou_xywh


def _dets(image, category, boxes, scores):
    return {"image_id": np.full(len(scores), image, dtype=np.int64), "category_id": np.full(len(scores), category),
            "bbox": np.array(boxes, dtype=np.float64).reshape(-1, 4), "score": np.array(scores, dtype=np.float64)}


def test_iou_of_xywh_boxes():
    iou = iou_xywh(np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 0, 10, 10], [20.0, 20, 1, 1]]))
    assert iou[0, 0] == pytest.approx(50 / 150) and iou[0, 1] == 0.0


def test_a_matched_pair_becomes_one_weighted_box():
    general = _dets(1, 3, [[0, 0, 10, 10]], [0.4])
    expert = _dets(1, 3, [[2, 0, 10, 10], [50, 50, 5, 5]], [0.8, 0.6])
    fused = fuse_pair(general, expert, iou_threshold=0.5, expert_weight=1.0)
    order = np.argsort(-fused["score"])
    assert fused["score"][order].tolist() == pytest.approx([(0.8 + 0.4) / 2, 0.6 / 2])
    w_e, w_g = 0.8, 0.4  # box weights: score times the model's weight
    assert fused["bbox"][order[0]].tolist() == pytest.approx([(w_e * 2 + w_g * 0) / (w_e + w_g), 0, 10, 10])

"""top_k_per_group: the one "K highest-scoring detections per image (or class)", ties in input order.

The references below are the implementations it replaced (the book's per-image cap in Python, the
TTA's in torch); its callers must keep their outputs, tie order included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from o365lib.book.artefacts.predictions import cap_per_image
from o365lib.evaluation.columns import DetectionColumns
from o365lib.evaluation.fixed_ap import top_k_per_class
from o365lib.evaluation.lvis import cap_per_image as lvis_cap_per_image
from o365lib.experts import merge_experts
from o365lib.ops import top_k_per_group
from o365lib.tta import fuse_detections


def _python_reference(scores, groups, k):
    """Per group in increasing order, a stable sort by descending score, the first k."""
    out = []
    for group in sorted(set(groups)):
        members = [i for i in range(len(scores)) if groups[i] == group]
        out.extend(sorted(members, key=lambda i: -scores[i])[:k])
    return out


def _torch_reference(scores, image_ids, max_dets):
    """The TTA's former ``top_per_image``."""
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(image_ids[order], stable=True)]
    img = image_ids[order]
    if img.numel() == 0:
        return order
    _, counts = torch.unique_consecutive(img, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.arange(img.numel()) - starts
    return order[rank < max_dets]


def _tied(n, seed):
    """Scores from few values (many ties) and unsorted group ids."""
    rng = np.random.default_rng(seed)
    return rng.choice([0.1, 0.5, 0.5, 0.9], size=n).astype(np.float32), rng.integers(0, 5, size=n) * 7


@pytest.mark.parametrize("k", [0, 1, 2, 5, 100])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_stable_sort_per_group(k, seed):
    scores, groups = _tied(60, seed)
    got = top_k_per_group(scores, groups, k)
    assert got.tolist() == _python_reference(scores.tolist(), groups.tolist(), k)
    assert got.tolist() == _torch_reference(torch.from_numpy(scores), torch.from_numpy(groups), k).tolist()


def test_empty_input():
    assert top_k_per_group(np.zeros(0), np.zeros(0, np.int64), 3).tolist() == []


def test_the_book_cap_keeps_its_order_of_images_and_ties():
    scores, groups = _tied(40, 3)
    results = [{"image_id": int(g), "score": float(s), "row": i} for i, (s, g) in enumerate(zip(scores, groups))]

    def former(results, max_dets):  # the book's own implementation before top_k_per_group
        by_image: dict = {}
        for r in results:
            by_image.setdefault(r["image_id"], []).append(r)
        return [r for items in by_image.values() for r in sorted(items, key=lambda r: -r["score"])[:max_dets]]

    for k in (0, 1, 3, 50):
        assert [r["row"] for r in cap_per_image(results, k)] == [r["row"] for r in former(results, k)]


def test_evaluation_caps_are_the_top_k_in_input_order():
    scores, groups = _tied(50, 4)
    dets = DetectionColumns(image_id=groups, category_id=groups[::-1].copy(), bbox=np.ones((50, 4)),
                            score=scores.astype(np.float64))
    assert lvis_cap_per_image(dets, max_dets=2).tolist() == sorted(_python_reference(scores, groups, 2))
    assert top_k_per_class(dets, k=3).tolist() == sorted(_python_reference(scores, groups[::-1].tolist(), 3))


def test_fused_detections_are_capped_per_image_like_before():
    scores, groups = _tied(30, 5)
    boxes = torch.tensor([[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(30)])  # no overlaps: NMS keeps all
    out = fuse_detections(boxes, torch.from_numpy(scores), torch.ones(30, dtype=torch.long),
                          image_ids=torch.from_numpy(groups), source_ids=torch.zeros(30, dtype=torch.long),
                          num_sources=1, method="nms", iou_threshold=0.5, max_dets=2, score_threshold=0.0)
    expected = _torch_reference(torch.from_numpy(scores), torch.from_numpy(groups), 2)
    assert out[1].tolist() == torch.from_numpy(scores)[expected].tolist()
    assert out[3].tolist() == torch.from_numpy(groups)[expected].tolist()


def test_expert_merge_keeps_the_best_of_each_image():
    general = [{"image_id": int(g), "category_id": 1, "bbox": [float(i), 0.0, 1.0, 1.0], "score": float(s)}
               for i, (s, g) in enumerate(zip(*_tied(30, 6)))]
    merged = merge_experts(general, [], max_dets=2)
    rows = _python_reference([r["score"] for r in general], [r["image_id"] for r in general], 2)
    assert [r["bbox"][0] for r in merged] == [general[i]["bbox"][0] for i in rows]


@pytest.mark.slow
def test_evaluation_and_the_numpy_ops_import_without_torch():
    """``o365lib.ops`` loads its names on use: the evaluation's cap does not pull torch in."""
    import subprocess
    import sys

    code = ("import sys, o365lib.evaluation, o365lib.evaluation.lvis, o365lib.ops.top_k, o365lib.ops.pair_fusion; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

"""ensemble_results on COCO results lists: idempotence, weights, WBF numbers, errors."""

import math

import pytest
import torch

from o365lib.tta import ensemble_results, fuse_detections

SIZES = {1: (200, 100), 2: (64, 64)}


def grid_results():
    """Non-overlapping boxes (a grid), two images, two categories, distinct scores."""
    out, k = [], 0
    for image_id in (1, 2):
        for row in range(2):
            for col in range(3):
                k += 1
                out.append({
                    "image_id": image_id,
                    "category_id": 5 if (row + col) % 2 else 9,
                    "bbox": [2.0 + 20 * col, 2.0 + 25 * row, 15.0, 20.0],
                    "score": round(0.95 - 0.05 * k, 4),
                })  # fmt: skip
    return out


def key(results):
    return sorted((r["image_id"], r["category_id"], tuple(round(v, 4) for v in r["bbox"]), round(r["score"], 5))
                  for r in results)  # fmt: skip


@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_identical_lists_are_idempotent(method):
    r = grid_results()
    fused = ensemble_results([r, r, r], method=method, image_sizes=SIZES)
    assert key(fused) == key(r)
    assert [f["image_id"] for f in fused] == sorted(f["image_id"] for f in fused)


def test_soft_nms_identical_lists_keep_originals_and_decay_copies():
    r = grid_results()
    fused = ensemble_results([r, r], method="soft_nms", max_dets=100)
    assert len(fused) == 2 * len(r)
    originals = {(d["image_id"], tuple(d["bbox"]), d["score"]) for d in r}
    top = {(d["image_id"], tuple(d["bbox"]), round(d["score"], 6)) for d in fused}
    assert {(i, b, round(s, 6)) for i, b, s in originals} <= top
    decayed = sorted(d["score"] for d in fused)[: len(r)]
    assert decayed == pytest.approx(sorted(d["score"] * math.exp(-2.0) for d in r), abs=1e-6)


def test_wbf_numbers_in_pixels():
    a = [{"image_id": 1, "category_id": 3, "bbox": [10.0, 10.0, 40.0, 40.0], "score": 0.8}]
    b = [{"image_id": 1, "category_id": 3, "bbox": [12.0, 10.0, 38.0, 40.0], "score": 0.6}]
    (fused,) = ensemble_results([a, b], method="wbf", image_sizes=SIZES)
    assert fused["bbox"][0] == pytest.approx((0.8 * 10 + 0.6 * 12) / 1.4, abs=1e-4)
    assert fused["bbox"][0] + fused["bbox"][2] == pytest.approx(50.0, abs=1e-4)  # x2
    assert fused["score"] == pytest.approx(0.7)
    # absent from one of two models: WBF 'avg' halves the score
    (alone,) = ensemble_results([a, []], method="wbf", image_sizes=SIZES)
    assert alone["score"] == pytest.approx(0.4)
    # weights: (s*w) mean * min(2, 2) / sum(w)
    (weighted,) = ensemble_results([a, b], method="wbf", weights=[3, 1], image_sizes=SIZES)
    assert weighted["score"] == pytest.approx((0.8 * 3 + 0.6) / 2 * 2 / 4)


def test_nms_weights_and_max_dets():
    r = grid_results()
    shifted = [{**d, "score": d["score"] + 0.01} for d in r]
    fused = ensemble_results([r, shifted], method="nms", weights=[1.0, 0.5])
    # model 1's scores are halved, so model 0's box wins every pair
    assert key(fused) == key(r)
    capped = ensemble_results([r], method="nms", max_dets=2)
    assert [d["image_id"] for d in capped] == [1, 1, 2, 2]
    assert [d["score"] for d in capped] == sorted((d["score"] for d in capped if d["image_id"] == 1), reverse=True) + \
        sorted((d["score"] for d in capped if d["image_id"] == 2), reverse=True)  # fmt: skip


def test_errors_and_empty():
    r = grid_results()
    with pytest.raises(ValueError, match="image_sizes"):
        ensemble_results([r], method="wbf")
    with pytest.raises(ValueError, match="image_id=2"):
        ensemble_results([r], method="wbf", image_sizes={1: (200, 100)})
    with pytest.raises(ValueError, match="method"):
        ensemble_results([r], method="vote", image_sizes=SIZES)
    with pytest.raises(ValueError, match="bbox"):
        ensemble_results([[{"image_id": 1, "score": 0.5}]], method="nms")
    assert ensemble_results([[], []], method="nms") == []


def test_fuse_detections_wbf_restores_each_image_scale():
    boxes = torch.tensor([[10.0, 10.0, 50.0, 50.0], [10.0, 10.0, 50.0, 50.0]])
    out = fuse_detections(
        boxes, torch.tensor([0.5, 0.7]), torch.tensor([1, 1]), image_ids=torch.tensor([4, 9]),
        source_ids=torch.tensor([0, 0]), num_sources=1, method="wbf",
        image_sizes=torch.tensor([[100.0, 60.0], [400.0, 300.0]]),
    )  # fmt: skip
    assert out[3].tolist() == [4, 9]
    torch.testing.assert_close(out[0], boxes)

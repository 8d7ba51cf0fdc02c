"""weighted_boxes_fusion against ensemble-boxes 1.0.9, the score overflow fix, batching."""

import warnings

import numpy as np
import pytest
import torch

from o365lib.tta import CONF_TYPES, batched_weighted_boxes_fusion, weighted_boxes_fusion

eb = pytest.importorskip("ensemble_boxes")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_models(seed, num_models, max_boxes=50, num_labels=4):
    rng = np.random.default_rng(seed)
    boxes, scores, labels = [], [], []
    objects = rng.uniform(0.15, 0.85, (6, 2))
    for _ in range(num_models):
        n = int(rng.integers(0, max_boxes))
        centre = objects[rng.integers(0, 6, n)] + rng.normal(0, 0.03, (n, 2))
        half = rng.uniform(0.03, 0.15, (n, 2))
        boxes.append(np.concatenate([centre - half, centre + half], 1).clip(0, 1).astype(np.float32))
        scores.append(rng.uniform(0, 1, n).astype(np.float32))
        labels.append(rng.integers(0, num_labels, n))
    return boxes, scores, labels


def rows(boxes, scores, labels):
    """(label, score, box) rows sorted, to compare independently of tie order."""
    to_np = lambda x: x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    r = np.concatenate([to_np(labels)[:, None], to_np(scores)[:, None], to_np(boxes)], 1).astype(np.float64)
    return r[np.lexsort(r.T[::-1])]


def eb_wbf(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eb.weighted_boxes_fusion(*args, **kw)


def assert_rows_close(got, expected):
    assert got.shape == expected.shape
    assert np.array_equal(got[:, 0], expected[:, 0])
    np.testing.assert_allclose(got[:, 1], expected[:, 1], atol=1e-5)
    np.testing.assert_allclose(got[:, 2:], expected[:, 2:], atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("conf_type", CONF_TYPES)
@pytest.mark.parametrize("seed", range(5))
def test_matches_ensemble_boxes(device, conf_type, seed):
    boxes, scores, labels = random_models(seed, num_models=1 + seed % 3)
    weights = [1.0, 2.5, 0.7][: len(boxes)] if seed % 2 else None
    iou_thr, skip = [(0.55, 0.0), (0.4, 0.2), (0.7, 0.05)][seed % 3]
    expected = eb_wbf(
        boxes, scores, labels, weights=weights, iou_thr=iou_thr, skip_box_thr=skip, conf_type=conf_type
    )
    got = weighted_boxes_fusion(
        [torch.tensor(b, device=device) for b in boxes],
        [torch.tensor(s, device=device) for s in scores],
        [torch.tensor(lab, device=device) for lab in labels],
        weights=weights,
        iou_threshold=iou_thr,
        skip_box_threshold=skip,
        conf_type=conf_type,
    )
    assert got[0].device.type == device
    assert bool((got[1][:-1] >= got[1][1:]).all())
    assert len(expected[0]) > 0
    assert_rows_close(rows(*got), rows(*expected))


def test_allow_overflow_and_numpy_inputs_match():
    boxes, scores, labels = random_models(7, num_models=3)
    for overflow in (False, True):
        expected = eb_wbf(boxes, scores, labels, allows_overflow=overflow)
        got = weighted_boxes_fusion(boxes, scores, labels, allow_overflow=overflow)
        assert_rows_close(rows(*got), rows(*expected))


def test_hand_computed_fusion_and_clip_scores():
    # model 0 (weight 2) has two near-identical boxes at 0.9, model 1 (weight 1) one at 0.6
    boxes = [np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.52]]), np.array([[0.12, 0.1, 0.5, 0.5]])]
    scores = [np.array([0.9, 0.9]), np.array([0.6])]
    labels = [np.array([0, 0]), np.array([0])]
    b, s, _lab = weighted_boxes_fusion(boxes, scores, labels, weights=[2, 1])
    # avg: mean(s*w) * min(2 models, 3 boxes) / sum(w) = (1.8 + 1.8 + 0.6) / 3 * 2 / 3
    assert s.tolist() == pytest.approx([4.2 / 3 * 2 / 3], abs=1e-6)
    assert s.item() > 0.9  # not > 1 here; the overflow needs a heavier model:
    _eb_b, eb_s, _ = eb_wbf(boxes, scores, labels, weights=[2, 1])
    assert eb_s.tolist() == pytest.approx(s.tolist(), abs=1e-6)
    # fused box = (s*w)-weighted mean of the members
    expected_x1 = (1.8 * 0.1 + 1.8 * 0.1 + 0.6 * 0.12) / 4.2
    assert b[0, 0].item() == pytest.approx(expected_x1, abs=1e-6)
    # overflow: weights (3, 1), both boxes from model 0 -> 0.9*3 * 2 / 4 = 1.35
    over = weighted_boxes_fusion(boxes[:1] + [np.zeros((0, 4))], scores[:1] + [np.zeros(0)],
                                 labels[:1] + [np.zeros(0)], weights=[3, 1])  # fmt: skip
    assert over[1].item() == pytest.approx(1.35, abs=1e-6)
    eb_over = eb_wbf(boxes[:1] + [np.zeros((0, 4))], scores[:1] + [np.zeros(0)], labels[:1] + [np.zeros(0)],
                     weights=[3, 1])  # fmt: skip
    assert eb_over[1][0] == pytest.approx(1.35, abs=1e-6)  # ensemble-boxes' known flaw
    clipped = weighted_boxes_fusion(boxes[:1] + [np.zeros((0, 4))], scores[:1] + [np.zeros(0)],
                                    labels[:1] + [np.zeros(0)], weights=[3, 1], clip_scores=True)  # fmt: skip
    assert clipped[1].item() == 1.0
    assert torch.equal(clipped[0], over[0])


def test_prefilter_like_ensemble_boxes():
    boxes = [
        np.array([[0.5, 0.5, 0.1, 0.1], [-0.2, 0.1, 0.3, 1.4], [0.2, 0.2, 0.2, 0.6], [0.1, 0.1, 0.2, 0.2]])
    ]
    scores = [np.array([0.8, 0.7, 0.9, 0.05])]
    labels = [np.array([1, 2, 1, 1])]
    got = weighted_boxes_fusion(boxes, scores, labels, skip_box_threshold=0.1)
    expected = eb_wbf(boxes, scores, labels, skip_box_thr=0.1)
    assert_rows_close(rows(*got), rows(*expected))
    np.testing.assert_allclose(
        got[0].numpy(), [[0.1, 0.1, 0.5, 0.5], [0.0, 0.1, 0.3, 1.0]], atol=1e-7
    )  # swap, clip
    assert got[2].tolist() == [1, 2]  # zero-area box and the low score are skipped


def test_empty_and_errors():
    b, s, lab = weighted_boxes_fusion([np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0)])
    assert b.shape == (0, 4) and s.numel() == 0 and lab.numel() == 0
    one = [np.array([[0.1, 0.1, 0.2, 0.2]])], [np.array([0.5])], [np.array([0])]
    with pytest.raises(ValueError, match="conf_type"):
        weighted_boxes_fusion(*one, conf_type="median")
    with pytest.raises(ValueError, match="weights"):
        weighted_boxes_fusion(*one, weights=[1, 2])
    with pytest.raises(ValueError, match="model 0"):
        weighted_boxes_fusion([np.zeros((2, 4))], [np.zeros(3)], [np.zeros(2)])


def test_batched_equals_per_image():
    images = [random_models(30 + i, num_models=3) for i in range(4)]
    flat = {"boxes": [], "scores": [], "labels": [], "models": [], "images": []}
    for i, (boxes, scores, labels) in enumerate(images):
        for m in range(3):
            flat["boxes"].append(torch.tensor(boxes[m]))
            flat["scores"].append(torch.tensor(scores[m]))
            flat["labels"].append(torch.tensor(labels[m]))
            flat["models"].append(torch.full((len(scores[m]),), m))
            flat["images"].append(torch.full((len(scores[m]),), 10 + i))
    cat = {k: torch.cat(v) for k, v in flat.items()}
    fb, fs, fl, fi = batched_weighted_boxes_fusion(
        cat["boxes"], cat["scores"], cat["labels"], model_ids=cat["models"], image_ids=cat["images"],
        num_models=3, weights=[1, 2, 1], conf_type="box_and_model_avg")  # fmt: skip
    assert fi.tolist() == sorted(fi.tolist())
    for i, (boxes, scores, labels) in enumerate(images):
        one = weighted_boxes_fusion(boxes, scores, labels, weights=[1, 2, 1], conf_type="box_and_model_avg")
        sel = fi == 10 + i
        assert_rows_close(rows(fb[sel], fs[sel], fl[sel]), rows(*one))

"""weighted_boxes_fusion: both backends, per image and batched, against ensemble-boxes 1.0.9.

Our WBF replays ensemble-boxes' float32 roundings, so outputs are compared exactly (as
float32 rows: its float64 scores rounded like ours).
"""

import warnings

import ensemble_boxes as eb
import numpy as np
import pytest
import torch

from o365lib.tta import CONF_TYPES, batched_weighted_boxes_fusion, weighted_boxes_fusion
from tests.ops.fusion_cases import detections, rows

BACKENDS = [("numba", "cpu"), ("torch", "cpu")] + ([("torch", "cuda")] if torch.cuda.is_available() else [])
SETTINGS = [(0.55, 0.0, None), (0.4, 0.2, [1.0, 2.5, 0.7]), (0.7, 0.05, [3.0, 1.0, 1.0])]


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


def eb_wbf(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eb.weighted_boxes_fusion(*args, **kw)


def ours(boxes, scores, labels, *, backend="numba", device="cpu", **kw):
    out = weighted_boxes_fusion(
        [torch.as_tensor(b, device=device) for b in boxes],
        [torch.as_tensor(s, device=device) for s in scores],
        [torch.as_tensor(lab, device=device) for lab in labels],
        backend=backend,
        **kw,
    )
    assert all(x.device.type == device for x in out)
    assert out[0].dtype == out[1].dtype == torch.float32 and out[2].dtype == torch.int64
    assert bool((out[1][:-1] >= out[1][1:]).all())
    return out


def assert_equal_to_ensemble_boxes(got, expected):
    assert len(expected[0]) == len(got[0])
    np.testing.assert_array_equal(rows(*got), rows(*expected))


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("conf_type", CONF_TYPES)
@pytest.mark.parametrize("seed", range(5))
def test_matches_ensemble_boxes(backend, device, conf_type, seed):
    boxes, scores, labels = random_models(seed, num_models=1 + seed % 3)
    iou_thr, skip, weights = SETTINGS[seed % 3]
    weights = weights[: len(boxes)] if weights else None
    kw = {"weights": weights, "conf_type": conf_type}
    expected = eb_wbf(boxes, scores, labels, iou_thr=iou_thr, skip_box_thr=skip, **kw)
    assert len(expected[0]) > 0
    got = ours(boxes, scores, labels, backend=backend, device=device, iou_threshold=iou_thr,
               skip_box_threshold=skip, **kw)  # fmt: skip
    assert_equal_to_ensemble_boxes(got, expected)


@pytest.mark.parametrize("conf_type", CONF_TYPES)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_per_image_equals_batched_equals_ensemble_boxes(conf_type, ties):
    """Four images of three models: per-image calls and one batched call, both backends agree
    exactly (order included); ensemble-boxes agrees on the rows."""
    # ties: scores snap to multiples of 0.05 (some to 0: NaN boxes, see test_zero_scores...);
    # ensemble-boxes' unstable sort visits ties in another order, so it is compared without ties
    images = [detections(seed, num_models=3, num_boxes=100, num_labels=8, ties=ties) for seed in range(4)]
    weights = None if ties else [1.0, 2.5, 0.7]  # ties in s*w need equal weights
    kw = {"weights": weights, "conf_type": conf_type, "iou_threshold": 0.55}
    per_image = {b: [ours(*zip(*im), backend=b, **kw) for im in images] for b in ("numba", "torch")}
    flat = [torch.from_numpy(np.concatenate([m[k] for im in images for m in im])) for k in range(3)]
    model_ids = torch.cat([torch.full((len(m[1]),), j) for im in images for j, m in enumerate(im)])
    image_ids = torch.cat([torch.full((len(m[1]),), 10 + i) for i, im in enumerate(images) for m in im])
    for backend in ("numba", "torch"):
        fb, fs, fl, fi = batched_weighted_boxes_fusion(
            *flat, model_ids=model_ids, image_ids=image_ids, num_models=3, backend=backend, **kw
        )
        assert fi.tolist() == sorted(fi.tolist())
        for i, im in enumerate(images):
            sel = fi == 10 + i
            for other in ("numba", "torch"):
                for a, b in zip((fb[sel], fs[sel], fl[sel]), per_image[other][i]):
                    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    for im, got in zip(images if not ties else [], per_image["numba"]):
        boxes, scores, labels = zip(*im)
        expected = eb_wbf(list(boxes), list(scores), list(labels), weights=weights, conf_type=conf_type)
        assert_equal_to_ensemble_boxes(got, expected)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("conf_type", CONF_TYPES)
def test_duplicated_models_tie_like_ensemble_boxes(backend, device, conf_type):
    """Exact duplicates tie in s*w; whichever is visited first, the fusion is the same."""
    (b0, s0, l0), (b1, s1, l1) = detections(5, num_models=2, num_boxes=120, num_labels=6)
    boxes, scores, labels = [b0, b0, b1], [s0, s0, s1], [l0, l0, l1]
    expected = eb_wbf(boxes, scores, labels, conf_type=conf_type)
    got = ours(boxes, scores, labels, backend=backend, device=device, conf_type=conf_type)
    assert_equal_to_ensemble_boxes(got, expected)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_zero_scores_replay_the_nan_box(backend, device):
    """Two 0-score boxes fuse into 0 / 0 = NaN coordinates in ensemble-boxes; np.argmax then
    matches the label's next box (here a negative score) to that cluster, however far away."""
    boxes = [
        np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9], [0.5, 0.1, 0.7, 0.3]]),
        np.array([[0.1, 0.1, 0.3, 0.3]]),
    ]
    scores, labels = [np.array([0.0, 0.5, -0.1]), np.array([0.0])], [np.array([1, 1, 1]), np.array([1])]
    expected = eb_wbf(boxes, scores, labels, skip_box_thr=-1.0)
    got = ours(boxes, scores, labels, backend=backend, device=device, skip_box_threshold=-1.0)
    assert_equal_to_ensemble_boxes(got, expected)
    assert len(got[0]) == 2  # not 3: the far box joined the NaN cluster
    got = ours(boxes[:1], scores[:1], labels[:1], backend=backend, device=device, skip_box_threshold=-1.0)
    assert len(got[0]) == 3  # without the duplicate 0-score box there is no NaN cluster


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_degenerate_inputs(backend, device):
    kw = {"backend": backend, "device": device}
    empty = [np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0)]
    b, s, lab = ours(*empty, **kw)
    assert b.shape == (0, 4) and s.numel() == 0 and lab.numel() == 0
    one = [np.array([[0.1, 0.1, 0.2, 0.2]])], [np.array([0.5])], [np.array([7])]
    b, s, lab = ours(*one, **kw)
    assert (
        b[0].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2]) and s.tolist() == [0.5] and lab.tolist() == [7]
    )
    b, s, lab = ours(*one, skip_box_threshold=0.6, **kw)  # everything skipped
    assert b.shape == (0, 4) and s.numel() == 0
    # a model without boxes next to others; all boxes of one label
    boxes, scores, labels = random_models(8, num_models=3, max_boxes=60, num_labels=1)
    boxes[1], scores[1], labels[1] = np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0)
    for conf_type in CONF_TYPES:
        expected = eb_wbf(boxes, scores, labels, conf_type=conf_type)
        assert_equal_to_ensemble_boxes(ours(boxes, scores, labels, conf_type=conf_type, **kw), expected)


def test_allow_overflow_and_numpy_inputs_match():
    boxes, scores, labels = random_models(7, num_models=3)
    for overflow in (False, True):
        expected = eb_wbf(boxes, scores, labels, allows_overflow=overflow)
        for backend in ("numba", "torch"):
            got = weighted_boxes_fusion(boxes, scores, labels, allow_overflow=overflow, backend=backend)
            assert_equal_to_ensemble_boxes(got, expected)


def test_hand_computed_fusion_and_clip_scores():
    # model 0 (weight 2) has two near-identical boxes at 0.9, model 1 (weight 1) one at 0.6
    boxes = [np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.52]]), np.array([[0.12, 0.1, 0.5, 0.5]])]
    scores = [np.array([0.9, 0.9]), np.array([0.6])]
    labels = [np.array([0, 0]), np.array([0])]
    b, s, _lab = weighted_boxes_fusion(boxes, scores, labels, weights=[2, 1])
    # avg: mean(s*w) * min(2 models, 3 boxes) / sum(w) = (1.8 + 1.8 + 0.6) / 3 * 2 / 3
    assert s.tolist() == pytest.approx([4.2 / 3 * 2 / 3], abs=1e-6)
    # fused box = (s*w)-weighted mean of the members
    assert b[0, 0].item() == pytest.approx((1.8 * 0.1 + 1.8 * 0.1 + 0.6 * 0.12) / 4.2, abs=1e-6)
    # overflow: weights (3, 1), both boxes from model 0 -> 0.9*3 * 2 / 4 = 1.35
    heavy = boxes[:1] + [np.zeros((0, 4))], scores[:1] + [np.zeros(0)], labels[:1] + [np.zeros(0)]
    over = weighted_boxes_fusion(*heavy, weights=[3, 1])
    assert over[1].item() == pytest.approx(1.35, abs=1e-6)
    assert eb_wbf(*heavy, weights=[3, 1])[1][0] == pytest.approx(1.35, abs=1e-6)  # ensemble-boxes' flaw
    for backend in ("numba", "torch"):
        clipped = weighted_boxes_fusion(*heavy, weights=[3, 1], clip_scores=True, backend=backend)
        assert clipped[1].item() == 1.0
        assert torch.equal(clipped[0], over[0])  # clipping leaves the fused box alone


def test_prefilter_like_ensemble_boxes():
    boxes = [
        np.array([[0.5, 0.5, 0.1, 0.1], [-0.2, 0.1, 0.3, 1.4], [0.2, 0.2, 0.2, 0.6], [0.1, 0.1, 0.2, 0.2]])
    ]
    scores = [np.array([0.8, 0.7, 0.9, 0.05])]
    labels = [np.array([1, 2, 1, 1])]
    expected = eb_wbf(boxes, scores, labels, skip_box_thr=0.1)
    for backend in ("numba", "torch"):
        got = weighted_boxes_fusion(boxes, scores, labels, skip_box_threshold=0.1, backend=backend)
        assert_equal_to_ensemble_boxes(got, expected)
        np.testing.assert_allclose(got[0].numpy(), [[0.1, 0.1, 0.5, 0.5], [0.0, 0.1, 0.3, 1.0]], atol=1e-7)
        assert got[2].tolist() == [1, 2]  # corners swapped, clipped; zero-area box and low score skipped


def test_errors():
    one = [np.array([[0.1, 0.1, 0.2, 0.2]])], [np.array([0.5])], [np.array([0])]
    with pytest.raises(ValueError, match="conf_type"):
        weighted_boxes_fusion(*one, conf_type="median")
    with pytest.raises(ValueError, match="weights"):
        weighted_boxes_fusion(*one, weights=[1, 2])
    with pytest.raises(ValueError, match="weights"):
        weighted_boxes_fusion(*one, weights=[0])
    with pytest.raises(ValueError, match="model 0"):
        weighted_boxes_fusion([np.zeros((2, 4))], [np.zeros(3)], [np.zeros(2)])
    with pytest.raises(ValueError, match="backend"):
        weighted_boxes_fusion(*one, backend="cuda")
    for backend in ("numba", "torch"):
        with pytest.raises(ValueError, match="NaN"):
            weighted_boxes_fusion(one[0], [np.array([float("nan")])], one[2], backend=backend)
    with pytest.raises(ValueError, match="model_ids"):
        batched_weighted_boxes_fusion(torch.rand(2, 4), torch.rand(2), torch.zeros(2), model_ids=torch.tensor([0, 2]),
                                      num_models=2)  # fmt: skip


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_skip_threshold_compares_in_the_scores_dtype(backend):
    """float32(0.7) < 0.7 in float64 but not in float32: ensemble-boxes keeps the box."""
    box, label = np.array([[0.1, 0.1, 0.3, 0.3]], np.float32), np.array([1])
    f32, f64 = np.array([0.7], np.float32), np.array([0.69999999])
    for scores in ([f32], [f32, f64], [f64, f32]):
        boxes, labels = [box] * len(scores), [label] * len(scores)
        expected = eb_wbf(boxes, scores, labels, skip_box_thr=0.7)
        assert_equal_to_ensemble_boxes(
            weighted_boxes_fusion(boxes, scores, labels, skip_box_threshold=0.7, backend=backend), expected
        )
    got = batched_weighted_boxes_fusion(torch.tensor(box), torch.tensor(f32), torch.tensor(label),
                                        model_ids=torch.tensor([0]), num_models=1, skip_box_threshold=0.7,
                                        backend=backend)  # fmt: skip
    assert got[1].tolist() == [pytest.approx(0.7)]


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_batched_with_sparse_image_ids(backend):
    """Image ids too far apart for one (image, label) integer key: the same fusion per image."""
    images = [detections(seed, num_models=2, num_boxes=60, num_labels=5) for seed in (11, 12)]
    flat = [torch.from_numpy(np.concatenate([m[k] for im in images for m in im])) for k in range(3)]
    model_ids = torch.cat([torch.full((len(m[1]),), j) for im in images for j, m in enumerate(im)])
    image_of = torch.cat([torch.full((len(m[1]),), i) for i, im in enumerate(images) for m in im])
    for image_ids in (image_of, image_of * 2**61 - 2**60):
        fb, fs, fl, fi = batched_weighted_boxes_fusion(*flat, model_ids=model_ids, image_ids=image_ids,
                                                       num_models=2, backend=backend)  # fmt: skip
        for i, im in enumerate(images):
            one = weighted_boxes_fusion(*zip(*im), backend=backend)
            sel = fi == image_ids[image_of == i][0]
            assert (
                torch.equal(fb[sel], one[0]) and torch.equal(fs[sel], one[1]) and torch.equal(fl[sel], one[2])
            )

"""soft_nms against ensemble-boxes 1.0.9 (its decayed scores) and hand-computed values."""

import importlib
import math
import warnings

import numpy as np
import pytest
import torch

from o365lib.tta import soft_nms

# the package attribute `soft_nms` is the function; fetch the module itself
soft_nms_module = importlib.import_module("o365lib.tta.soft_nms")

eb_nms = pytest.importorskip("ensemble_boxes.ensemble_boxes_nms")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
METHOD_CODE = {"linear": 1, "gaussian": 2}


def eb_reference(boxes, scores, labels, *, method, iou_threshold, sigma, score_threshold):
    """ensemble-boxes' per-class soft-NMS; its scores array is decayed in place, so read it back."""
    out = {}
    for label in np.unique(labels):
        idx = np.nonzero(labels == label)[0]
        decayed = scores[idx].astype(np.float64).copy()
        keep = eb_nms.cpu_soft_nms_float(
            boxes[idx].astype(np.float64).copy(),
            decayed,
            Nt=iou_threshold,
            sigma=sigma,
            thresh=score_threshold,
            method=METHOD_CODE[method],
        )
        out.update(zip(idx[keep].tolist(), decayed[decayed > score_threshold].tolist()))
    return out


def random_case(seed, n, num_labels):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0.2, 0.8, (n, 2))
    half = rng.uniform(0.02, 0.2, (n, 2))
    boxes = np.concatenate([centre - half, centre + half], 1).clip(0, 1)
    return boxes, rng.uniform(0, 1, n), rng.integers(0, num_labels, n)


def ours(boxes, scores, labels, device="cpu", **kw):
    keep, new = soft_nms(
        torch.tensor(boxes, device=device),
        torch.tensor(scores, device=device),
        torch.tensor(labels, device=device),
        **kw,
    )
    assert keep.device.type == device and new.device.type == device
    assert bool((new[:-1] >= new[1:]).all()), "not sorted by new score"
    return dict(zip(keep.cpu().tolist(), new.cpu().tolist()))


def assert_same(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "method,iou_threshold,sigma,score_threshold",
    [
        ("gaussian", 0.5, 0.5, 0.001),
        ("gaussian", 0.5, 0.1, 0.05),
        ("linear", 0.3, 0.5, 0.001),
        ("linear", 0.6, 0.5, 0.2),
    ],
)
def test_matches_ensemble_boxes(device, seed, method, iou_threshold, sigma, score_threshold):
    boxes, scores, labels = random_case(seed, n=30 + 40 * seed, num_labels=1 + 3 * seed)
    kw = {
        "method": method,
        "iou_threshold": iou_threshold,
        "sigma": sigma,
        "score_threshold": score_threshold,
    }
    expected = eb_reference(boxes, scores, labels, **kw)
    assert len(expected) > 0
    assert_same(ours(boxes, scores, labels, device=device, **kw), expected)


def test_kept_set_matches_public_ensemble_boxes_api():
    boxes, scores, labels = random_case(11, n=120, num_labels=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eb_boxes, eb_scores, _ = eb_nms.soft_nms([boxes], [scores], [labels], sigma=0.5, thresh=0.001)
    got = ours(boxes, scores, labels)
    # ensemble-boxes returns the kept boxes with their *original* scores
    ours_rows = sorted(np.concatenate([boxes[list(got)], scores[list(got), None]], 1).round(9).tolist())
    eb_rows = sorted(np.concatenate([eb_boxes, eb_scores[:, None]], 1).round(9).tolist())
    assert ours_rows == eb_rows


def test_hand_computed_decay():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5], [5.0, 5.0, 6.0, 6.0]])
    scores = torch.tensor([0.9, 0.8, 0.3])
    labels = torch.tensor([1, 1, 1])
    keep, new = soft_nms(boxes, scores, labels, sigma=0.5)
    assert keep.tolist() == [0, 1, 2]  # 0.8 * exp(-0.25 / 0.5) = 0.4852 > 0.3
    assert new.tolist() == pytest.approx([0.9, 0.8 * math.exp(-0.5), 0.3], abs=1e-7)
    keep, new = soft_nms(boxes, scores, labels, method="linear", iou_threshold=0.3)
    assert keep.tolist() == [0, 1, 2] and new[1].item() == pytest.approx(0.4)
    keep, new = soft_nms(boxes, scores, labels, method="linear", iou_threshold=0.5)  # iou not > 0.5
    assert new.tolist() == pytest.approx([0.9, 0.8, 0.3])
    # a different label is not decayed
    keep, new = soft_nms(boxes, scores, torch.tensor([1, 2, 1]))
    assert new.tolist() == pytest.approx([0.9, 0.8, 0.3])


def test_degenerate_inputs():
    empty = soft_nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert empty[0].numel() == 0 and empty[1].numel() == 0
    one = soft_nms(torch.tensor([[0.1, 0.1, 0.2, 0.2]]), torch.tensor([0.5]), torch.tensor([3]))
    assert one[0].tolist() == [0] and one[1].tolist() == [0.5]
    below = soft_nms(torch.tensor([[0.1, 0.1, 0.2, 0.2]]), torch.tensor([0.001]), torch.tensor([3]))
    assert below[0].numel() == 0  # kept only if score > threshold, like ensemble-boxes
    # identical boxes with identical scores: each later box decays by exp(-1/sigma) per earlier one
    boxes = np.tile([[0.1, 0.2, 0.5, 0.6]], (4, 1))
    scores, labels = np.full(4, 0.9), np.zeros(4, dtype=np.int64)
    kw = {"method": "gaussian", "iou_threshold": 0.5, "sigma": 0.5, "score_threshold": 0.001}
    got = ours(boxes, scores, labels, **kw)
    assert_same(got, eb_reference(boxes, scores, labels, **kw))
    assert sorted(got.values(), reverse=True) == pytest.approx([0.9 * math.exp(-2.0 * k) for k in range(4)])
    # linear with identical boxes decays to exactly 0: only the first survives
    kw["method"] = "linear"
    assert list(ours(boxes, scores, labels, **kw)) == [0]
    # zero-area boxes: IoU 0 with everything (no NaN)
    z = soft_nms(torch.tensor([[0.1, 0.1, 0.1, 0.1]] * 2), torch.tensor([0.5, 0.4]), torch.tensor([0, 0]))
    assert z[1].tolist() == pytest.approx([0.5, 0.4])


def test_single_class_and_many_classes():
    for num_labels in (1, 300):
        boxes, scores, labels = random_case(5, n=400, num_labels=num_labels)
        kw = {"method": "gaussian", "iou_threshold": 0.5, "sigma": 0.5, "score_threshold": 0.001}
        assert_same(ours(boxes, scores, labels, **kw), eb_reference(boxes, scores, labels, **kw))


def test_batched_images_equal_per_image_calls(monkeypatch):
    cases = [random_case(20 + i, n=60, num_labels=5) for i in range(4)]
    per_image = [ours(*c) for c in cases]
    boxes = np.concatenate([c[0] for c in cases])
    scores = np.concatenate([c[1] for c in cases])
    groups = np.concatenate([c[2] + 5 * i for i, c in enumerate(cases)])
    offsets = np.cumsum([0] + [len(c[1]) for c in cases])
    # also force tiny buckets so the chunked path runs
    for budget in (soft_nms_module._BUCKET_BUDGET, 50):
        monkeypatch.setattr(soft_nms_module, "_BUCKET_BUDGET", budget)
        joint = ours(boxes, scores, groups)
        for i, expected in enumerate(per_image):
            got = {k - offsets[i]: v for k, v in joint.items() if offsets[i] <= k < offsets[i + 1]}
            assert_same(got, expected)


def test_pixel_boxes_are_scale_invariant():
    boxes, scores, labels = random_case(3, n=80, num_labels=3)
    a = ours(boxes, scores, labels)
    b = ours(boxes * 640.0, scores, labels)
    assert_same(a, b)


def test_bad_input_errors():
    b, s, lab = torch.rand(3, 4), torch.rand(3), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="method"):
        soft_nms(b, s, lab, method="hard")
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        soft_nms(torch.rand(3, 5), s, lab)
    with pytest.raises(ValueError, match="integer"):
        soft_nms(b, s, lab.float())
    with pytest.raises(ValueError, match="score_threshold"):
        soft_nms(b, s, lab, score_threshold=-1)
    with pytest.raises(TypeError):
        soft_nms(b.numpy(), s, lab)


def test_one_cpu_thread_restores_the_setting():
    before = torch.get_num_threads()
    with soft_nms_module.one_cpu_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

"""soft_nms (o365lib.ops): both backends, per image and batched, against ensemble-boxes 1.0.9.

ensemble-boxes returns the kept boxes with their *original* scores; its decayed scores are
read back from the array it decays in place (``eb_decayed``). Both are compared.
"""

import importlib
import math
import warnings

import numpy as np
import pytest
import torch
from ensemble_boxes import ensemble_boxes_nms as eb_nms

from o365lib.ops import one_cpu_thread, soft_nms
from tests.ops.fusion_cases import detections, rows

# the package attribute `soft_nms` is the function; fetch the module itself
soft_nms_module = importlib.import_module("o365lib.ops.soft_nms")

BACKENDS = [("numba", "cpu"), ("torch", "cpu")] + ([("torch", "cuda")] if torch.cuda.is_available() else [])
METHOD_CODE = {"linear": 1, "gaussian": 2}
SETTINGS = [
    {"method": "gaussian", "iou_threshold": 0.5, "sigma": 0.5, "score_threshold": 0.001},
    {"method": "gaussian", "iou_threshold": 0.5, "sigma": 0.1, "score_threshold": 0.05},
    {"method": "linear", "iou_threshold": 0.3, "sigma": 0.5, "score_threshold": 0.001},
    {"method": "linear", "iou_threshold": 0.6, "sigma": 0.5, "score_threshold": 0.2},
]


def eb_decayed(boxes, scores, labels, *, method, iou_threshold, sigma, score_threshold):
    """ensemble-boxes' per-class soft-NMS: {input index: decayed score} (float64 in, float64 out)."""
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


def eb_public(boxes, scores, labels, *, method, iou_threshold, sigma, score_threshold):
    """ensemble-boxes' public call on one image: kept (boxes, original scores, labels)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eb_nms.soft_nms([boxes], [scores], [labels], method=METHOD_CODE[method], iou_thr=iou_threshold,
                               sigma=sigma, thresh=score_threshold)  # fmt: skip


def random_case(seed, n, num_labels):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0.2, 0.8, (n, 2))
    half = rng.uniform(0.02, 0.2, (n, 2))
    boxes = np.concatenate([centre - half, centre + half], 1).clip(0, 1)
    return boxes, rng.uniform(0, 1, n), rng.integers(0, num_labels, n)


def ours(boxes, scores, labels, backend="numba", device="cpu", **kw):
    """Our soft-NMS as {input index: decayed score}, after checking device and order."""
    keep, new = soft_nms(
        torch.as_tensor(boxes, device=device),
        torch.as_tensor(scores, device=device),
        torch.as_tensor(labels, device=device),
        backend=backend,
        **kw,
    )
    assert (
        keep.device.type == device
        and new.device.type == device
        and new.dtype == torch.as_tensor(scores).dtype
    )
    assert bool((new[:-1] >= new[1:]).all()), "not sorted by new score"
    return dict(zip(keep.cpu().tolist(), new.cpu().tolist()))


def assert_same(a, b, tol=1e-9):
    assert set(a) == set(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=tol)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: f"{kw['method']}-{kw['score_threshold']}")
def test_decayed_scores_match_ensemble_boxes(backend, device, seed, kw):
    boxes, scores, labels = random_case(seed, n=30 + 40 * seed, num_labels=1 + 3 * seed)
    expected = eb_decayed(boxes, scores, labels, **kw)
    assert len(expected) > 0
    assert_same(ours(boxes, scores, labels, backend=backend, device=device, **kw), expected)


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: f"{kw['method']}-{kw['score_threshold']}")
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_per_image_equals_batched_equals_ensemble_boxes(kw, ties):
    """float32 images (one model each): per-image calls and one batched call, both backends."""
    images = [detections(seed, num_models=1, num_boxes=150, num_labels=12, ties=ties)[0] for seed in range(5)]
    per_image = {b: [soft_nms(*(torch.from_numpy(x) for x in im), backend=b, **kw) for im in images]
                 for b in ("numba", "torch")}  # fmt: skip
    flat = [torch.from_numpy(np.concatenate(x)) for x in zip(*images)]
    image_of = torch.cat([torch.full((len(im[1]),), i) for i, im in enumerate(images)])
    offsets = np.cumsum([0] + [len(im[1]) for im in images])
    for backend in ("numba", "torch"):
        keep, new = soft_nms(flat[0], flat[1], image_of * 12 + flat[2], backend=backend, **kw)
        for i, (boxes, scores, labels) in enumerate(images):
            mine = (image_of[keep] == i).numpy()
            for b2 in ("numba", "torch"):  # same kept boxes, same order, same decayed scores
                k1, n1 = per_image[b2][i]
                assert torch.equal(keep[mine] - offsets[i], k1)
                torch.testing.assert_close(new[mine], n1, rtol=0, atol=1e-7)
            k1, n1 = per_image["numba"][i]
            if not ties:  # tied picks: ensemble-boxes' swaps may pick another tied box first
                assert_same(
                    dict(zip(k1.tolist(), n1.tolist())), eb_decayed(boxes, scores, labels, **kw), 1e-6
                )
            # the public call: kept boxes with original scores; on these inputs tied picks are
            # exact duplicates or do not overlap, so the kept rows agree with ties too
            kept = k1.numpy()
            expected = eb_public(boxes, scores, labels, **kw)
            np.testing.assert_array_equal(rows(boxes[kept], scores[kept], labels[kept]), rows(*expected))


def reference_soft_nms(boxes, scores, labels, *, method, iou_threshold, sigma, score_threshold):
    """Plain loops over one list per label, lowest index first among tied scores (our rule)."""
    out = {}
    for label in sorted(set(labels.tolist())):
        live = {i: float(scores[i]) for i in np.nonzero(labels == label)[0].tolist()}
        while live:
            best = max(live, key=lambda i: (live[i], -i))
            s = live.pop(best)
            if s <= score_threshold:
                break
            out[best] = s
            bx1, by1, bx2, by2 = boxes[best].tolist()
            for j in live:
                x1, y1, x2, y2 = boxes[j].tolist()
                inter = max(min(bx2, x2) - max(bx1, x1), 0) * max(min(by2, y2) - max(by1, y1), 0)
                iou = inter / ((bx2 - bx1) * (by2 - by1) + (x2 - x1) * (y2 - y1) - inter)
                if method == "gaussian":
                    live[j] *= math.exp(-(iou * iou) / sigma)
                elif iou > iou_threshold:
                    live[j] *= 1 - iou
    return out


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("kw", SETTINGS[::2], ids=lambda kw: kw["method"])
def test_ties_pick_the_lowest_index(backend, device, kw):
    boxes, scores, labels = detections(3, num_models=1, num_boxes=160, num_labels=6, ties=True)[0]
    boxes, scores = boxes.astype(np.float64), scores.astype(np.float64)
    expected = reference_soft_nms(boxes, scores, labels, **kw)
    assert_same(ours(boxes, scores, labels, backend=backend, device=device, **kw), expected)
    keep, new = soft_nms(
        torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), backend=backend, **kw
    )
    tied = new[:-1] == new[1:]
    assert bool(tied.any()) and bool((keep[:-1][tied] < keep[1:][tied]).all())  # ties: by index


def test_hand_computed_decay():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5], [5.0, 5.0, 6.0, 6.0]])
    scores = torch.tensor([0.9, 0.8, 0.3])
    labels = torch.tensor([1, 1, 1])
    for backend in ("numba", "torch"):
        keep, new = soft_nms(boxes, scores, labels, sigma=0.5, backend=backend)
        assert keep.tolist() == [0, 1, 2]  # 0.8 * exp(-0.25 / 0.5) = 0.4852 > 0.3
        assert new.tolist() == pytest.approx([0.9, 0.8 * math.exp(-0.5), 0.3], abs=1e-7)
        keep, new = soft_nms(boxes, scores, labels, method="linear", iou_threshold=0.3, backend=backend)
        assert keep.tolist() == [0, 1, 2] and new[1].item() == pytest.approx(0.4)
        _, new = soft_nms(boxes, scores, labels, method="linear", iou_threshold=0.5, backend=backend)
        assert new.tolist() == pytest.approx([0.9, 0.8, 0.3])  # iou 0.5 is not > 0.5
        _, new = soft_nms(boxes, scores, torch.tensor([1, 2, 1]), backend=backend)
        assert new.tolist() == pytest.approx([0.9, 0.8, 0.3])  # a different label is not decayed


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_degenerate_inputs(backend, device):
    kw = {"method": "gaussian", "iou_threshold": 0.5, "sigma": 0.5, "score_threshold": 0.001}
    assert ours(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), backend, device, **kw) == {}
    one = ours(np.array([[0.1, 0.1, 0.2, 0.2]]), np.array([0.5]), np.array([3]), backend, device, **kw)
    assert one == {0: 0.5}
    # kept only if score > threshold, like ensemble-boxes; float32 0.001 is not above 0.001 either
    for dtype in (np.float64, np.float32):
        below = ours(
            np.array([[0.1, 0.1, 0.2, 0.2]]), np.array([0.001], dtype), np.array([3]), backend, device, **kw
        )
        assert below == {}
    assert (
        len(
            eb_public(np.array([[0.1, 0.1, 0.2, 0.2]]), np.array([0.001], np.float32), np.array([3]), **kw)[0]
        )
        == 0
    )
    # identical boxes with identical scores: each later box decays by exp(-1/sigma) per earlier one
    boxes = np.tile([[0.1, 0.2, 0.5, 0.6]], (4, 1))
    scores, labels = np.full(4, 0.9), np.zeros(4, dtype=np.int64)
    got = ours(boxes, scores, labels, backend, device, **kw)
    assert_same(got, eb_decayed(boxes, scores, labels, **kw))
    assert sorted(got.values(), reverse=True) == pytest.approx([0.9 * math.exp(-2.0 * k) for k in range(4)])
    # linear with identical boxes decays to exactly 0: only the first survives
    assert list(ours(boxes, scores, labels, backend, device, **{**kw, "method": "linear"})) == [0]
    # zero-area boxes: IoU 0 with everything (no NaN)
    z = ours(
        np.array([[0.1, 0.1, 0.1, 0.1]] * 2), np.array([0.5, 0.4]), np.array([0, 0]), backend, device, **kw
    )
    assert z == pytest.approx({0: 0.5, 1: 0.4})
    # all one label, many boxes; and many labels
    for num_labels in (1, 300):
        boxes, scores, labels = random_case(5, n=400, num_labels=num_labels)
        assert_same(
            ours(boxes, scores, labels, backend, device, **kw), eb_decayed(boxes, scores, labels, **kw)
        )


def test_torch_buckets_do_not_change_the_result(monkeypatch):
    cases = [random_case(20 + i, n=60, num_labels=5) for i in range(4)]
    boxes = np.concatenate([c[0] for c in cases])
    scores = np.concatenate([c[1] for c in cases])
    groups = np.concatenate([c[2] + 5 * i for i, c in enumerate(cases)])
    expected = ours(boxes, scores, groups, backend="numba")
    for budget in (soft_nms_module._BUCKET_BUDGET, 50):  # 50: many tiny chunked buckets
        monkeypatch.setattr(soft_nms_module, "_BUCKET_BUDGET", budget)
        assert_same(ours(boxes, scores, groups, backend="torch"), expected)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_pixel_boxes_and_dtypes(backend):
    boxes, scores, labels = random_case(3, n=80, num_labels=3)
    a = ours(boxes, scores, labels, backend)
    assert_same(ours(boxes * 640.0, scores, labels, backend), a)
    keep, new = soft_nms(torch.tensor(boxes, dtype=torch.float16), torch.tensor(scores, dtype=torch.bfloat16),
                         torch.tensor(labels, dtype=torch.int32), backend=backend)  # fmt: skip
    assert new.dtype == torch.bfloat16 and keep.dtype == torch.int64 and len(keep) > 0


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
    with pytest.raises(ValueError, match="backend"):
        soft_nms(b, s, lab, backend="cython")
    for backend in ("numba", "torch"):
        with pytest.raises(ValueError, match="NaN"):
            soft_nms(b, torch.tensor([0.5, float("nan"), 0.2]), lab, backend=backend)
    with pytest.raises(TypeError):
        soft_nms(b.numpy(), s, lab)


def test_one_cpu_thread_restores_the_setting():
    before = torch.get_num_threads()
    with one_cpu_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

"""NorCal calibration: exact values on small cases and the effect on rankings and per-image caps."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from o365lib.calibration import calibrate_results, calibrate_score, norcal_probabilities, score_weights


def test_norcal_probabilities_exact_small_case():
    probs = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    out = norcal_probabilities(probs, class_counts=[100, 1], gamma=0.5)
    # class 1 divided by sqrt(100) = 10, class 2 by 1, background kept: [0.5, 0.03, 0.2] / 0.73
    torch.testing.assert_close(out, torch.tensor([[0.5 / 0.73, 0.03 / 0.73, 0.2 / 0.73]], dtype=torch.float64))
    assert out.dtype == probs.dtype


def test_norcal_equals_shifted_logits_and_gamma_zero_is_identity():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    counts = torch.tensor([1000.0, 300.0, 20.0, 3.0], dtype=torch.float64)
    gamma = 0.7
    shifted = logits.clone()
    shifted[:, 1:] -= gamma * counts.log()  # exp(z_c) / N_c ** gamma; background untouched
    torch.testing.assert_close(
        norcal_probabilities(F.softmax(logits, dim=1), class_counts=counts, gamma=gamma),
        F.softmax(shifted, dim=1),
    )
    probs = F.softmax(logits, dim=1)
    torch.testing.assert_close(norcal_probabilities(probs, class_counts=counts, gamma=0.0), probs)


def test_norcal_moves_the_top_class_from_head_to_tail():
    probs = torch.tensor([[0.2, 0.45, 0.35]])  # head class 1 (10000 boxes) beats tail class 2 (10)
    counts = [10000, 10]
    assert int(probs[0, 1:].argmax()) == 0
    out = norcal_probabilities(probs, class_counts=counts, gamma=0.3)
    assert int(out[0, 1:].argmax()) == 1
    assert float(out[0, 0]) > float(probs[0, 0])  # mass goes to the background too
    torch.testing.assert_close(out.sum(dim=1), torch.ones(1))


def test_norcal_without_renormalisation_and_bad_input():
    probs = torch.tensor([[0.9, 0.8, 0.4]])  # sigmoid-style rows need not sum to 1
    out = norcal_probabilities(probs, class_counts=[4, 0], gamma=1.0, renormalize=False)
    torch.testing.assert_close(out, torch.tensor([[0.9, 0.2, 0.4]]))  # count 0 counts as 1
    with pytest.raises(ValueError, match="expected 2 per-class counts .*got 3"):
        norcal_probabilities(probs, class_counts=[1, 2, 3], gamma=1.0)
    with pytest.raises(TypeError, match="label order"):
        norcal_probabilities(probs, class_counts={3: 1, 4: 2}, gamma=1.0)
    with pytest.raises(ValueError, match="gamma"):
        norcal_probabilities(probs, class_counts=[1, 2], gamma=-1.0)


def test_score_weights_and_calibrated_score_exact():
    weights = score_weights({1: 1000, 2: 10, 3: 0}, gamma=0.5)
    # reference = smallest count (0 counts as 1)
    assert weights == pytest.approx({1: math.sqrt(1000), 2: math.sqrt(10), 3: 1.0})
    weights = score_weights({1: 1000, 2: 10}, gamma=0.5)
    assert weights == pytest.approx({1: 10.0, 2: 1.0})
    assert score_weights({1: 1000, 2: 10}, gamma=1.0, reference_count=1000) == pytest.approx({1: 1.0, 2: 0.01})
    assert calibrate_score(0.9, 10.0) == pytest.approx(0.09 / 0.19)
    assert calibrate_score(0.0, 10.0) == 0.0 and calibrate_score(1.0, 10.0) == 1.0
    assert calibrate_score(0.37, 1.0) == pytest.approx(0.37)


def test_calibrated_score_is_norcal_on_two_outcomes_and_monotone():
    counts = {7: 5000, 9: 40}
    weights = score_weights(counts, gamma=0.6)
    scores = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
    for category, weight in weights.items():
        calibrated = [calibrate_score(float(s), weight) for s in scores]
        assert all(b > a for a, b in itertools.pairwise(calibrated))  # strictly increasing
        # NorCal on {rest: 1 - s, class: s} with the count N_c / N_ref
        rows = torch.stack([1 - scores, scores], dim=1)
        relative = counts[category] / min(counts.values())
        expected = norcal_probabilities(rows, class_counts=[relative], gamma=0.6)[:, 1]
        torch.testing.assert_close(torch.tensor(calibrated, dtype=torch.float64), expected)


def test_calibrate_results_keeps_tail_boxes_under_the_per_image_cap():
    results = [
        {"image_id": 1, "category_id": 10, "bbox": [0, 0, 5, 5], "score": 0.9},
        {"image_id": 1, "category_id": 10, "bbox": [1, 0, 5, 5], "score": 0.8},
        {"image_id": 1, "category_id": 10, "bbox": [2, 0, 5, 5], "score": 0.7},
        {"image_id": 1, "category_id": 20, "bbox": [9, 9, 5, 5], "score": 0.6},
    ]
    counts = {10: 100_000, 20: 100}
    calibrated = calibrate_results(results, class_counts=counts, gamma=0.5)

    def top(dets, cap):
        return [d["category_id"] for d in sorted(dets, key=lambda d: -d["score"])[:cap]]

    assert top(results, 2) == [10, 10]
    assert 20 in top(calibrated, 2)
    assert results[0]["score"] == 0.9  # the input is not modified
    assert [d["bbox"] for d in calibrated] == [d["bbox"] for d in results]
    assert calibrated[3]["score"] == pytest.approx(0.6)  # the rarest class is the reference
    head = [d["score"] for d in calibrated[:3]]
    assert head == sorted(head, reverse=True)  # order within a class is kept
    w = math.sqrt(1000)
    assert head[0] == pytest.approx((0.9 / w) / (0.9 / w + 0.1))


def test_calibrate_results_errors_name_the_record():
    det = {"image_id": 4, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}
    with pytest.raises(ValueError, match=r"result #0 \(image_id=4\): category_id 3 has no entry"):
        calibrate_results([det], class_counts={1: 5}, gamma=0.5)
    with pytest.raises(ValueError, match=r"score 1.5 is outside \[0, 1\]"):
        calibrate_results([{**det, "score": 1.5}], class_counts={3: 5}, gamma=0.5)
    with pytest.raises(ValueError, match="finite and non-negative"):
        calibrate_results([det], class_counts={3: float("nan")}, gamma=0.5)
    with pytest.raises(ValueError, match="empty"):
        calibrate_results([det], class_counts={}, gamma=0.5)

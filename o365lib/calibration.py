"""NorCal: post-hoc normalised calibration of class scores by training frequency.

Pan et al., "On Model Calibration for Long-Tailed Object Detection and Instance Segmentation"
(NeurIPS 2021). A detector trained on long-tailed data scores head classes too high. NorCal
divides each foreground class's exponentiated logit by its training count to a power and
renormalises together with the background, which is *not* divided:

    score_c = (exp(z_c) / N_c ** gamma) / (exp(z_0) + sum_k exp(z_k) / N_k ** gamma),  c = 1..K
    score_0 =  exp(z_0)                 / (same denominator)

Because softmax probabilities are proportional to ``exp(z)``, the same formula applies to
probabilities, e.g. the cascade's stage-averaged ``[N, K + 1]`` scores (``norcal_probabilities``).
``gamma = 0`` leaves softmax scores unchanged; a larger ``gamma`` moves probability mass from
head classes to tail classes and to the background. ``gamma`` is chosen on validation data.

Two entry points:

- ``norcal_probabilities(probabilities, class_counts=..., gamma=...)`` on model scores before
  thresholding and NMS (where the background probability is known);
- ``calibrate_results(results, class_counts=..., gamma=...)`` on COCO results lists, where only a
  detection's score ``s`` survives. It applies NorCal to the two-outcome distribution
  ``{class c: s, everything else: 1 - s}``, "everything else" playing the undivided background:

      s' = (s / w_c) / (s / w_c + 1 - s),   w_c = (N_c / N_ref) ** gamma

  ``N_ref`` (``reference_count``, default: the smallest count given) fixes the scale: classes with
  ``N_c = N_ref`` keep their scores, more frequent classes are scaled down. The map is strictly
  increasing in ``s`` for every class, keeps 0 and 1, and so never reorders one class's
  detections: a class's AP without a per-image cap is unchanged. What changes is the competition
  *between* classes: under a per-image cap (100 detections) and when merging experts, tail boxes
  are no longer crowded out by head-class boxes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch


def _counts_tensor(class_counts: Sequence[float] | torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """Float64 counts ``[K]`` (labels 1..K), each clamped to at least 1 (a class never seen counts once)."""
    from o365lib.modeling.losses import as_counts

    return as_counts(class_counts, num_classes=num_classes).clamp(min=1.0)


def norcal_probabilities(
    probabilities: torch.Tensor,
    *,
    class_counts: Sequence[float] | torch.Tensor,
    gamma: float,
    renormalize: bool = True,
) -> torch.Tensor:
    """NorCal on scores ``[N, K + 1]`` (background in column 0); returns a new tensor, same dtype.

    ``class_counts``: training instances of labels 1..K (counts below 1 count as 1).
    ``renormalize=False`` only divides the class columns by ``N_c ** gamma`` (for sigmoid scores,
    whose rows do not form a distribution); the background column is then returned unchanged.
    """
    if probabilities.dim() != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be [N, K + 1], got {tuple(probabilities.shape)}")
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    num_classes = probabilities.shape[1] - 1
    counts = _counts_tensor(class_counts, num_classes=num_classes).to(probabilities.device)
    scores = probabilities.to(torch.float64)
    divided = torch.cat([scores[:, :1], scores[:, 1:] / counts.pow(float(gamma))[None, :]], dim=1)
    if renormalize:
        divided = divided / divided.sum(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float64).tiny)
    return divided.to(probabilities.dtype)


def score_weights(
    class_counts: Mapping[int, float], *, gamma: float, reference_count: float | None = None
) -> dict[int, float]:
    """``{category_id: w_c}`` with ``w_c = (N_c / N_ref) ** gamma`` (counts below 1 count as 1).

    ``reference_count`` ``N_ref`` defaults to the smallest count in ``class_counts``.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    if not class_counts:
        raise ValueError("class_counts is empty")
    bad = [c for c, n in class_counts.items() if not math.isfinite(float(n)) or float(n) < 0]
    if bad:
        raise ValueError(f"class_counts must be finite and non-negative; see category ids {bad[:10]}")
    counts = {int(c): max(float(n), 1.0) for c, n in class_counts.items()}
    reference = min(counts.values()) if reference_count is None else max(float(reference_count), 1.0)
    return {c: (n / reference) ** float(gamma) for c, n in counts.items()}


def calibrate_score(score: float, weight: float) -> float:
    """``s' = (s / w) / (s / w + 1 - s)`` for one score ``s`` in [0, 1] and class weight ``w > 0``."""
    if weight <= 0:
        raise ValueError(f"weight must be positive, got {weight}")
    scaled = score / weight
    denominator = scaled + (1.0 - score)
    return scaled / denominator if denominator > 0 else 0.0


def calibrate_results(
    results: Sequence[Mapping],
    *,
    class_counts: Mapping[int, float],
    gamma: float,
    reference_count: float | None = None,
) -> list[dict]:
    """Rescale COCO results' scores per class (rule in the module docstring); returns new dicts.

    ``class_counts``: ``{category_id: training instances}`` covering every category in
    ``results`` (use the same counts for every list that will be merged, e.g. the full training
    set's). Scores must lie in [0, 1]. Order and all other fields are kept; ``score`` is replaced.
    """
    weights = score_weights(class_counts, gamma=gamma, reference_count=reference_count)
    calibrated = []
    for index, det in enumerate(results):
        category = int(det["category_id"])
        if category not in weights:
            raise ValueError(f"result #{index} (image_id={det.get('image_id')}): category_id {category} "
                             "has no entry in class_counts")
        score = float(det["score"])
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"result #{index} (image_id={det.get('image_id')}): score {score} is outside [0, 1]")
        calibrated.append({**det, "score": calibrate_score(score, weights[category])})
    return calibrated

"""Soft-NMS (Bodla et al. 2017), per class: a numba kernel on CPU, vectorised torch elsewhere.

Soft-NMS keeps every box but decays the score of each box by its overlap with the
boxes selected before it: repeatedly pick the box with the highest current score,
then multiply the remaining scores of its class by ``exp(-iou**2 / sigma)``
(gaussian) or by ``1 - iou`` where ``iou > iou_threshold`` (linear).  A box is kept
if its score at the time it was selected is above ``score_threshold``.

Two backends (:mod:`o365lib.ops.backend`) give the same result.  On CPU the default is one
compiled loop (:mod:`o365lib.ops.soft_nms_numba`): one image of a few hundred boxes costs tens
of microseconds, so calling once per image (how ensemble-boxes is used) is fast.  The torch
backend below runs on any device:

The algorithm is sequential within a class, but classes are independent.  Instead
of looping over classes and boxes in Python (what ensemble-boxes does), the
classes ("groups") are packed into padded ``[G, n]`` score tensors with their
pairwise decay matrices ``[G, n, n]`` precomputed; step ``t`` selects the arg-max
of every group at once and multiplies each group's scores by the picked box's row
of its decay matrix.  Picked boxes decay themselves to 0 (the decay matrix has a
zero diagonal), so no separate "removed" mask is needed.  Groups are sorted by size
so that step ``t`` only touches the groups that still have more than ``t`` boxes, and
are split into buckets to bound the memory of the decay matrices.  The number of
Python-level steps is the size of the largest group, whatever the number of groups:
pass ``labels = image_index * num_classes + label`` to process many images in one call.

Semantics follow ensemble-boxes 1.0.9 ``soft_nms`` (method 1 = linear, 2 = gaussian):
IoU with areas ``(x2 - x1) * (y2 - y1)`` (no +1), gaussian decay independent of
``iou_threshold``, linear decay only above it, threshold ``score > score_threshold``
on the decayed score, applied at the end.  Differences (documented, tested):

* ensemble-boxes returns the *original* scores of the kept boxes; we return the
  decayed ones (the point of soft-NMS).  Its decayed scores are what we match.
* ensemble-boxes clips coordinates to [0, 1] and drops zero-area boxes; we take any
  coordinates (pixels too), order each box's corners, and give zero-area boxes IoU 0.
* among exactly tied current scores we pick the lowest input index; ensemble-boxes'
  in-place swaps can pick another tied box (same kept set and score multiset).
* outputs are sorted by decayed score, ties by input index (ensemble-boxes: by label).
"""

from __future__ import annotations

import torch

from o365lib.ops.backend import one_cpu_thread, resolve_backend

__all__ = ["box_iou_matrix", "soft_nms"]

_METHODS = ("gaussian", "linear")
# Elements of one bucket's decay matrices [G, n, n] (float64): 32 MB.
_BUCKET_BUDGET = 4_000_000
# How often (in steps) to check whether every group has fallen below the threshold.
_EARLY_STOP_EVERY = 8
# Relative costs (in decay-matrix elements) of one Python step and of one bucket's set-up,
# measured on CPU: one step (3 small ops) ~ 400 elements, a bucket's set-up ~ 3000.
_STEP_COST = 400
_BUCKET_COST = 3000


def box_iou_matrix(boxes: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU within each group: ``boxes [..., n, 4]`` xyxy -> ``[..., n, n]``.

    Areas are ``(x2 - x1) * (y2 - y1)`` (continuous coordinates, no +1) and the
    expression order is ensemble-boxes' so float64 results match it bit for bit.
    Pairs whose union is 0 (two zero-area boxes) get IoU 0 instead of NaN.
    """
    x1, y1, x2, y2 = boxes.unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    iw = (
        torch.minimum(x2[..., :, None], x2[..., None, :]) - torch.maximum(x1[..., :, None], x1[..., None, :])
    ).clamp_(min=0)
    ih = (
        torch.minimum(y2[..., :, None], y2[..., None, :]) - torch.maximum(y1[..., :, None], y1[..., None, :])
    ).clamp_(min=0)
    inter = iw * ih
    union = area[..., :, None] + area[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def _validate(boxes, scores, labels, iou_threshold, sigma, method, score_threshold):
    if (
        not isinstance(boxes, torch.Tensor)
        or not isinstance(scores, torch.Tensor)
        or not isinstance(labels, torch.Tensor)
    ):
        raise TypeError("soft_nms: boxes, scores and labels must be torch tensors")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"soft_nms: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    n = boxes.shape[0]
    if scores.shape != (n,) or labels.shape != (n,):
        raise ValueError(
            f"soft_nms: scores and labels must have shape [{n}], got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if method not in _METHODS:
        raise ValueError(f"soft_nms: method must be one of {_METHODS}, got {method!r}")
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"soft_nms: sigma must be > 0, got {sigma}")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"soft_nms: iou_threshold must be in [0, 1], got {iou_threshold}")
    if not score_threshold >= 0:
        raise ValueError(f"soft_nms: score_threshold must be >= 0, got {score_threshold}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"soft_nms: labels must be an integer tensor, got {labels.dtype}")


def _buckets(sizes: list[int], budget: int) -> list[tuple[int, int]]:
    """Split groups (sorted by size, descending) into ``[lo, hi)`` buckets, each padded to its
    largest group. A bucket costs a fixed set-up, one Python step per box of its largest group
    and ``count * n**2`` decay-matrix elements: a small dynamic programme over the distinct sizes
    picks the cheapest split, then buckets over ``budget`` elements are chunked."""
    distinct, first = [], []  # distinct sizes (descending) and the first group of each
    for i, s in enumerate(sizes):
        if not distinct or s != distinct[-1]:
            distinct.append(s)
            first.append(i)
    first.append(len(sizes))
    d = len(distinct)
    best = [0.0] * (d + 1)  # best[j]: cheapest cost of the distinct sizes j.. (suffix)
    cut = [d] * (d + 1)
    for j in range(d - 1, -1, -1):
        n2, step = distinct[j] ** 2, _STEP_COST * distinct[j] + _BUCKET_COST
        best[j] = float("inf")
        for k in range(j + 1, d + 1):  # bucket = distinct sizes j..k-1, padded to distinct[j]
            cost = step + (first[k] - first[j]) * n2 + best[k]
            if cost < best[j]:
                best[j], cut[j] = cost, k
    out, j = [], 0
    while j < d:
        lo, hi, n = first[j], first[cut[j]], distinct[j]
        chunk = max(1, budget // (n * n))
        out.extend((a, min(hi, a + chunk)) for a in range(lo, hi, chunk))
        j = cut[j]
    return out


def _decay_matrix(iou: torch.Tensor, *, method: str, iou_threshold: float, sigma: float) -> torch.Tensor:
    if method == "gaussian":
        weight = torch.exp(-(iou * iou) / sigma)
    else:
        weight = torch.where(iou > iou_threshold, 1.0 - iou, torch.ones_like(iou))
    weight.diagonal(dim1=-2, dim2=-1).zero_()  # a picked box decays itself to 0 = removed
    return weight


def _run_bucket(boxes, scores, index, sizes, *, method, iou_threshold, sigma, score_threshold):
    """Soft-NMS of one bucket. ``index [G, n]`` holds input indices (-1 = padding),
    groups sorted by size descending. Returns (input indices, selection-time scores)."""
    g, n = index.shape
    valid = index >= 0
    safe = index.clamp(min=0)
    weight = _decay_matrix(
        box_iou_matrix(boxes[safe]), method=method, iou_threshold=iou_threshold, sigma=sigma
    )
    flat_weight = weight.reshape(g * n, n)
    current = torch.where(valid, scores[safe], 0.0)
    row_base = torch.arange(g, device=boxes.device) * n
    # active[t] = number of groups with more than t boxes (groups are sorted by size, descending)
    active, a = [], g
    for t in range(n):
        while a > 0 and sizes[a - 1] <= t:
            a -= 1
        active.append(a)
    picked, picked_scores = [], []
    for t in range(n):
        a = active[t]
        cur = current[:a]
        vals, idx = cur.max(dim=1)
        picked.append(idx)
        picked_scores.append(vals)
        cur.mul_(flat_weight.index_select(0, row_base[:a] + idx))
        if (t + 1) % _EARLY_STOP_EVERY == 0 and t + 1 < n and not bool((vals > score_threshold).any()):
            break
    steps = len(picked)
    # rows picked at step t are groups 0..active[t]-1: row-major nonzero of that mask
    active_t = torch.tensor(active[:steps], device=boxes.device)
    rows = torch.nonzero(torch.arange(g, device=boxes.device)[None, :] < active_t[:, None])[:, 1]
    cols = torch.cat(picked)
    vals = torch.cat(picked_scores)
    return index[rows, cols], vals


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    iou_threshold: float = 0.5,
    sigma: float = 0.5,
    method: str = "gaussian",
    score_threshold: float = 0.001,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class soft-NMS.

    Args:
        boxes: ``[N, 4]`` xyxy boxes (any units; normalised [0, 1] for parity with ensemble-boxes).
        scores: ``[N]`` scores; boxes with ``score <= score_threshold`` can never be kept and are
            dropped up front (exact: they could only decay boxes selected after them, which are
            below the threshold too).
        labels: ``[N]`` integer class (or group) ids; soft-NMS runs independently per id. Use
            ``image_index * num_classes + label`` to process many images in one call.
        iou_threshold: linear method only: decay ``1 - iou`` applies where ``iou > iou_threshold``.
        sigma: gaussian method only: decay ``exp(-iou**2 / sigma)``.
        method: ``"gaussian"`` or ``"linear"``.
        score_threshold: keep boxes whose decayed score is ``> score_threshold`` (must be >= 0).
        backend: ``"auto"`` (numba on CPU when installed, else torch), ``"numba"`` or ``"torch"``.

    Returns:
        ``(keep, new_scores)``: int64 indices into the input, sorted by decayed score descending
        (ties: lower input index first), and the decayed scores (dtype of ``scores``), on the
        input device. Computation is float64.
    """
    _validate(boxes, scores, labels, iou_threshold, sigma, method, score_threshold)
    device = boxes.device
    if resolve_backend(backend, device, caller="soft_nms") == "numba":
        from o365lib.ops.soft_nms_numba import soft_nms_arrays  # lazy: numba loads in ~0.2 s

        keep, new = soft_nms_arrays(
            _as_numpy(boxes),
            _as_numpy(scores),
            labels.numpy(),
            method=method,
            iou_threshold=iou_threshold,
            sigma=sigma,
            score_threshold=score_threshold,
            candidate_threshold=_in_dtype_of(scores, score_threshold),
        )
        return torch.from_numpy(keep), torch.from_numpy(new).to(scores.dtype)
    if torch.isnan(scores).any() or torch.isnan(boxes).any():
        raise ValueError("soft_nms: boxes or scores contain NaN")
    with one_cpu_thread(device):
        return _soft_nms_torch(
            boxes,
            scores,
            labels,
            iou_threshold=iou_threshold,
            sigma=sigma,
            method=method,
            score_threshold=score_threshold,
        )


def _in_dtype_of(scores: torch.Tensor, value: float) -> float:
    """``value`` as ``scores > value`` sees it: rounded to the comparison dtype (float32: 0.001
    becomes 0.0010000000475, so a float32 score of 0.001 is not above it)."""
    if scores.dtype == torch.float64:
        return value
    return float(torch.tensor(value, dtype=torch.result_type(scores, value)))


def _as_numpy(x: torch.Tensor):
    """A CPU tensor's values as a numpy array (bfloat16, which numpy lacks, via float64)."""
    x = x.detach()
    return (x.double() if x.dtype == torch.bfloat16 else x).numpy()


def _soft_nms_torch(boxes, scores, labels, *, iou_threshold, sigma, method, score_threshold):
    """The torch backend of :func:`soft_nms` (arguments checked)."""
    device = boxes.device
    empty = (torch.zeros(0, dtype=torch.int64, device=device), scores.new_zeros(0))
    candidates = torch.nonzero(scores > score_threshold).flatten()
    if candidates.numel() == 0:
        return empty
    b = boxes[candidates].to(torch.float64)
    b = torch.stack(
        [
            torch.minimum(b[:, 0], b[:, 2]),
            torch.minimum(b[:, 1], b[:, 3]),
            torch.maximum(b[:, 0], b[:, 2]),
            torch.maximum(b[:, 1], b[:, 3]),
        ],
        dim=1,
    )
    s = scores[candidates].to(torch.float64)
    lab = labels[candidates]

    # group boxes by label (stable: input order within a label), then groups by size descending
    by_label = torch.argsort(lab, stable=True)
    sorted_lab = lab[by_label]
    bounds = torch.nonzero(sorted_lab[1:] != sorted_lab[:-1]).flatten() + 1
    edges = torch.cat([bounds.new_zeros(1), bounds, bounds.new_full((1,), sorted_lab.numel())])
    counts = edges[1:] - edges[:-1]
    group_order = torch.argsort(counts, descending=True, stable=True)
    sizes_t = counts[group_order]
    starts = torch.cumsum(counts, 0) - counts
    sizes = sizes_t.tolist()

    kept_idx, kept_vals = [], []
    for lo, hi in _buckets(sizes, _BUCKET_BUDGET):
        n = sizes[lo]
        offsets = torch.arange(n, device=device)
        sel_starts = starts[group_order[lo:hi]]
        sel_sizes = sizes_t[lo:hi]
        pos = sel_starts[:, None] + offsets[None, :]
        index = torch.where(
            offsets[None, :] < sel_sizes[:, None], by_label[pos.clamp(max=by_label.numel() - 1)], -1
        )
        idx, vals = _run_bucket(
            b,
            s,
            index,
            sizes[lo:hi],
            method=method,
            iou_threshold=iou_threshold,
            sigma=sigma,
            score_threshold=score_threshold,
        )
        kept_idx.append(idx)
        kept_vals.append(vals)
    idx = torch.cat(kept_idx)
    vals = torch.cat(kept_vals)
    ok = (vals > score_threshold) & (idx >= 0)
    keep, vals = candidates[idx[ok]], vals[ok]
    by_index = torch.argsort(keep)  # ties in score: lower input index first
    keep, vals = keep[by_index], vals[by_index]
    order = torch.argsort(vals, descending=True, stable=True)
    return keep[order], vals[order].to(scores.dtype)

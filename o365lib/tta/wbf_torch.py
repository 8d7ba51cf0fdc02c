"""Weighted boxes fusion (Solovyev et al. 2019), vectorised over labels and images, in torch.

WBF merges the boxes of several models (or test-time augmentations): per label, boxes are
visited in descending ``score * model_weight`` order; each joins the first cluster whose
current fused box overlaps it with IoU ``> iou_threshold`` (the best one), or starts a new
cluster.  A cluster's fused box is the score-weighted mean of its members; its score
depends on ``conf_type``.

The visit is sequential within a label but labels (and images) are independent, so step
``t`` processes box ``t`` of every (image, label) group at once, against that group's
clusters so far.  Groups are laid out contiguously, largest first, so step ``t`` only
touches the first ``active[t]`` groups, and a group's clusters live in the same slots as
its boxes (a group never has more clusters than boxes): no padding.  The number of
Python-level steps is the size of the largest group; per step a few dozen small torch ops
run over all the active groups.  One call over many images (:func:`batched_weighted_boxes_fusion`)
is therefore much faster per image than a call per image.

Semantics follow ensemble-boxes 1.0.9 ``weighted_boxes_fusion``: boxes with
``score < skip_box_threshold`` skipped, corners ordered then clipped to [0, 1], zero-area
boxes skipped, clusters matched with IoU ``> iou_threshold`` against the current fused
boxes (float32-rounded like theirs), and the confidence rescaling of each ``conf_type``:

* ``avg``: ``mean(s * w) * min(num_models, n) / sum(w)`` (``allow_overflow``: ``* n``);
* ``max``: ``max(s * w) / max(w)``;
* ``box_and_model_avg``: ``sum(s * w) / sum(w_members) * sum(w of distinct models) / sum(w)``;
* ``absent_model_aware_avg``: ``sum(s * w) / (sum(w_members) + sum(w of absent models))``.

Known flaw handled: with ``avg`` and unequal weights, a cluster of several boxes from a
heavy model scores above 1 (e.g. weights (2, 1), two boxes of model 0 at 0.9: 1.2).
``clip_scores=True`` caps scores at 1.  The default is ``False`` (exact ensemble-boxes
parity, and no ties created at 1.0 among the top-ranked boxes).

Differences: ties in ``score * weight`` are visited in input order (model, then index);
ensemble-boxes' unstable numpy sort can visit them in another order.  Outputs are sorted
by score descending (stable); compare with ensemble-boxes after sorting when scores tie.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from o365lib.tta.soft_nms import serial_on_cpu

__all__ = ["CONF_TYPES", "batched_weighted_boxes_fusion", "weighted_boxes_fusion"]

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")


def _as_tensor(x, dtype, device, name):
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    try:
        return torch.as_tensor(x, dtype=dtype, device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(f"weighted_boxes_fusion: cannot convert {name} to a tensor: {err}") from None


def _check_weights(weights, num_models: int, device) -> torch.Tensor:
    if weights is None:
        return torch.ones(num_models, dtype=torch.float64, device=device)
    w = _as_tensor(weights, torch.float64, device, "weights").flatten()
    if w.numel() != num_models:
        raise ValueError(f"weighted_boxes_fusion: {w.numel()} weights for {num_models} models")
    if bool((w <= 0).any()):
        raise ValueError(f"weighted_boxes_fusion: weights must be > 0, got {w.tolist()}")
    return w


def weighted_boxes_fusion(
    boxes_list: Sequence,
    scores_list: Sequence,
    labels_list: Sequence,
    *,
    weights: Sequence[float] | None = None,
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.0,
    conf_type: str = "avg",
    clip_scores: bool = False,
    allow_overflow: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fuse one image's boxes from several models (ensemble-boxes' call shape).

    Args:
        boxes_list: per model, ``[n_m, 4]`` normalised x1y1x2y2 boxes (tensor, array or list).
        scores_list: per model, ``[n_m]`` scores.
        labels_list: per model, ``[n_m]`` integer labels (floats holding integers are accepted).
        weights: per-model weights (> 0); default all 1.
        iou_threshold: a box joins a cluster when IoU with its fused box is ``> iou_threshold``.
        skip_box_threshold: boxes with ``score < skip_box_threshold`` are ignored.
        conf_type: one of :data:`CONF_TYPES`.
        clip_scores: cap fused scores at 1 (the 'avg' + weights overflow); default parity mode.
        allow_overflow: ensemble-boxes' ``allows_overflow`` for 'avg' (``n`` instead of
            ``min(num_models, n)``).

    Returns:
        ``(boxes [K, 4] float32, scores [K] float32, labels [K] int64)`` sorted by score, descending,
        on the device of the first boxes tensor (CPU for arrays and lists).
    """
    if not (len(boxes_list) == len(scores_list) == len(labels_list)):
        raise ValueError(
            "weighted_boxes_fusion: boxes_list, scores_list and labels_list differ in length "
            f"({len(boxes_list)}, {len(scores_list)}, {len(labels_list)})"
        )
    if len(boxes_list) == 0:
        raise ValueError("weighted_boxes_fusion: no models given")
    device = next((b.device for b in boxes_list if isinstance(b, torch.Tensor)), torch.device("cpu"))
    boxes, scores, labels, models = [], [], [], []
    for m, (b, s, lab) in enumerate(zip(boxes_list, scores_list, labels_list)):
        b = _as_tensor(b, torch.float64, device, f"boxes_list[{m}]").reshape(-1, 4)
        s = _as_tensor(s, torch.float64, device, f"scores_list[{m}]").flatten()
        lab = _as_tensor(lab, torch.float64, device, f"labels_list[{m}]").flatten()
        if not (b.shape[0] == s.numel() == lab.numel()):
            raise ValueError(
                f"weighted_boxes_fusion: model {m} has {b.shape[0]} boxes, {s.numel()} "
                f"scores and {lab.numel()} labels"
            )
        boxes.append(b)
        scores.append(s)
        labels.append(lab.to(torch.int64))
        models.append(torch.full((b.shape[0],), m, dtype=torch.int64, device=device))
    out = batched_weighted_boxes_fusion(
        torch.cat(boxes),
        torch.cat(scores),
        torch.cat(labels),
        model_ids=torch.cat(models),
        num_models=len(boxes_list),
        weights=weights,
        iou_threshold=iou_threshold,
        skip_box_threshold=skip_box_threshold,
        conf_type=conf_type,
        clip_scores=clip_scores,
        allow_overflow=allow_overflow,
    )
    return out[0], out[1], out[2]


@serial_on_cpu
def batched_weighted_boxes_fusion(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    model_ids: torch.Tensor,
    num_models: int,
    image_ids: torch.Tensor | None = None,
    weights: Sequence[float] | None = None,
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.0,
    conf_type: str = "avg",
    clip_scores: bool = False,
    allow_overflow: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """WBF of many images in one call; each (image, label) group is fused independently.

    Args:
        boxes, scores, labels: flat ``[N, 4]``, ``[N]``, ``[N]`` over all models and images.
        model_ids: ``[N]`` model index in ``0..num_models-1`` of each box.
        num_models: number of models (matters for 'avg' and the absent-model rules).
        image_ids: ``[N]`` integer image ids (default: all one image).
        Other arguments as :func:`weighted_boxes_fusion`.

    Returns:
        ``(boxes float32, scores float32, labels int64, image_ids int64)`` sorted by image id,
        then score descending.
    """
    if conf_type not in CONF_TYPES:
        raise ValueError(f"weighted_boxes_fusion: conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"weighted_boxes_fusion: iou_threshold must be in [0, 1], got {iou_threshold}")
    device = boxes.device
    w = _check_weights(weights, num_models, device)
    boxes = boxes.to(torch.float64).reshape(-1, 4)
    scores = scores.to(torch.float64).flatten()
    labels = labels.to(torch.int64).flatten()
    model_ids = model_ids.to(device=device, dtype=torch.int64).flatten()
    image_ids = (
        torch.zeros_like(labels)
        if image_ids is None
        else image_ids.to(device=device, dtype=torch.int64).flatten()
    )
    n = boxes.shape[0]
    if not (scores.numel() == labels.numel() == model_ids.numel() == image_ids.numel() == n):
        raise ValueError(
            "weighted_boxes_fusion: boxes, scores, labels, model_ids and image_ids differ in length"
        )
    if n and (int(model_ids.min()) < 0 or int(model_ids.max()) >= num_models):
        raise ValueError(f"weighted_boxes_fusion: model_ids must be in [0, {num_models})")
    if bool(torch.isnan(scores).any()) or bool(torch.isnan(boxes).any()):
        raise ValueError("weighted_boxes_fusion: boxes or scores contain NaN")

    # ensemble-boxes' pre-filter: skip low scores, order corners, clip to [0, 1], skip zero area
    b = torch.stack(
        [
            torch.minimum(boxes[:, 0], boxes[:, 2]),
            torch.minimum(boxes[:, 1], boxes[:, 3]),
            torch.maximum(boxes[:, 0], boxes[:, 2]),
            torch.maximum(boxes[:, 1], boxes[:, 3]),
        ],
        dim=1,
    ).clamp_(0.0, 1.0)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = torch.nonzero((scores >= skip_box_threshold) & (area != 0)).flatten()
    if keep.numel() == 0:
        return (
            torch.zeros((0, 4), device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, dtype=torch.int64, device=device),
            torch.zeros(0, dtype=torch.int64, device=device),
        )
    b, area, labels, image_ids, model_ids = (
        b[keep],
        area[keep],
        labels[keep],
        image_ids[keep],
        model_ids[keep],
    )
    weight = w[model_ids]
    sw = scores[keep] * weight

    fused = _fuse_groups(
        b,
        area,
        sw,
        weight,
        model_ids,
        labels,
        image_ids,
        iou_threshold=iou_threshold,
        need_models=conf_type in ("box_and_model_avg", "absent_model_aware_avg"),
        num_models=num_models,
    )
    f_boxes, conf, count, max_sw, w_sum, models, f_labels, f_images = fused
    # ensemble-boxes stores a merged cluster's score as float32 (singletons keep float64)
    mean = torch.where(count > 1, (conf / count).float().double(), conf)
    total = w.sum()
    if conf_type == "avg":
        factor = count if allow_overflow else count.clamp(max=num_models)
        f_scores = mean * factor / total
    elif conf_type == "max":
        f_scores = torch.where(count > 1, max_sw.float().double(), max_sw) / w.max()
    elif conf_type == "box_and_model_avg":
        present = (models.double() * w).sum(1)
        f_scores = mean * count / w_sum * present / total
    else:
        absent = ((~models).double() * w).sum(1)
        f_scores = mean * count / (w_sum + absent)
    if clip_scores:
        f_scores = f_scores.clamp(max=1.0)
    order = torch.argsort(f_scores, descending=True, stable=True)
    order = order[torch.argsort(f_images[order], stable=True)]
    return f_boxes[order].float(), f_scores[order].float(), f_labels[order], f_images[order]


def _fuse_groups(
    boxes,
    area,
    sw,
    weight,
    model_ids,
    labels,
    image_ids,
    *,
    iou_threshold: float,
    need_models: bool,
    num_models: int,
):
    """The sequential WBF visit, run for every (image, label) group at once.

    Returns per cluster: fused boxes (float64 holding float32 values, like ensemble-boxes),
    sum of ``s*w``, member count, max ``s*w``, sum of member weights, a ``[K, num_models]``
    bool matrix of contributing models (or None), labels and image ids.
    """
    device = boxes.device
    # group id per box; groups laid out largest first, boxes by s*w descending, ties in input order
    lab_span = int(labels.max() - labels.min()) + 1
    key = (image_ids - image_ids.min()) * lab_span + (labels - labels.min())
    _, group, counts = torch.unique(key, return_inverse=True, return_counts=True)
    rank = torch.empty_like(counts)
    by_size = torch.argsort(counts, descending=True, stable=True)
    rank[by_size] = torch.arange(counts.numel(), device=device)
    order = torch.argsort(sw, descending=True, stable=True)
    order = order[torch.argsort(rank[group[order]], stable=True)]
    boxes, area, sw, weight = boxes[order], area[order], sw[order], weight[order]
    model_ids, labels, image_ids = model_ids[order], labels[order], image_ids[order]
    sizes_t = counts[by_size]
    start = torch.cumsum(sizes_t, 0) - sizes_t
    sizes = sizes_t.tolist()
    num_groups, total = len(sizes), boxes.shape[0]

    active, a = [], num_groups
    for t in range(sizes[0]):
        while a > 0 and sizes[a - 1] <= t:
            a -= 1
        active.append(a)

    # step-major copies of the per-box inputs: step t's boxes (box t of each active group,
    # groups 0..active[t]-1) are one contiguous slice [offset[t], offset[t] + active[t])
    active_t = torch.tensor(active, device=device)
    offset = torch.cumsum(active_t, 0) - active_t
    offsets = offset.tolist()
    group_of = torch.repeat_interleave(torch.arange(num_groups, device=device), sizes_t)
    step_of = torch.arange(total, device=device) - start[group_of]
    src = torch.empty(total, dtype=torch.int64, device=device)
    src[offset[step_of] + group_of] = torch.arange(total, device=device)
    box_sm, area_sm, sw_sm, mid_sm = boxes[src], area[src], sw[src], model_ids[src]
    # what a box adds to its cluster: s*w, count 1, weight, s*w * box
    add_sm = torch.cat([torch.stack([sw, torch.ones_like(sw), weight], 1), boxes * sw[:, None]], 1)[src]

    # cluster state, one slot per box (cluster c of a group lives in slot start + c)
    state = torch.zeros((total, 7), dtype=torch.float64, device=device)  # s*w, count, weight, sum s*w*box
    rep = torch.zeros((total, 5), dtype=torch.float64, device=device)  # fused box, its area
    max_sw = torch.full((total,), -torch.inf, dtype=torch.float64, device=device)
    models = torch.zeros((total, num_models), dtype=torch.bool, device=device) if need_models else None
    n_clusters = torch.ones(num_groups, dtype=torch.int64, device=device)
    steps = torch.arange(sizes[0], device=device)

    # step 0: every group's first box starts cluster 0
    state.index_copy_(0, start, add_sm[:num_groups])
    rep.index_copy_(0, start, torch.cat([box_sm[:num_groups], area_sm[:num_groups, None]], 1))
    max_sw.index_copy_(0, start, sw_sm[:num_groups])
    if models is not None:
        models[start, mid_sm[:num_groups]] = True
    for t in range(1, sizes[0]):
        a, lo = active[t], offsets[t]
        hi = lo + a
        st = start[:a]
        box = box_sm[lo:hi]
        cs = (st[:, None] + steps[None, :t]).flatten()
        r = rep.index_select(0, cs).view(a, t, 5)
        xa = torch.maximum(r[..., 0], box[:, None, 0])
        ya = torch.maximum(r[..., 1], box[:, None, 1])
        xb = torch.minimum(r[..., 2], box[:, None, 2])
        yb = torch.minimum(r[..., 3], box[:, None, 3])
        inter = (xb - xa).clamp_(min=0) * (yb - ya).clamp_(min=0)
        iou = inter / (r[..., 4] + area_sm[lo:hi, None] - inter)
        nc = n_clusters[:a]
        iou.masked_fill_(steps[None, :t] >= nc[:, None], -1.0)
        best, best_idx = iou.max(dim=1)
        join = best > iou_threshold
        slot = st + torch.where(join, best_idx, nc)
        nc += ~join
        state.index_add_(0, slot, add_sm[lo:hi])
        max_sw.scatter_reduce_(0, slot, sw_sm[lo:hi], reduce="amax")
        if models is not None:
            models[slot, mid_sm[lo:hi]] = True
        s = state.index_select(0, slot)
        # ensemble-boxes: a singleton keeps its box; a merged cluster's box is float32(acc / conf)
        new_box = torch.where(s[:, 1:2] > 1, (s[:, 3:] / s[:, 0:1]).float().double(), box)
        new_area = (new_box[:, 2] - new_box[:, 0]) * (new_box[:, 3] - new_box[:, 1])
        rep.index_copy_(0, slot, torch.cat([new_box, new_area[:, None]], 1))

    used = torch.nonzero(state[:, 1] > 0).flatten()
    return (
        rep[used, :4],
        state[used, 0],
        state[used, 1],
        max_sw[used],
        state[used, 2],
        models[used] if models is not None else None,
        labels[used],
        image_ids[used],
    )

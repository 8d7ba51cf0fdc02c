"""Weighted boxes fusion vectorised over labels and images in torch: WBF on any device.

The visit is sequential within a label but labels (and images) are independent, so step
``t`` processes box ``t`` of every (image, label) group at once, against that group's
clusters so far.  Groups are laid out contiguously, largest first, so step ``t`` only
touches the first ``active[t]`` groups, and a group's clusters live in the same slots as
its boxes (a group never has more clusters than boxes): no padding.  The number of
Python-level steps is the size of the largest group; per step a few dozen small torch ops
run over all the active groups, so one call over many images is much faster per image than
a call per image.  On CPU the numba kernel (:mod:`o365lib.ops.wbf_numba`) is faster still;
this backend serves CUDA tensors and CPUs without numba.

Arithmetic is ensemble-boxes 1.0.9's, including its float32 roundings (see
:mod:`o365lib.ops.wbf_numba`): each step rounds the touched clusters' ``s * w * box``
accumulators to float32, as ensemble-boxes' float32 accumulator does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["wbf_torch"]


def wbf_torch(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    model_ids: torch.Tensor,
    image_ids: torch.Tensor,
    weights: torch.Tensor,
    iou_threshold: float,
    skip_box_threshold: float,
    conf_type: str,
    clip_scores: bool,
    allow_overflow: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """WBF of flat float64/int64 tensors on one device (arguments already checked).

    Returns ``(boxes float32, scores float32, labels int64, image_ids int64)`` sorted by image,
    then score descending (ties: label, then cluster creation order), like the numba backend.
    """
    device = boxes.device
    num_models = weights.numel()
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
    weight = weights[model_ids]
    sw = scores[keep] * weight

    f_boxes, conf, count, max_sw, w_sum, models, f_labels, f_images, f_rank = _fuse_groups(
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
    # ensemble-boxes stores a merged cluster's score and weight sum as float32 (singletons: float64)
    merged = count > 1
    mean = torch.where(merged, (conf / count).float().double(), conf)
    w_sum = torch.where(merged, w_sum.float().double(), w_sum)
    total = _sequential_sum(weights)
    if conf_type == "avg":
        factor = count if allow_overflow else count.clamp(max=num_models)
        f_scores = mean * factor / total
    elif conf_type == "max":
        f_scores = torch.where(merged, max_sw.float().double(), max_sw) / weights.max()
    elif conf_type == "box_and_model_avg":
        present = _sequential_sum(torch.where(models, weights, 0.0))
        f_scores = mean * count / w_sum * present / total
    else:
        absent = _sequential_sum(torch.where(models, 0.0, weights))
        f_scores = mean * count / (w_sum + absent)
    if clip_scores:
        f_scores = f_scores.clamp(max=1.0)
    order = torch.argsort(f_rank)  # (image, label, creation): the numba backend's cluster order
    order = order[torch.argsort(f_scores[order], descending=True, stable=True)]
    order = order[torch.argsort(f_images[order], stable=True)]
    return f_boxes[order].float(), f_scores[order].float(), f_labels[order], f_images[order]


def _sequential_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim left to right (numpy's order for fewer than 8 terms)."""
    total = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    for v in x.unbind(-1):
        total = total + v
    return total


@dataclass
class _Layout:
    """Where each box of each (image, label) group sits, groups largest first.

    ``order`` sorts the boxes into groups (boxes by ``s*w`` descending, ties in input order); box
    ``t`` of group ``g`` is then visited at step ``t``, and ``src`` lists the boxes step-major:
    step ``t``'s boxes (groups ``0..active[t]-1``) are rows ``offsets[t] .. offsets[t] + active[t]``.
    """

    order: torch.Tensor
    by_size: torch.Tensor  # group ids (lexicographic (image, label) order) from largest to smallest
    start: torch.Tensor  # first slot of each group (a group's boxes and clusters share its slots)
    group_of: torch.Tensor  # group of each slot
    src: torch.Tensor
    sizes: list
    active: list
    offsets: list

    @property
    def num_groups(self) -> int:
        return len(self.sizes)


def _layout(sw: torch.Tensor, labels: torch.Tensor, image_ids: torch.Tensor) -> _Layout:
    device = sw.device
    # (image, label) pairs in lexicographic order; no integer key that could overflow
    pairs = torch.stack([image_ids, labels], 1)
    _, group, counts = torch.unique(pairs, dim=0, return_inverse=True, return_counts=True)
    rank = torch.empty_like(counts)
    by_size = torch.argsort(counts, descending=True, stable=True)
    rank[by_size] = torch.arange(counts.numel(), device=device)
    order = torch.argsort(sw, descending=True, stable=True)
    order = order[torch.argsort(rank[group[order]], stable=True)]
    sizes_t = counts[by_size]
    start = torch.cumsum(sizes_t, 0) - sizes_t
    sizes = sizes_t.tolist()
    num_groups, total = len(sizes), sw.shape[0]

    active, a = [], num_groups
    for t in range(sizes[0]):
        while a > 0 and sizes[a - 1] <= t:
            a -= 1
        active.append(a)
    active_t = torch.tensor(active, device=device)
    offset = torch.cumsum(active_t, 0) - active_t
    group_of = torch.repeat_interleave(torch.arange(num_groups, device=device), sizes_t)
    step_of = torch.arange(total, device=device) - start[group_of]
    src = torch.empty(total, dtype=torch.int64, device=device)
    src[offset[step_of] + group_of] = torch.arange(total, device=device)
    return _Layout(order=order, by_size=by_size, start=start, group_of=group_of, src=src, sizes=sizes,
                   active=active, offsets=offset.tolist())


@dataclass
class _Clusters:
    """Cluster state, one slot per box (cluster ``c`` of a group lives in slot ``start + c``)."""

    state: torch.Tensor  # s*w, count, weight, sum of s*w * box (4)
    rep: torch.Tensor  # fused box (4), its area
    max_sw: torch.Tensor
    models: torch.Tensor | None  # [slots, num_models] contributing models, when needed
    n_clusters: torch.Tensor  # per group


def _first_step(layout: _Layout, steps: dict, *, num_models: int | None) -> _Clusters:
    """Every group's first box starts its cluster 0."""
    total, device, g, start = steps["sw"].shape[0], steps["sw"].device, layout.num_groups, layout.start
    clusters = _Clusters(
        state=torch.zeros((total, 7), dtype=torch.float64, device=device),
        rep=torch.zeros((total, 5), dtype=torch.float64, device=device),
        max_sw=torch.full((total,), -torch.inf, dtype=torch.float64, device=device),
        models=torch.zeros((total, num_models), dtype=torch.bool, device=device) if num_models else None,
        n_clusters=torch.ones(g, dtype=torch.int64, device=device),
    )
    clusters.state.index_copy_(0, start, steps["add"][:g])
    clusters.state[start, 3:] = clusters.state[start, 3:].float().double()  # float32 accumulator
    clusters.rep.index_copy_(0, start, torch.cat([steps["box"][:g], steps["area"][:g, None]], 1))
    clusters.max_sw.index_copy_(0, start, steps["sw"][:g])
    if clusters.models is not None:
        clusters.models[start, steps["model"][:g]] = True
    return clusters


def _visit_step(t: int, layout: _Layout, steps: dict, clusters: _Clusters, *, iou_threshold: float,
                maybe_nan: bool) -> None:
    """Box ``t`` of every active group joins its best-matching cluster or starts a new one."""
    a, lo = layout.active[t], layout.offsets[t]
    hi = lo + a
    st = layout.start[:a]
    box = steps["box"][lo:hi]
    earlier = torch.arange(t, device=box.device)
    r = clusters.rep.index_select(0, (st[:, None] + earlier[None, :]).flatten()).view(a, t, 5)
    xa = torch.maximum(r[..., 0], box[:, None, 0])
    ya = torch.maximum(r[..., 1], box[:, None, 1])
    xb = torch.minimum(r[..., 2], box[:, None, 2])
    yb = torch.minimum(r[..., 3], box[:, None, 3])
    inter = (xb - xa).clamp_(min=0) * (yb - ya).clamp_(min=0)
    iou = inter / (r[..., 4] + steps["area"][lo:hi, None] - inter)
    nc = clusters.n_clusters[:a]
    iou.masked_fill_(earlier[None, :] >= nc[:, None], -1.0)
    best, best_idx = iou.max(dim=1)
    join = best > iou_threshold
    if maybe_nan:  # a NaN fused box (0 / 0): np.argmax picks the first NaN, and joins it
        nan = torch.isnan(iou)
        has_nan = nan.any(dim=1)
        best_idx = torch.where(has_nan, nan.to(torch.uint8).argmax(dim=1), best_idx)
        join = join | has_nan
    slot = st + torch.where(join, best_idx, nc)
    nc += ~join
    clusters.max_sw.scatter_reduce_(0, slot, steps["sw"][lo:hi], reduce="amax")
    if clusters.models is not None:
        clusters.models[slot, steps["model"][lo:hi]] = True
    # slots differ within a step: add, round the box sums like a float32 accumulator, store
    s = clusters.state.index_select(0, slot).add_(steps["add"][lo:hi])
    s[:, 3:] = s[:, 3:].float()
    clusters.state.index_copy_(0, slot, s)
    # ensemble-boxes: a singleton keeps its box; a merged cluster's box is float32(acc / conf)
    new_box = torch.where(s[:, 1:2] > 1, (s[:, 3:] / s[:, 0:1]).float().double(), box)
    new_area = (new_box[:, 2] - new_box[:, 0]) * (new_box[:, 3] - new_box[:, 1])
    clusters.rep.index_copy_(0, slot, torch.cat([new_box, new_area[:, None]], 1))


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
    bool matrix of contributing models (or None), labels, image ids and a sort key for the
    (image, label, creation) order.
    """
    layout = _layout(sw, labels, image_ids)
    boxes, area, sw, weight, model_ids, labels, image_ids = (
        x[layout.order] for x in (boxes, area, sw, weight, model_ids, labels, image_ids)
    )
    # step-major copies of the per-box inputs; what a box adds to its cluster: s*w, count 1, weight, s*w * box
    src = layout.src
    steps = {
        "box": boxes[src], "area": area[src], "sw": sw[src], "model": model_ids[src],
        "add": torch.cat([torch.stack([sw, torch.ones_like(sw), weight], 1), boxes * sw[:, None]], 1)[src],
    }
    clusters = _first_step(layout, steps, num_models=num_models if need_models else None)
    maybe_nan = bool((sw <= 0).any())  # only clusters with a 0 score sum can get a NaN box
    for t in range(1, layout.sizes[0]):
        _visit_step(t, layout, steps, clusters, iou_threshold=iou_threshold, maybe_nan=maybe_nan)

    used = torch.nonzero(clusters.state[:, 1] > 0).flatten()
    used_group = layout.group_of[used]
    sort_key = layout.by_size[used_group] * sw.shape[0] + (used - layout.start[used_group])
    return (
        clusters.rep[used, :4],
        clusters.state[used, 0],
        clusters.state[used, 1],
        clusters.max_sw[used],
        clusters.state[used, 2],
        clusters.models[used] if clusters.models is not None else None,
        labels[used],
        image_ids[used],
        sort_key,
    )

"""Box deltas and class-aware NMS with mmdet 3.x's exact arithmetic (the ``"mmdet"`` preset).

torchvision and mmdet encode boxes the same way on paper (centre offsets relative to the box size,
log size ratios) but differ in details that move numbers:

- mmdet multiplies deltas by *target stds*; torchvision divides them by *weights*. For the third
  cascade stage mmdet's stds are (0.033, 0.033, 0.067, 0.067), which are not 1/30 and 1/15, so
  weights (30, 30, 15, 15) decode about 1% differently;
- mmdet clamps the log size ratio on both sides to ``|log(16/1000)|``; torchvision only from above;
- mmdet computes centres as ``(x1 + x2) / 2`` and clips decoded boxes to the image in the decoder.

``StdBoxCoder`` is a drop-in for torchvision's ``BoxCoder`` (same ``encode``/``decode`` calls, so
torchvision's RPN and ``RoIHeads`` use it unchanged) that decodes the mmdet way.

Class-aware NMS: mmdet 3.x (``mmcv.ops.batched_nms``) shifts every class's boxes by
``label * (max coordinate + 1)`` and runs one NMS when there are fewer than 10,000 boxes, and runs
one NMS per class otherwise; torchvision switches at 1,000 boxes (on CPU). The shifted coordinates
are rounded differently, which flips decisions at IoUs within float precision of the threshold.
``offset_batched_nms`` reproduces mmdet's choice and arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import nms

#: mmdet's bound on |log(size ratio)|: a box never grows or shrinks more than 1000/16 per stage.
MAX_LOG_RATIO = abs(math.log(16 / 1000))


class StdBoxCoder(BoxCoder):
    """torchvision ``BoxCoder`` API with deltas scaled by ``stds`` (mmdet's ``DeltaXYWHBBoxCoder``).

    ``encode`` is torchvision's with weights ``1 / std`` (targets for training); ``decode`` computes
    ``centre + size * (delta * std)``, ``size * exp(clamp(delta * std, +-MAX_LOG_RATIO))``.
    """

    def __init__(self, stds: Sequence[float]) -> None:
        if len(stds) != 4 or any(s <= 0 for s in stds):
            raise ValueError(f"stds must be 4 positive numbers, got {stds}")
        super().__init__(weights=tuple(1.0 / float(s) for s in stds), bbox_xform_clip=MAX_LOG_RATIO)
        self.stds = tuple(float(s) for s in stds)

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes [N, 4] (xyxy) from deltas [N, 4k] relative to ``boxes`` [N, 4]; k boxes per row."""
        boxes = boxes.to(rel_codes.dtype)
        stds = torch.tensor(self.stds, dtype=rel_codes.dtype, device=rel_codes.device)
        deltas = rel_codes.reshape(rel_codes.shape[0], -1, 4) * stds
        centre = ((boxes[:, :2] + boxes[:, 2:]) * 0.5)[:, None]
        size = (boxes[:, 2:] - boxes[:, :2])[:, None]
        new_centre = centre + size * deltas[..., :2]
        new_size = size * deltas[..., 2:].clamp(min=-MAX_LOG_RATIO, max=MAX_LOG_RATIO).exp()
        decoded = torch.cat([new_centre - new_size * 0.5, new_centre + new_size * 0.5], dim=-1)
        return decoded.reshape(rel_codes.shape[0], -1)


def offset_batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    iou_threshold: float,
    *,
    split_threshold: int = 10000,
) -> torch.Tensor:
    """Indices of the boxes kept by NMS within each group, by descending score (mmdet semantics).

    ``groups`` are integer class (or level) ids; like mmdet they are used as given (0-based labels
    shift class 0 by nothing). Below ``split_threshold`` boxes the groups are separated by
    coordinate offsets and one NMS runs; from it on, one NMS per group and a final sort.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if boxes.shape[0] < split_threshold:
        max_coordinate = boxes.max()
        offsets = groups.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
        return nms(boxes + offsets[:, None], scores, float(iou_threshold))
    kept = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for group in torch.unique(groups):
        members = torch.where(groups == group)[0]
        kept[members[nms(boxes[members], scores[members], float(iou_threshold))]] = True
    keep = torch.where(kept)[0]
    order = scores[keep].sort(descending=True).indices
    return keep[order]


def leading_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float, *, count: int
) -> torch.Tensor:
    """The first ``count`` indices that greedy NMS within each group keeps, by descending score.

    The same as torchvision's ``batched_nms(...)[:count]`` below its 1,000-box CPU threshold (groups
    separated by coordinate offsets, ties in score kept in index order), but cheaper when few of the
    boxes are wanted, as for the RPN's proposals (100 of 750 in training, of 1,500 in inference): greedy
    NMS decides a box from the higher-scored boxes alone, so NMS over the best ``2 * count`` boxes,
    doubled until ``count`` survive (or all boxes are in), keeps exactly the same leading boxes.
    From 1,000 boxes torchvision runs one NMS per group instead; that can differ from the offsets by
    float rounding of an IoU at the threshold. bf16 boxes (the RPN's, under autocast) are offset in
    float32: torchvision offsets them in bf16, which rounds a box shifted past 512 px to 4 px.
    """
    total = boxes.shape[0]
    if total == 0 or count <= 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    dtype = torch.float64 if boxes.dtype == torch.float64 else torch.float32  # what NMS computes in
    exact = boxes.to(dtype)
    offsets = groups.to(dtype) * (exact.max() + 1)
    shifted = (exact + offsets[:, None])[order]
    ranks = torch.arange(total, 0, -1, dtype=dtype, device=boxes.device)  # strictly decreasing: NMS keeps our order
    size = min(total, 2 * count)
    while True:
        kept = nms(shifted[:size], ranks[:size], float(iou_threshold))
        if kept.numel() >= count or size == total:
            return order[kept[:count]]
        size = min(total, 2 * size)

"""The region proposal network, with torchvision's or mmdet 3.x's proposal selection.

Training (anchor matching, sampling, losses) is torchvision's ``RegionProposalNetwork``. Only the
step from scored anchors to proposals differs between the two frameworks, and it decides which
boxes the box heads see:

=====================  =========================================  =========================================
step                   torchvision                                mmdet 3.x (``selection="mmdet"``)
=====================  =========================================  =========================================
top-k per level        ``topk`` on logits                         sort of sigmoid scores
tiny boxes dropped     width and height ``>= 1e-3`` px            width and height ``> 0`` px
NMS per level          per-level loop from 1,000 boxes on CPU     coordinate offsets below 10,000 boxes
=====================  =========================================  =========================================

Both clip proposals to the (resized, unpadded) image and keep the ``post_nms_top_n`` best after NMS.
"""

from __future__ import annotations

import torch
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import boxes as box_ops

from o365lib.modeling.box_coding import leading_nms, offset_batched_nms

SELECTIONS = ("torchvision", "mmdet")


class ProposalNetwork(RegionProposalNetwork):
    """torchvision's RPN with a choice of proposal selection (see the module docstring).

    Args:
        selection: ``"torchvision"`` or ``"mmdet"``; a plain attribute, changeable after construction.
        **kwargs: ``RegionProposalNetwork``'s arguments.
    """

    def __init__(self, *args, selection: str = "torchvision", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        self.selection = selection

    def filter_proposals(
        self,
        proposals: torch.Tensor,
        objectness: torch.Tensor,
        image_shapes: list[tuple[int, int]],
        num_anchors_per_level: list[int],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: proposals [P, 4] and their objectness probabilities [P]."""
        if self.selection == "torchvision":
            return self._torchvision_selection(proposals, objectness, image_shapes, num_anchors_per_level)
        num_images = proposals.shape[0]
        scores_all = torch.sigmoid(objectness.detach().reshape(num_images, -1))
        final_boxes, final_scores = [], []
        for boxes, scores, image_shape in zip(proposals, scores_all, image_shapes):
            kept_boxes, kept_scores, kept_levels = [], [], []
            start = 0
            for level, count in enumerate(num_anchors_per_level):
                level_scores = scores[start : start + count]
                level_boxes = boxes[start : start + count]
                start += count
                limit = self.pre_nms_top_n()
                if 0 < limit < level_scores.shape[0]:
                    level_scores, order = level_scores.sort(descending=True)
                    level_scores, level_boxes = level_scores[:limit], level_boxes[order[:limit]]
                kept_boxes.append(level_boxes)
                kept_scores.append(level_scores)
                kept_levels.append(torch.full_like(level_scores, level, dtype=torch.int64))
            image_boxes = box_ops.clip_boxes_to_image(torch.cat(kept_boxes), image_shape)
            image_scores, image_levels = torch.cat(kept_scores), torch.cat(kept_levels)
            widths = image_boxes[:, 2] - image_boxes[:, 0]
            heights = image_boxes[:, 3] - image_boxes[:, 1]
            valid = (widths > 0) & (heights > 0)
            if not bool(valid.all()):
                image_boxes, image_scores, image_levels = image_boxes[valid], image_scores[valid], image_levels[valid]
            keep = offset_batched_nms(image_boxes, image_scores, image_levels, self.nms_thresh)
            keep = keep[: self.post_nms_top_n()]
            final_boxes.append(image_boxes[keep])
            final_scores.append(image_scores[keep])
        return final_boxes, final_scores

    def _torchvision_selection(self, proposals, objectness, image_shapes, num_anchors_per_level):
        """torchvision's selection (top-k logits per level, clip, drop tiny and low-scored boxes, NMS per
        level, the best ``post_nms_top_n``) with the NMS stopped once those are known (``leading_nms``)."""
        num_images = proposals.shape[0]
        objectness = objectness.detach().reshape(num_images, -1)
        levels = torch.cat([torch.full((count,), level, dtype=torch.int64, device=proposals.device)
                            for level, count in enumerate(num_anchors_per_level)])
        top = self._get_top_n_idx(objectness, num_anchors_per_level)
        rows = torch.arange(num_images, device=proposals.device)[:, None]
        probabilities = torch.sigmoid(objectness[rows, top])
        final_boxes, final_scores = [], []
        for boxes, scores, image_levels, image_shape in zip(proposals[rows, top], probabilities, levels[top],
                                                            image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)
            keep = box_ops.remove_small_boxes(boxes, self.min_size)
            keep = keep[scores[keep] >= self.score_thresh]
            boxes, scores, image_levels = boxes[keep], scores[keep], image_levels[keep]
            keep = leading_nms(boxes, scores, image_levels, self.nms_thresh, count=self.post_nms_top_n())
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        return final_boxes, final_scores

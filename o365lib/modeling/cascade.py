"""Cascade R-CNN box heads (Cai & Vasconcelos, 2018) on torchvision's R-CNN parts.

Three stages, each with its own two-layer MLP head, class scores (K + background) and one
class-agnostic box regression. Stage ``t`` is trained on boxes that stage ``t - 1`` regressed
(detached: no gradient flows between stages), matched to the ground truth at a rising IoU
threshold (0.5, 0.6, 0.7) and encoded with ever tighter box-coder weights ((10,10,5,5),
(20,20,10,10), (30,30,15,15), i.e. target stds 0.1/0.2, 0.05/0.1, 0.033/0.067), because the
regressed boxes are closer to the objects at each stage. At test time the proposals run through
the three stages in turn; the three classifiers' scores are averaged and the last stage's boxes
are kept. ``stage_score_average`` says what is averaged: ``"probabilities"`` (this project's
default, as detectron2) or ``"logits"`` followed by one softmax (mmdet 3.x).

``box_stds`` switches the box coding to mmdet's (deltas times target stds, see
``o365lib.modeling.box_coding``) with exactly mmdet's stage stds, where ``box_weights`` (30, 30,
15, 15) differ from mmdet's third-stage stds (0.033, 0.033, 0.067, 0.067) by about 1%.

Matching, sampling and target encoding are torchvision's ``RoIHeads.select_training_samples``
(``Matcher``, ``BalancedPositiveNegativeSampler``, ``BoxCoder``); ``CascadeStage`` only adds
the class-agnostic forward and loss. Features are pooled by ``SparseMultiScaleRoIAlign``
(torchvision's multi-scale RoIAlign, same numbers, gathers on CPU) into ``StageHead`` (torchvision's
``TwoMLPHead``, taking the pooled features in the layout the CPU gathers leave them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops

from o365lib.modeling.box_coding import StdBoxCoder
from o365lib.modeling.losses import ClassLoss, build_class_loss
from o365lib.modeling.roi_align import SparseMultiScaleRoIAlign

IOU_THRESHOLDS = (0.5, 0.6, 0.7)
BOX_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
STAGE_LOSS_WEIGHTS = (1.0, 0.5, 0.25)
#: mmdet's target stds of the three stages (its configs' ``target_stds``).
MMDET_BOX_STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))
STAGE_SCORE_AVERAGES = ("probabilities", "logits")


class StageHead(TwoMLPHead):
    """torchvision's two-layer MLP box head (``fc6``, ``fc7``; same parameters and checkpoints) that
    also takes pooled features stored channels last without copying them.

    ``SparseMultiScaleRoIAlign``'s training path returns [R, C, P, P] features laid out as
    (roi, y, x, channel). Flattening them in torchvision's (channel, y, x) order would copy the
    [R, C * P * P] features forward and their gradient back; instead they are flattened as they lie
    and ``fc6``'s input columns are put in that order (a [representation, C * P * P] copy, 1 / R
    the size per RoI). The products are the same up to float summation order.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            rois, channels, height, width = x.shape
            weight = self.fc6.weight.view(-1, channels, height, width).permute(0, 2, 3, 1)
            flat = x.permute(0, 2, 3, 1).reshape(rois, -1)  # a view: no copy
            x = F.relu(F.linear(flat, weight.reshape(self.fc6.out_features, -1), self.fc6.bias))
        else:
            x = F.relu(self.fc6(x.flatten(start_dim=1)))
        return F.relu(self.fc7(x))


class StagePredictor(nn.Module):
    """Class logits (background at 0; ``class_loss.num_outputs`` of them) and one class-agnostic box delta.

    The classifier comes from the stage's classification loss (``o365lib.modeling.class_losses``):
    a linear layer for softmax cross-entropy, EQLv2 and Federated, a normalised cosine classifier for
    Seesaw. It keeps the name ``cls_score`` so checkpoints and weight transfer are unchanged.
    """

    def __init__(self, in_features: int, num_classes: int, *, class_loss: ClassLoss | None = None) -> None:
        super().__init__()
        if class_loss is None:  # the default softmax classifier, initialised as always
            self.cls_score = nn.Linear(in_features, num_classes + 1)
            nn.init.normal_(self.cls_score.weight, std=0.01)
            nn.init.zeros_(self.cls_score.bias)
        else:
            self.cls_score = class_loss.make_classifier(in_features)
        self.bbox_pred = nn.Linear(in_features, 4)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        # float32 outputs under autocast: losses and box decoding stay exact (bf16 has 8 mantissa bits)
        return self.cls_score(x).float(), self.bbox_pred(x).float()


class CascadeStage(RoIHeads):
    """One cascade stage: torchvision ``RoIHeads`` for matching/sampling, a class-agnostic head."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        roi_output_size: int,
        representation_size: int,
        iou_threshold: float,
        box_weights: Sequence[float],
        batch_size_per_image: int,
        positive_fraction: float,
        featmap_names: Sequence[str],
        sampling_ratio: int = 2,
        roi_aligned: bool = False,
        roi_level_mapping: str = "torchvision",
        roi_strides: Sequence[int] | None = None,
        roi_canonical_scale: int = 224,
        box_stds: Sequence[float] | None = None,
        class_loss: ClassLoss | None = None,
    ) -> None:
        super().__init__(
            box_roi_pool=SparseMultiScaleRoIAlign(
                featmap_names=list(featmap_names),
                output_size=roi_output_size,
                sampling_ratio=sampling_ratio,
                aligned=roi_aligned,
                level_mapping=roi_level_mapping,
                strides=roi_strides,
                canonical_scale=roi_canonical_scale,
            ),
            box_head=StageHead(in_channels * roi_output_size**2, representation_size),
            box_predictor=StagePredictor(representation_size, num_classes, class_loss=class_loss),
            fg_iou_thresh=iou_threshold,
            bg_iou_thresh=iou_threshold,
            batch_size_per_image=batch_size_per_image,
            positive_fraction=positive_fraction,
            bbox_reg_weights=tuple(box_weights),
            score_thresh=0.0,
            nms_thresh=0.5,
            detections_per_img=100,
        )
        self.iou_threshold = float(iou_threshold)
        self.class_loss = class_loss if class_loss is not None else ClassLoss(num_classes=num_classes)
        if box_stds is not None:
            self.box_coder = StdBoxCoder(box_stds)

    def run_head(
        self,
        features: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits [N, K+1] and box deltas [N, 4] for the boxes of all images (concatenated)."""
        pooled = self.box_roi_pool(features, boxes, image_shapes)
        return self.box_predictor(self.box_head(pooled))

    def refine(
        self, deltas: torch.Tensor, boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[torch.Tensor]:
        """Apply this stage's deltas to ``boxes`` (per image), clipped to each image."""
        decoded = self.box_coder.decode(deltas.float(), [b.float() for b in boxes]).reshape(-1, 4)
        per_image = decoded.split([len(b) for b in boxes])
        return [box_ops.clip_boxes_to_image(b, shape) for b, shape in zip(per_image, image_shapes)]


def stage_losses(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    labels: torch.Tensor,
    regression_targets: torch.Tensor,
    *,
    beta: float = 1.0 / 9,
    class_loss: ClassLoss | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over K+1 classes and smooth-L1 (``beta``: 1/9 here, 1.0 in mmdet's cascade
    configs) on the positives' deltas.

    Both are averaged over all sampled boxes, as in torchvision's Faster R-CNN loss (and mmdet's).
    ``class_loss`` replaces the cross-entropy (Seesaw, EQLv2, Federated: ``o365lib.modeling.class_losses``).
    """
    loss_cls = F.cross_entropy(logits, labels) if class_loss is None else class_loss.loss(logits, labels)
    positive = torch.where(labels > 0)[0]
    loss_box = F.smooth_l1_loss(
        deltas[positive], regression_targets[positive], beta=beta, reduction="sum"
    ) / max(labels.numel(), 1)
    return loss_cls, loss_box


class CascadeRoIHeads(nn.Module):
    """The three cascade stages; training returns losses, inference returns boxes + mean probabilities."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        roi_output_size: int = 7,
        representation_size: int = 1024,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
        box_weights: Sequence[Sequence[float]] = BOX_WEIGHTS,
        stage_loss_weights: Sequence[float] = STAGE_LOSS_WEIGHTS,
        featmap_names: Sequence[str] = ("0", "1", "2", "3"),
        sampling_ratio: int = 2,
        roi_aligned: bool = False,
        roi_level_mapping: str = "torchvision",
        roi_strides: Sequence[int] | None = None,
        roi_canonical_scale: int = 224,
        box_stds: Sequence[Sequence[float]] | None = None,
        box_loss_beta: float = 1.0 / 9,
        stage_score_average: str = "probabilities",
        class_loss: str = "softmax",
        class_loss_options: Mapping | None = None,
        class_counts: Sequence[float] | None = None,
        image_counts: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if stage_score_average not in STAGE_SCORE_AVERAGES:
            raise ValueError(
                f"stage_score_average must be one of {STAGE_SCORE_AVERAGES}, got {stage_score_average!r}"
            )
        if box_stds is not None and len(box_stds) != len(iou_thresholds):
            raise ValueError(f"box_stds needs one entry per stage, got {len(box_stds)}")
        if not len(iou_thresholds) == len(box_weights) == len(stage_loss_weights):
            raise ValueError(
                "iou_thresholds, box_weights and stage_loss_weights need one entry per stage, got "
                f"{len(iou_thresholds)}, {len(box_weights)}, {len(stage_loss_weights)}"
            )
        self.num_classes = num_classes
        self.stage_score_average = stage_score_average
        self.box_loss_beta = float(box_loss_beta)
        self.stage_loss_weights = tuple(float(w) for w in stage_loss_weights)
        self.stages = nn.ModuleList(
            CascadeStage(
                num_classes=num_classes,
                in_channels=in_channels,
                roi_output_size=roi_output_size,
                representation_size=representation_size,
                iou_threshold=iou,
                box_weights=weights,
                batch_size_per_image=batch_size_per_image,
                positive_fraction=positive_fraction,
                featmap_names=featmap_names,
                sampling_ratio=sampling_ratio,
                roi_aligned=roi_aligned,
                roi_level_mapping=roi_level_mapping,
                roi_strides=roi_strides,
                roi_canonical_scale=roi_canonical_scale,
                box_stds=None if box_stds is None else box_stds[index],
                class_loss=None if class_loss == "softmax" and not class_loss_options else build_class_loss(
                    class_loss, num_classes=num_classes, class_counts=class_counts, image_counts=image_counts,
                    **dict(class_loss_options or {})),
            )
            for index, (iou, weights) in enumerate(zip(iou_thresholds, box_weights))
        )

    def forward_train(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """Losses ``loss_cls_s{t}`` / ``loss_box_s{t}`` per stage, already scaled by the stage weight."""
        losses: dict[str, torch.Tensor] = {}
        boxes = [p.detach() for p in proposals]
        for index, stage in enumerate(self.stages):
            boxes, _, labels, regression_targets = stage.select_training_samples(boxes, targets)
            logits, deltas = stage.run_head(features, boxes, image_shapes)
            loss_cls, loss_box = stage_losses(
                logits,
                deltas,
                torch.cat(labels),
                torch.cat(regression_targets).to(deltas.dtype),
                beta=self.box_loss_beta,
                class_loss=stage.class_loss,
            )
            weight = self.stage_loss_weights[index]
            losses[f"loss_cls_s{index}"] = loss_cls * weight
            losses[f"loss_box_s{index}"] = loss_box * weight
            if index + 1 < len(self.stages):
                boxes = stage.refine(deltas.detach(), boxes, image_shapes)
        return losses

    def forward_test(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: the last stage's boxes [N, 4] and the stage-averaged probabilities [N, K+1]."""
        if self.stage_score_average not in STAGE_SCORE_AVERAGES:
            raise ValueError(
                f"stage_score_average must be one of {STAGE_SCORE_AVERAGES}, got {self.stage_score_average!r}"
            )
        boxes = proposals
        stage_scores = []
        for stage in self.stages:
            logits, deltas = stage.run_head(features, boxes, image_shapes)
            if self.stage_score_average == "logits":
                stage_scores.append(logits.float())
            else:
                stage_scores.append(stage.class_loss.probabilities(logits.float()))
            boxes = stage.refine(deltas, boxes, image_shapes)
        total = stage_scores[0]
        for scores in stage_scores[1:]:
            total = total + scores
        averaged = total / float(len(stage_scores))
        if self.stage_score_average == "logits":
            averaged = self.stages[-1].class_loss.probabilities(averaged)
        return boxes, list(averaged.split([len(b) for b in boxes]))
